"""`kill -9` of the studio mid-job, then a restart: the prompts the dead process left in
ComfyUI's queue are removed (the running one interrupted, the waiting one deleted), other
clients' work is left alone, and the next job starts at once instead of behind the orphans.
Issue 9 item 7 (before: the next job waited 4.7 s behind the orphan).

Real processes (`python app.py …`) against an in-process fake ComfyUI with slow sampler steps.
Two studio processes share one data dir (one studio id) so that the dead studio leaves both a
running and a waiting prompt: the studio itself hands ComfyUI one job at a time.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_comfy import FakeComfy
from tests.matrix.surfaces import free_port

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]
STEP_DELAY_S = 1.2
ORPHAN_STEPS = 100            # 2 min of sampling each: far longer than a restart, even a slow one
BOOT_TIMEOUT_S = 90


class StudioProcess:
    def __init__(self, comfy_url: str, data_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir), "GRADIO_ANALYTICS_ENABLED": "False"}
        env.pop("STUDIO_API_KEY", None)
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(self.port), "--comfy-url", comfy_url],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                if httpx.get(self.url + "/metrics", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the studio did not start:\n{self.log()}")

    def generate(self, steps: int, seed: int, timeout: float = 60) -> httpx.Response:
        body = {"prompt": "a lighthouse", "size": "256x256", "steps": steps, "seed": seed}
        return httpx.post(self.url + "/v1/images/generations", json=body, timeout=timeout)

    def generate_in_background(self, steps: int, seed: int) -> threading.Thread:
        def run() -> None:
            with contextlib.suppress(httpx.TransportError):   # killed under it
                self.generate(steps, seed, timeout=120)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def kill(self) -> None:
        self.proc.kill()                            # SIGKILL: no shutdown, no cancel
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def slow_fake() -> Iterator[FakeComfy]:
    fake = FakeComfy(step_delay=STEP_DELAY_S).start()
    try:
        yield fake
    finally:
        fake.close()


def _wait(predicate: object, what: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_studio_leaves_nothing_behind_in_comfyui(
    slow_fake: FakeComfy, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    studios: list[StudioProcess] = []
    try:
        # Both processes read one studio id (written first, so they can boot side by side).
        data_dir.mkdir()
        studio_id = uuid.uuid4().hex
        (data_dir / "studio-id").write_text(studio_id + "\n")
        first = StudioProcess(slow_fake.url, data_dir, tmp_path / "first.log")
        studios.append(first)
        second = StudioProcess(slow_fake.url, data_dir, tmp_path / "second.log")
        studios.append(second)
        first.wait_ready()
        second.wait_ready()

        first.generate_in_background(ORPHAN_STEPS, seed=1)
        _wait(lambda: slow_fake.queue_ids()[0], "the first studio's job to run")
        second.generate_in_background(ORPHAN_STEPS, seed=2)
        _wait(lambda: slow_fake.queue_ids()[1], "the second studio's job to wait")
        (orphan_running,), (orphan_pending,) = slow_fake.queue_ids()
        first.kill()
        second.kill()
        # a foreign client's job (ComfyUI's own page, say) waits behind them: not ours
        foreign = httpx.post(slow_fake.url + "/prompt", timeout=10, json={
            "prompt": _foreign_graph(), "client_id": "someone-else"}).json()["prompt_id"]
        assert slow_fake.queue_ids() == ([orphan_running], [orphan_pending, foreign])

        restarted = StudioProcess(slow_fake.url, data_dir, tmp_path / "restarted.log")
        studios.append(restarted)
        restarted.wait_ready()
        _wait(lambda: orphan_running not in slow_fake.queue_ids()[0],
              "the orphan to be interrupted", within=10)
        running, pending = slow_fake.queue_ids()
        assert orphan_pending not in running + pending
        assert slow_fake.history(orphan_pending) == {}          # deleted, never ran
        entry = slow_fake.history(orphan_running)[orphan_running]
        assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])
        assert entry["prompt"][3]["banana_studio"]["studio"] == studio_id
        assert "removed 2 prompts a previous studio process left in ComfyUI's queue" in (
            restarted.log())

        # The foreign job was left alone; it is short, and then ours runs at once — not
        # behind 2 × 2 min of orphans.
        slow_fake.set_delays(step=0.0)
        started = time.monotonic()
        response = restarted.generate(steps=2, seed=3)
        took = time.monotonic() - started
        print(f"the next job took {took:.2f} s after the restart")
        assert response.status_code == 200, response.text
        assert took < ORPHAN_STEPS * STEP_DELAY_S / 3, took
        assert slow_fake.history(foreign)[foreign]["status"]["status_str"] == "success"
    finally:
        for studio in studios:
            studio.stop()


def _foreign_graph() -> dict[str, object]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                     "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
