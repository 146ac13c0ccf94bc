"""Model families: modes that run on the same models (switching between them costs no model
swap), the files the studio binds for them, and their sampler defaults.

Also the sampler and loader bindings every diffusion mode shares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from backend.operations.base import RoleValues, resolve_seed
from backend.requests import RequestBase
from backend.settings import Settings

GGUF = "gguf"   # the template variant ComfyUI-GGUF's loaders run (workflows/<mode>.gguf.json)


@dataclass(frozen=True)
class SamplerDefaults:
    """Where the UI's Steps and CFG sliders start (the request's None means the same)."""

    steps: int
    cfg: float


@dataclass(frozen=True)
class ModelFamily:
    """`name` is for people ("the edit model is already loaded"); `files` maps the template
    roles the studio binds to the model files settings name (preflight checks them on the
    server); `sampler` is None for a family without sampler knobs (no Steps, CFG, negative);
    `unet` the diffusion model file a request loads (None: none, e.g. background removal),
    known before anything is decoded: the scheduler groups waiting jobs by it. `loaders` are
    the template roles of the nodes that load the family's models: a job that got past all
    of them (ComfyUI ran them, or had them cached) is what changes what the studio believes
    is loaded; `shown` names what it loaded, for people (the UNet file, or e.g. BiRefNet)."""

    name: str
    files: Callable[[Settings], Mapping[str, str]]
    sampler: Callable[[Settings], SamplerDefaults] | None = None
    unet: Callable[[RequestBase, Settings], str | None] = lambda request, settings: None
    loaders: frozenset[str] = frozenset()
    shown: Callable[[RequestBase, Settings], str | None] | None = None
    # The family's GGUF UNet file (None: the family has no GGUF variant).
    gguf: Callable[[Settings], str] | None = None

    def shown_model(self, request: RequestBase, settings: Settings) -> str | None:
        """What a job of this family loads, in words for the sidebar (default: its UNet)."""
        return (self.shown or self.unet)(request, settings)

    def files_for(self, settings: Settings, variant: str | None) -> Mapping[str, str]:
        """The files a template variant binds, by role (preflight checks them): the GGUF
        variant's UNet and text encoder, or `files`."""
        files = self.files(settings)
        if variant != GGUF or self.gguf is None:
            return files
        return {**files, "unet": self.gguf(settings), "clip": text_encoder(variant, settings)}


def text_encoder(variant: str | None, settings: Settings) -> str:
    """The GGUF variant's encoder when one is configured (CLIPLoaderGGUF also loads fp8)."""
    m = settings.models
    return m.text_encoder_gguf if variant == GGUF and m.text_encoder_gguf else m.text_encoder


def generate_unet(request: RequestBase, settings: Settings) -> str:
    """The turbo variant runs its 4-step distilled UNet, the GGUF variant its Q4 file;
    everything else the usual one."""
    m = settings.models
    if request.variant == GGUF:
        return m.generate_gguf
    return m.generate_turbo_unet if request.variant == "turbo" else m.generate_unet


def edit_unet(request: RequestBase, settings: Settings) -> str:
    m = settings.models
    return m.edit_gguf if request.variant == GGUF else m.edit_unet


# The diffusion families' loader nodes: UNETLoader, CLIPLoader, VAELoader (or GGUF twins).
DIFFUSION_LOADERS = frozenset({"unet", "clip", "vae"})
GENERATION_MODEL = ModelFamily(
    "generation model",
    lambda s: {"unet": s.models.generate_unet, "clip": s.models.text_encoder, "vae": s.models.vae},
    lambda s: SamplerDefaults(s.sampling.generate_steps, s.sampling.generate_cfg),
    generate_unet,
    DIFFUSION_LOADERS,
    gguf=lambda s: s.models.generate_gguf,
)
EDIT_MODEL = ModelFamily(
    "edit model",
    lambda s: {"unet": s.models.edit_unet, "clip": s.models.text_encoder, "vae": s.models.vae},
    lambda s: SamplerDefaults(s.sampling.edit_steps, s.sampling.edit_cfg),
    edit_unet,
    DIFFUSION_LOADERS,
    gguf=lambda s: s.models.edit_gguf,
)
# BiRefNet is a model its node pack downloads and manages, not a folder file to check; the
# #rmbg node loads it and runs it.
BACKGROUND_REMOVAL_MODEL = ModelFamily(
    "background-removal model", lambda s: {}, loaders=frozenset({"rmbg"}),
    shown=lambda request, settings: settings.models.birefnet,
)


@dataclass(frozen=True)
class Sampling:
    """The resolved sampler values of one request (defaults filled from settings)."""

    seed: int
    steps: int
    cfg: float
    unet: str
    shift: float
    text_encoder: str = ""      # "": settings' fp8 encoder


def generate_sampling(request: RequestBase, settings: Settings) -> Sampling:
    s = settings.sampling
    unet = generate_unet(request, settings)
    if request.variant == "turbo":  # the 4-step distilled UNet has its own defaults
        steps, cfg = s.turbo_steps, s.turbo_cfg
    else:
        steps, cfg = s.generate_steps, s.generate_cfg
    return Sampling(
        seed=resolve_seed(request.seed),
        steps=request.steps if request.steps is not None else steps,
        cfg=float(request.cfg if request.cfg is not None else cfg),
        unet=unet,
        shift=s.generate_shift,
        text_encoder=text_encoder(request.variant, settings),
    )


def edit_sampling(request: RequestBase, settings: Settings) -> Sampling:
    s = settings.sampling
    return Sampling(
        seed=resolve_seed(request.seed),
        steps=request.steps if request.steps is not None else s.edit_steps,
        cfg=float(request.cfg if request.cfg is not None else s.edit_cfg),
        unet=edit_unet(request, settings),
        shift=s.edit_shift,
        text_encoder=text_encoder(request.variant, settings),
    )


def diffusion_values(
    sampling: Sampling, settings: Settings, prompt: str, negative: str
) -> RoleValues:
    """Bindings of the loaders, the texts and the sampler, shared by every diffusion mode."""
    return {
        "unet": {"name": sampling.unet},
        "clip": {"name": sampling.text_encoder or settings.models.text_encoder},
        "vae": {"name": settings.models.vae},
        "shift": {"shift": sampling.shift},
        "prompt": {"text": prompt},
        "negative": {"text": negative},
        "sampler": {
            "seed": sampling.seed,
            "steps": sampling.steps,
            "cfg": sampling.cfg,
            "sampler_name": settings.sampling.sampler,
            "scheduler": settings.sampling.scheduler,
        },
    }


# Roles a diffusion template may lack without being wrong (bound only when present).
DIFFUSION_OPTIONAL = frozenset({"shift"})
# The roles every diffusion template carries (a mode adds its own image and output roles).
DIFFUSION_ROLES = frozenset({"unet", "clip", "vae", "prompt", "negative", "sampler", "output"})
