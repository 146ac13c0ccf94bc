"""`python -m tests.fake_llm --port 8099 --decision '{"action": "edit", "prompt": "x"}'`
(for trying `STUDIO_ROUTER_URL` by hand)."""

from __future__ import annotations

import argparse
import json
import signal
import threading

from .fake import FakeLlm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_llm")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--decision", default='{"action": "help", "prompt": "", "reason": "fake"}',
                        help="the JSON decision every answer carries")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    args = parser.parse_args(argv)
    fake = FakeLlm(args.host, args.port, delay_s=args.delay)
    fake.answer_decision(json.loads(args.decision))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    fake.start()
    print(f"fake LLM at {fake.url}", flush=True)
    stop.wait()
    fake.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
