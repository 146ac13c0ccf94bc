"""(h) Memory bounded by what was sent: the studio's peak RSS under concurrent large inputs.

`python -m bench.memory` (its own fake ComfyUI process, so only the studio is measured).
`run(fake)` fits bench/__main__'s sections (the in-process fake is not used: its numpy work
would count in this process's RSS).

Cases (issue 9, "tiny uploads cost gigabytes"):
- inpaint: 12 concurrent inpaint jobs, each a 40 MP PNG (a gradient with shapes: ~0.2 MB
  sent) and a full-size painted mask, through `studio.run`; each consumer drops its result
  once it has it (as the API does after encoding), so what is measured is the studio's own
  holding, plus the results in flight.
- multiref: 8 concurrent multi-reference jobs with three such images each.
- api-inpaint: the inpaint case through the images API's form handling
  (`backend.api.edits.build_edit_requests`, in a worker thread as the route runs it, with an
  OpenAI-style transparent mask), then `studio.run`.

Each case runs in a fresh process (`python -m bench.memory --case NAME --inputs DIR URL`), so
its peak is the studio's own: the process's VmHWM at the end, with nothing left over from
making the inputs or from an earlier case (memory a C allocator keeps after a free would
count otherwise). "base" is the RSS of that process just before the jobs start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.common import ROOT, fake_process, rss_mb, standalone

SIZE = (7744, 5160)           # 39.96 MP: just under the old 40 MP input limit
CASES = {"inpaint": 12, "multiref": 8, "api-inpaint": 12}


@dataclass
class Case:
    name: str
    jobs: int
    sent_mb: float = 0.0
    base_mb: float = 0.0
    peak_mb: float = 0.0
    after_mb: float = 0.0
    finished: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        failed = f", FAILED {len(self.failures)}: {self.failures[0]}" if self.failures else ""
        return (f"  {self.name}: {self.jobs} concurrent jobs ({self.sent_mb:.1f} MB sent): "
                f"peak RSS {self.peak_mb:.0f} MB (base {self.base_mb:.0f} MB, "
                f"+{self.peak_mb - self.base_mb:.0f}); {self.after_mb:.0f} MB after; "
                f"{self.finished} finished in {self.seconds:.1f} s{failed}")


@dataclass
class MemoryBench:
    cases: list[Case] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [case.line() for case in self.cases]

    def summary(self) -> str:
        return " ".join(f"peak_rss_{c.name.replace('-', '_')}_mb={c.peak_mb:.0f}"
                        for c in self.cases)


# --- inputs (made in the parent process) ---------------------------------------------------

def picture(seed: int) -> Image.Image:
    """A 40 MP picture that compresses to ~0.2 MB: a gradient, a few shapes."""
    width, height = SIZE
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    row = np.stack([ramp, ramp[::-1], np.full(width, 40 * (seed % 6), np.float32)], -1)
    image = Image.fromarray(np.broadcast_to(row.astype(np.uint8), (height, width, 3)).copy())
    draw = ImageDraw.Draw(image)
    for i in range(4):
        x, y = 600 + 1500 * i, 500 + 900 * ((i + seed) % 4)
        draw.ellipse((x, y, x + 900, y + 700), fill=(200, 40 * i, 90))
    return image


def studio_mask() -> Image.Image:
    """The UI's convention: white = repaint (an L picture of the image's size)."""
    mask = Image.new("L", SIZE, 0)
    ImageDraw.Draw(mask).rectangle((3000, 2000, 4600, 3200), fill=255)
    return mask


def openai_mask() -> Image.Image:
    """The images API's convention: fully transparent = repaint (RGBA, the image's size)."""
    mask = Image.new("RGBA", SIZE, (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle((3000, 2000, 4600, 3200), fill=(0, 0, 0, 0))
    return mask


def write_inputs(folder: Path) -> None:
    for seed in range(3):
        picture(seed).save(folder / f"picture{seed}.png", compress_level=6)
    studio_mask().save(folder / "mask.png")
    openai_mask().save(folder / "openai-mask.png")


# --- one case (in its own process) -----------------------------------------------------------

def _hwm_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


async def run_case(name: str, inputs: Path, comfy_url: str) -> Case:
    from backend.api.edits import EditForm, build_edit_requests
    from backend.comfy import ComfyClient
    from backend.jobs import Failed, Finished, Studio
    from backend.modes import REGISTRY
    from backend.modes.inpaint import InpaintRequest
    from backend.modes.multiref import MultiRefRequest
    from backend.requests import RequestBase
    from backend.workflows import TemplateLibrary
    from bench.common import studio_settings

    # Every job is its own person: the per-person cap must not refuse the burst.
    settings = studio_settings(comfy_url, max_queue_per_person=64)
    client = ComfyClient(comfy_url)
    studio = Studio(client, settings, TemplateLibrary(settings.workflows_dir))
    images = [(inputs / f"picture{seed}.png").read_bytes() for seed in range(3)]
    mask = (inputs / "mask.png").read_bytes()
    alpha_mask = (inputs / "openai-mask.png").read_bytes()
    case = Case(name, CASES[name])

    async def consume(request: RequestBase) -> None:
        async for event in studio.run(request, surface="api", owner=f"bench-{id(request)}"):
            if isinstance(event, Finished):
                case.finished += 1
            elif isinstance(event, Failed):
                case.failures.append(event.message)
        # The result (and everything else of the job) is dropped here, as after an API answer.

    async def through_form(i: int) -> None:
        form = EditForm({"prompt": f"a cat {i}", "model": "qwen-image-edit", "seed": str(i),
                         "steps": "2"}, (images[0],), alpha_mask)
        _, requests = await asyncio.to_thread(build_edit_requests, form, settings, REGISTRY,
                                              lambda mode: ["default"])
        for request in requests:
            await consume(request)

    try:
        # Warm-up: one small job, so the case does not pay for the socket and first imports.
        small = Image.new("RGB", (256, 256), (90, 90, 90))
        await consume(InpaintRequest(image=small, mask=Image.new("L", (256, 256), 255),
                                     prompt="warm", seed=1, steps=1))
        case.finished = 0
        case.base_mb = rss_mb()
        started = time.monotonic()
        if name == "inpaint":
            case.sent_mb = case.jobs * (len(images[0]) + len(mask)) / 1e6
            await asyncio.gather(*(consume(InpaintRequest(
                image=images[0], mask=mask, prompt=f"a cat {i}", seed=i, steps=2))
                for i in range(case.jobs)))
        elif name == "multiref":
            case.sent_mb = case.jobs * sum(map(len, images)) / 1e6
            await asyncio.gather(*(consume(MultiRefRequest(
                images=tuple(images), prompt=f"mix {i}", seed=i, steps=2))
                for i in range(case.jobs)))
        else:
            case.sent_mb = case.jobs * (len(images[0]) + len(alpha_mask)) / 1e6
            await asyncio.gather(*(through_form(i) for i in range(case.jobs)))
        case.seconds = time.monotonic() - started
        case.peak_mb = _hwm_mb()
        case.after_mb = rss_mb()
    finally:
        await client.aclose()
    return case


# --- the section -------------------------------------------------------------------------------

async def measure(comfy_url: str) -> MemoryBench:
    bench = MemoryBench()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        folder = Path(tmp)
        await asyncio.to_thread(write_inputs, folder)
        for name in CASES:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.memory", "--case", name, "--inputs", str(folder),
                comfy_url, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate()
            if proc.returncode != 0:
                bench.cases.append(Case(name, CASES[name], failures=[f"exit {proc.returncode}"]))
                continue
            bench.cases.append(Case(**json.loads(out.decode().strip().splitlines()[-1])))
            print(bench.cases[-1].line(), flush=True)
    return bench


async def run(_fake: object = None) -> MemoryBench:
    async with fake_process() as url:
        return await measure(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--inputs", type=Path)
    parser.add_argument("url", nargs="?")
    args = parser.parse_args(argv)
    if args.case is None:
        standalone(run)
        return 0
    case = asyncio.run(run_case(args.case, args.inputs, args.url))
    print(json.dumps(asdict(case)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
