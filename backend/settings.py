"""Settings read once from the environment (`STUDIO_*` and `COMFYUI_URL`); flags override.

Model file names and sampling defaults live here, never as literals in operations or
templates' bindings: every ComfyUI install names its files a little differently. What each
mode needs (its peak VRAM among it) is declared by the mode (backend/modes/); settings only
carry the overrides.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from backend import limits
from backend.library.config import LibraryConfig

DEFAULT_COMFY_URL = "http://127.0.0.1:8188"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# STUDIO_PEAK_VRAM_<MODE>=GB overrides a mode's declared peak (any mode, apps included).
PEAK_VRAM_PREFIX = "STUDIO_PEAK_VRAM_"


# A label people see for a server: short, no spaces (it names the server in the sidebar, in
# /healthz and /metrics, and in "moved from a to b").
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


@dataclass(frozen=True)
class ComfyServer:
    """One ComfyUI server: `label` is what people see, `url` never leaves the studio."""

    label: str
    url: str


@functools.lru_cache(maxsize=64)
def parse_servers(raw: str) -> tuple[ComfyServer, ...]:
    """`COMFYUI_URL` → the servers, in order (the first is the default).

    `http://gpu-a:8188,http://gpu-b:8188` or labelled `a=http://gpu-a:8188,b=http://…`; an
    entry without a scheme gets `http://`. An unlabelled server is called after its host's
    first name (`gpu-a` for gpu-a.lan) or, for an address, localhost or a name two servers
    share, its place in the list (`1`, `2`). A duplicate label or an empty list is an error
    naming the entry."""
    entries = [part.strip() for part in raw.split(",") if part.strip()]
    if not entries:
        raise ValueError("COMFYUI_URL names no server")
    named: list[tuple[str | None, str]] = []
    for entry in entries:
        label, sep, rest = entry.partition("=")
        if sep and "://" not in label and LABEL.fullmatch(label):
            named.append((label, _url(rest, entry)))
        else:
            named.append((None, _url(entry, entry)))
    explicit = {label for label, _ in named if label is not None}
    guesses = [_host_label(url) if label is None else None for label, url in named]
    servers: list[ComfyServer] = []
    for number, ((given, url), guess) in enumerate(zip(named, guesses, strict=True), start=1):
        if given is not None:
            label = given
        elif guess is not None and guesses.count(guess) == 1 and guess not in explicit:
            label = guess
        else:
            label = str(number) if str(number) not in explicit else f"server{number}"
        if any(s.label == label for s in servers):
            raise ValueError(f"COMFYUI_URL names the server {label!r} twice")
        servers.append(ComfyServer(label, url))
    return tuple(servers)


def _url(text: str, entry: str) -> str:
    url = text.strip()
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    if not urlsplit(url).hostname:
        raise ValueError(f"COMFYUI_URL entry {entry!r} is not a server address (http://host:port)")
    return url


def _host_label(url: str) -> str | None:
    """gpu-a.lan → "gpu-a"; None for an IP address or localhost (a number names those)."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    first = host.split(".", 1)[0]
    return first if first != "localhost" and LABEL.fullmatch(first) else None


@dataclass(frozen=True)
class ModelFiles:
    """File names as ComfyUI lists them under `models/<folder>`."""

    generate_unet: str = "qwen_image_2512_fp8_e4m3fn.safetensors"
    generate_turbo_unet: str = "qwen_image_2512_fp8_e4m3fn_scaled_comfyui_4steps_v1.0.safetensors"
    edit_unet: str = "qwen_image_edit_2511_fp8mixed.safetensors"
    text_encoder: str = "qwen_2.5_vl_7b_fp8_scaled.safetensors"
    vae: str = "qwen_image_vae.safetensors"
    birefnet: str = "BiRefNet-general"
    florence2: str = "microsoft/Florence-2-base"
    sam2: str = "sam2.1_hiera_base_plus.safetensors"
    # The GGUF variant (workflows/<mode>.gguf.json, ComfyUI-GGUF's loaders): listed by ComfyUI
    # under /models/unet_gguf and /models/clip_gguf (../shared/comfy/gguf/README.md). An empty
    # text_encoder_gguf keeps the fp8 encoder (CLIPLoaderGGUF loads both).
    generate_gguf: str = "qwen-image-2512-Q4_K_M.gguf"
    edit_gguf: str = "qwen-image-edit-2511-Q4_K_M.gguf"
    text_encoder_gguf: str = "Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf"


@dataclass(frozen=True)
class SamplingDefaults:
    """Starting points from the official templates; the UI exposes all of them."""

    generate_steps: int = 20
    generate_cfg: float = 2.5
    generate_shift: float = 3.1
    turbo_steps: int = 4
    turbo_cfg: float = 1.0
    edit_steps: int = 20
    edit_cfg: float = 2.5
    edit_shift: float = 3.0
    sampler: str = "euler"
    scheduler: str = "simple"


