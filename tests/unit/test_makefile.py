"""The Makefile's `install` and `fake` targets, run on a copy in a temporary folder with the
venv build stubbed through make variables: never the real venv, never pip."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fake_comfy.__main__ import parse_args

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="needs GNU make")

# Stand-ins for `python -m venv` and pip, slow enough for two makes to overlap. Like pip in a
# venv that is still being made, the install fails while .venv/bin/pip is missing (the
# reported `.venv/bin/pip: No such file or directory`).
STUBS = (
    "VENV_CREATE=mkdir -p .venv && sleep 0.6 && mkdir -p .venv/bin && touch .venv/bin/pip",
    "PIP_INSTALL=test -e .venv/bin/pip && sleep 0.6 && echo installed >> installs.log",
)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    return tmp_path


def _env() -> dict[str, str]:
    # Not the make that may be running these tests (its jobserver and flags).
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def make(clone: Path, *args: str) -> subprocess.Popen[str]:
    assert MAKE is not None
    return subprocess.Popen([MAKE, *args, *STUBS], cwd=clone, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_two_installs_at_once_build_the_venv_once(clone: Path) -> None:
    """`make fake &` then `make run` on a fresh clone: the second waits, then finds it done."""
    first = make(clone, "install")
    second = make(clone, "install")
    outputs = [p.communicate(timeout=60)[0] for p in (first, second)]

    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert (clone / "installs.log").read_text() == "installed\n"
    assert (clone / ".venv" / ".installed").is_file()

    again = make(clone, "install")                 # installed: nothing to do
    again.communicate(timeout=60)
    assert again.returncode == 0 and (clone / "installs.log").read_text() == "installed\n"


def _fake_command(clone: Path, *args: str) -> list[str]:
    """The command `make fake` would run (dry run, with the venv already installed)."""
    (clone / ".venv").mkdir()
    (clone / ".venv" / ".installed").touch()
    os.utime(clone / "pyproject.toml", (0, 0))
    process = make(clone, "-n", "fake", *args)
    out = process.communicate(timeout=60)[0]
    assert process.returncode == 0, out
    lines = out.replace("\\\n", " ").splitlines()      # the recipe's continued lines
    line = next(x for x in lines if "-m tests.fake_comfy" in x)
    words = shlex.split(line)
    return words[words.index("tests.fake_comfy") + 1:]


def test_make_fake_runs_at_a_speed_a_person_can_watch(clone: Path) -> None:
    args = parse_args(_fake_command(clone))
    assert (args.host, args.port) == ("127.0.0.1", 8188)
    assert (args.step_delay, args.load_delay, args.preview_method) == (0.25, 3.0, "auto")


def test_make_fake_takes_port_speed_and_preview_method(clone: Path) -> None:
    args = parse_args(_fake_command(
        clone, "FAKE_ARGS=--port 8189 --step-delay 0.3 --preview-method none"))
    assert (args.port, args.step_delay, args.preview_method) == (8189, 0.3, "none")
    assert args.load_delay == 3.0                  # the other defaults stay
