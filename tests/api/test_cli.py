"""`python app.py health|warmup|free|library` against a studio (uvicorn thread) backed by the
fake."""

from __future__ import annotations

import dataclasses

import pytest

from backend.api import chat
from backend.api.errors import ApiError
from backend.cli import main
from tests.api.conftest import free_port


def run(argv: list[str], settings) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = main(argv, settings, say=lines.append)
    return code, lines


def test_health_passes_against_a_working_studio(studio):
    code, lines = run(["health", "--url", studio.url], studio.settings)
    assert code == 0, lines
    assert lines[0].startswith("1. ComfyUI of the studio") and ": ok" in lines[0]
    assert "0.3.64" in lines[0]                       # the version the studio reports
    assert lines[1].startswith("2. Studio image generation") and "256x256 PNG" in lines[1]
    assert lines[2].startswith("3. Studio chat") and "with a picture" in lines[2]
    assert lines[-1] == "OK"


def test_health_asks_the_probed_studio_about_its_comfyui(studio):
    """Issue 10 #14: step 1 checked the CALLER's COMFYUI_URL (127.0.0.1:8188 by default), so
    a healthy remote studio failed step 1. Here the caller's ComfyUI is nowhere."""
    caller = dataclasses.replace(studio.settings, comfy_url=f"http://127.0.0.1:{free_port()}")
    code, lines = run(["health", "--url", studio.url], caller)
    assert code == 0, lines


def test_health_names_step_1_when_comfyui_is_down(studio):
    studio.fake.stop()
    code, lines = run(["health", "--url", studio.url], studio.settings)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("1. ") and "FAILED" in lines[0]
    assert "cannot reach its ComfyUI" in lines[0]


def test_health_names_step_2_when_the_studio_fails(studio):
    # ComfyUI answers its queue, but the studio cannot run a job: its model file is missing.
    studio.fake.set_models("diffusion_models", [])
    code, lines = run(["health", "--url", studio.url], studio.settings)
    assert code == 2
    assert "ok" in lines[0] and lines[1].startswith("2. ") and "FAILED" in lines[1]
    assert "HTTP 424" in lines[1]


def test_health_names_step_1_when_the_studio_is_not_there(studio):
    code, lines = run(["health", "--url", f"http://127.0.0.1:{free_port()}"], studio.settings)
    assert code == 1 and "FAILED" in lines[0] and "did not answer" in lines[0]


def test_health_names_step_3_when_the_chat_fails(studio, monkeypatch: pytest.MonkeyPatch):
    async def refuse(*args: object, **kwargs: object) -> object:
        raise ApiError(503, "chat is down for the test", code="test")

    monkeypatch.setattr(chat, "complete", refuse)
    code, lines = run(["health", "--url", studio.url], studio.settings)
    assert code == 3, lines
    assert lines[2].startswith("3. Studio chat") and "HTTP 503: chat is down" in lines[2]


def test_health_with_a_wrong_key_fails_step_2(studio):
    wrong = dataclasses.replace(studio.settings, api_key="sk-nope")
    code, lines = run(["health", "--url", studio.url], wrong)
    assert code == 2 and "HTTP 401" in lines[1]


def test_warmup_and_free(fake_comfy):
    from tests.api.conftest import studio_settings

    settings = studio_settings(fake_comfy)
    code, lines = run(["warmup"], settings)
    assert code == 0, lines
    warmed = {line.split()[0] for line in lines[:-1]}
    assert warmed == {"generate", "edit", "multiref", "remove_background", "region_edit",
                      "inpaint", "outpaint"}
    assert lines[-1] == "all modes warm"
    assert fake_comfy.resident_models                # something is loaded now

    code, lines = run(["free"], settings)
    assert code == 0
    assert lines[0].startswith("Freed ") and " GB" in lines[0]
    assert not fake_comfy.resident_models
    code, lines = run(["free"], settings)
    assert lines[0].startswith("Nothing to free")


def test_free_when_comfyui_is_down(fake_comfy):
    from tests.api.conftest import studio_settings

    settings = studio_settings(fake_comfy)
    fake_comfy.stop()
    code, lines = run(["free"], settings)
    assert code == 1 and lines[0].startswith("Could not free VRAM")


def test_library_commands_are_wired(studio, tmp_path):
    """`python app.py library export|import|check` reach backend/library/cli.py."""
    code, lines = run(["health", "--url", studio.url], studio.settings)   # makes two items
    assert code == 0, lines
    code, lines = run(["library", "check"], studio.settings)
    assert code == 0 and lines, lines
    target = tmp_path / "library.zip"
    code, lines = run(["library", "export", str(target)], studio.settings)
    assert code == 0 and target.stat().st_size > 0, lines


def test_app_py_passes_library_to_the_cli():
    import app

    args = app.parse_args(["library", "export", "x.zip", "--user", "api:1a2b3c4d"])
    assert args.command == "library" and args.rest == ["export", "x.zip", "--user", "api:1a2b3c4d"]
