"""`python -m tests.fake_comfy --host 127.0.0.1 --port 8188 [--step-delay S] [--load-delay S]
[--preview-method none|auto|latent2rgb] [--vram-gb G] [--other-tenant-gb G] [--cpu] [--no-gguf]`"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from .fake import FakeComfy
from .state import PREVIEW_METHODS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_comfy",
                                     description="A fake ComfyUI 0.3.64 for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--step-delay", type=float, default=0.0,
                        help="seconds per sampler step")
    parser.add_argument("--load-delay", type=float, default=0.0,
                        help="seconds to load a model that is not resident")
    parser.add_argument("--node-delay", type=float, default=0.0,
                        help="seconds added to every executed node")
    parser.add_argument("--vram-gb", type=float, default=None,
                        help="the device's memory in GB (default 48; with --cpu the recorded "
                             "machine's RAM, 23.5)")
    parser.add_argument("--other-tenant-gb", type=float, default=0.0,
                        help="GB another process holds on the device")
    parser.add_argument("--cpu", action="store_true",
                        help="report a CPU device (RAM as vram), like ComfyUI's --cpu")
    parser.add_argument("--preview-method", choices=PREVIEW_METHODS, default="auto",
                        help="sampler previews per step; none sends none (the real ComfyUI's "
                             "default is none, the fake's auto)")
    parser.add_argument("--no-gguf", action="store_true",
                        help="without the ComfyUI-GGUF pack (classes and model folders)")
    parser.add_argument("--root", default=None,
                        help="folder for input/ output/ temp/ (default: a temporary one)")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def fake_from_args(args: argparse.Namespace) -> FakeComfy:
    """The (not yet started) fake the command line describes."""
    return FakeComfy(args.host, args.port, root=args.root, step_delay=args.step_delay,
                     load_delay=args.load_delay, node_delay=args.node_delay,
                     vram_total_gb=args.vram_gb, other_tenant_gb=args.other_tenant_gb,
                     cpu=args.cpu, preview_method=args.preview_method, gguf=not args.no_gguf)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fake = fake_from_args(args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    fake.start()
    logging.getLogger(__name__).info("fake ComfyUI ready at %s (root %s)", fake.url,
                                     fake.config.root)
    stop.wait()
    fake.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