@dataclass(frozen=True)
class Settings:
    # COMFYUI_URL as configured: one server's URL, or several, comma-separated, optionally
    # labelled (`a=http://…,b=http://…`); `servers` has them parsed. Never shown to people.
    comfy_url: str = DEFAULT_COMFY_URL
    host: str = "127.0.0.1"
    port: int = 7860
    workflows_dir: Path = PROJECT_ROOT / "workflows"
    # Workflow apps (backend/apps): every titled workflow here is a mode; None: no apps.
    apps_dir: Path | None = PROJECT_ROOT / "workflows" / "apps"
    apps_poll_s: float = 2.0
    models: ModelFiles = field(default_factory=ModelFiles)
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    # Generation sizes and the edit model's working resolution (~1 MP like the templates).
    max_generate_pixels: int = 1664 * 1664
    max_sampling_pixels: int = 1024 * 1024
    # Decoding limit against decompression bombs (phone cameras make up to 200 MP), the size
    # a full-resolution result is capped at (larger inputs are scaled down on load), and the
    # largest accepted upload.
    max_input_pixels: int = limits.MAX_INPUT_PIXELS
    max_result_pixels: int = limits.MAX_RESULT_PIXELS
    max_upload_bytes: int = 25 * 1024 * 1024
    max_outpaint_pad: int = limits.PAD.high
    job_timeout_s: float = 900.0
    # Mode name → peak VRAM (GB) where the environment overrides the mode's declared one.
    peak_vram_overrides: Mapping[str, float] = field(default_factory=dict)
    poll_interval_s: float = 2.0
    # "user:pass,user2:pass2" for the UI login; a bearer key for /v1/*.
    auth: tuple[tuple[str, str], ...] = ()
    api_key: str | None = None
    # After an out-of-memory error: free ComfyUI's cached models and retry, then the GGUF
    # variant, then once at the next lower resolution (jobs.py). Off: the error lists them.
    oom_retry: bool = False
    # Which template variant a diffusion job runs when the person did not pick one:
    # "auto" by the expected peak against the device's memory (backend/operations/variant.py),
    # "fp8" (the default templates) or "gguf" (always the GGUF variant where installed).
    variant: str = "auto"
    # The GGUF variant's expected peak: the mode's fp8 peak minus these (the guide: "~10 GB
    # instead of ~20 GB per UNet"; the Q4 text encoder ~4.7 GB instead of ~8.8 GB, when
    # one is configured). STUDIO_PEAK_VRAM_<MODE>_GGUF overrides a mode's outright.
    gguf_unet_saving_gb: float = 10.0
    gguf_text_encoder_saving_gb: float = 4.0
    # "group" releases queued jobs that share the loaded diffusion model first, but never
    # passes one over more than `scheduling_max_skips` times or past `scheduling_max_wait_s`;
    # "fifo" is arrival order. Measured in bench/scheduling.py: group cut swaps 9 → 3.
    scheduling: str = "group"
    scheduling_max_skips: int = 3
    scheduling_max_wait_s: float = 120.0
    # Where results are kept (STUDIO_DATA_DIR, STUDIO_LIBRARY, …_MAX_GB, …_MAX_DAYS). Read from
    # the environment even when Settings is built by hand, so a test run's STUDIO_DATA_DIR
    # keeps every studio it builds out of the working tree.
    library: LibraryConfig = field(default_factory=LibraryConfig.from_env)
    # Jobs waiting in the studio (all people) and per person (API key, user or browser
    # session); past these a job is refused at once (429 + Retry-After, or a sentence).
    max_queue: int = 200
    max_queue_per_person: int = 16
    # Several ComfyUI servers: "affinity" sends a job where its model is loaded,
    # "least-loaded" where the line is shortest.
    routing: str = "affinity"

    @property
    def servers(self) -> tuple[ComfyServer, ...]:
        """The ComfyUI servers, the default first (parse_servers; cached)."""
        return parse_servers(self.comfy_url)

    @property
    def pad_knob(self) -> limits.IntKnob:
        """The outpaint pad's limits, up to STUDIO_MAX_OUTPAINT_PAD."""
        return limits.PAD.up_to(self.max_outpaint_pad)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `env` (default os.environ); `overrides` (field=value, from command-line
        flags and tests) win. replace() refuses a name that is not a field."""
        env = os.environ if env is None else env
        base = cls()
        default_models = asdict(base.models)
        models = ModelFiles(
            **{
                name: env.get(f"STUDIO_MODEL_{name.upper()}", default)
                for name, default in default_models.items()
            }
        )
        default_sampling = asdict(base.sampling)
        sampling = SamplingDefaults(
            **{
                f.name: type(default_sampling[f.name])(
                    env.get(f"STUDIO_{f.name.upper()}", default_sampling[f.name])
                )
                for f in fields(SamplingDefaults)
            }
        )
        peak = {
            key.removeprefix(PEAK_VRAM_PREFIX).lower(): float(raw)
            for key, raw in env.items()
            if key.startswith(PEAK_VRAM_PREFIX) and raw
        }
        settings = replace(
            base,
            comfy_url=normalize_servers(env.get("COMFYUI_URL", base.comfy_url)),
            host=env.get("STUDIO_HOST", base.host),
            port=int(
                env.get("PORT")
                or env.get("GRADIO_SERVER_PORT")
                or env.get("STUDIO_PORT")
                or base.port
            ),
            workflows_dir=Path(env.get("STUDIO_WORKFLOWS_DIR", str(base.workflows_dir))),
            apps_dir=apps_dir_from(env),
            apps_poll_s=float(env.get("STUDIO_APPS_POLL_S", base.apps_poll_s)),
            models=models,
            sampling=sampling,
            max_generate_pixels=int(
                env.get("STUDIO_MAX_GENERATE_PIXELS", base.max_generate_pixels)
            ),
            max_sampling_pixels=int(
                env.get("STUDIO_MAX_SAMPLING_PIXELS", base.max_sampling_pixels)
            ),
            max_input_pixels=int(env.get("STUDIO_MAX_INPUT_PIXELS", base.max_input_pixels)),
            max_result_pixels=int(env.get("STUDIO_MAX_RESULT_PIXELS", base.max_result_pixels)),
            max_upload_bytes=int(env.get("STUDIO_MAX_UPLOAD_BYTES", base.max_upload_bytes)),
            max_outpaint_pad=int(env.get("STUDIO_MAX_OUTPAINT_PAD", base.max_outpaint_pad)),
            job_timeout_s=float(env.get("STUDIO_JOB_TIMEOUT_S", base.job_timeout_s)),
            peak_vram_overrides=peak,
            poll_interval_s=float(env.get("STUDIO_POLL_INTERVAL_S", base.poll_interval_s)),
            auth=parse_auth(env.get("STUDIO_AUTH", "")),
            library=LibraryConfig.from_env(env),
            api_key=env.get("STUDIO_API_KEY") or None,
            oom_retry=env.get("STUDIO_OOM_RETRY", "").lower() in ("1", "true", "yes", "on"),
            variant=parse_variant(env.get("STUDIO_VARIANT", base.variant)),
            gguf_unet_saving_gb=float(
                env.get("STUDIO_GGUF_UNET_SAVING_GB", base.gguf_unet_saving_gb)
            ),
            gguf_text_encoder_saving_gb=float(
                env.get("STUDIO_GGUF_TEXT_ENCODER_SAVING_GB", base.gguf_text_encoder_saving_gb)
            ),
            scheduling=env.get("STUDIO_SCHEDULING", base.scheduling),
            scheduling_max_skips=int(
                env.get("STUDIO_SCHEDULING_MAX_SKIPS", base.scheduling_max_skips)
            ),
            scheduling_max_wait_s=float(
                env.get("STUDIO_SCHEDULING_MAX_WAIT_S", base.scheduling_max_wait_s)
            ),
            max_queue=int(env.get("STUDIO_MAX_QUEUE", base.max_queue)),
            max_queue_per_person=int(
                env.get("STUDIO_MAX_QUEUE_PER_PERSON", base.max_queue_per_person)
            ),
            routing=env.get("STUDIO_ROUTING", base.routing),
        )
        return replace(settings, **overrides) if overrides else settings


def apps_dir_from(env: Mapping[str, str]) -> Path | None:
    """STUDIO_APPS_DIR ("" or "off": no apps); default `<workflows dir>/apps`."""
    raw = env.get("STUDIO_APPS_DIR")
    if raw is None:
        return Path(env.get("STUDIO_WORKFLOWS_DIR", str(PROJECT_ROOT / "workflows"))) / "apps"
    return None if raw.strip().lower() in ("", "off") else Path(raw)


def normalize_servers(raw: str) -> str:
    """COMFYUI_URL (or repeated --comfy-url values joined by commas) as Settings keeps it:
    each entry without its trailing slash; checked now, so a malformed list fails at start."""
    value = ",".join(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    parse_servers(value)
    return value


VARIANT_SETTINGS = ("auto", "fp8", "gguf")


def parse_variant(raw: str) -> str:
    """STUDIO_VARIANT: auto | fp8 | gguf (a typo is an error at start, not a silent fp8)."""
    value = raw.strip().lower() or "auto"
    if value not in VARIANT_SETTINGS:
        raise ValueError(f"STUDIO_VARIANT is {raw!r}; use one of {', '.join(VARIANT_SETTINGS)}")
    return value


def parse_auth(raw: str) -> tuple[tuple[str, str], ...]:
    """`"user:pass,user2:pass2"` → pairs; a malformed entry is an error, not a silent skip."""
    pairs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ValueError(f"STUDIO_AUTH entry {item!r} is not 'user:password'")
        pairs.append((user, password))
    return tuple(pairs)
