"""The mode registry: the built-in modes in tab order, runtime registration, and the facts the
rest of the studio derives from it (one place per fact)."""

from __future__ import annotations

import dataclasses

import pytest

from backend import limits
from backend.modes import REGISTRY, ApiRoute, InputKind, ModeRegistry, builtin_registry
from backend.modes.edit import EditRequest
from backend.modes.generate import GenerateRequest
from backend.settings import Settings


def test_builtin_modes_in_tab_order() -> None:
    assert REGISTRY.names() == (
        "generate", "edit", "multiref", "remove_background", "region_edit", "inpaint", "outpaint",
    )
    assert [s.title for s in REGISTRY][:2] == ["Generate", "Edit"]
    assert builtin_registry().names() == REGISTRY.names()   # discovery is deterministic


def test_every_request_type_names_its_mode() -> None:
    for spec in REGISTRY:
        assert spec.request_type.mode == spec.name
    assert REGISTRY.spec_for(GenerateRequest("x")) is REGISTRY.get("generate")
    assert REGISTRY.spec_for(object()) is None


def test_register_and_unregister_at_runtime_leave_the_source_alone() -> None:
    registry = REGISTRY.copy()
    edit = registry.get("edit")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(edit)
    registry.unregister("edit")
    assert "edit" not in registry and "edit" in REGISTRY
    assert registry.spec_for(EditRequest(b"x", "p")) is None
    registry.register(edit)
    assert registry.names() == REGISTRY.names()   # back in its tab-order place


def test_a_bad_declaration_is_refused_at_registration() -> None:
    edit = REGISTRY.get("edit")
    with pytest.raises(ValueError, match="unknown roles: nonsense"):
        ModeRegistry([dataclasses.replace(edit, roles=edit.roles | {"nonsense"})])
    with pytest.raises(ValueError, match="mode name"):
        ModeRegistry([dataclasses.replace(edit, name="Bad Name")])
    with pytest.raises(ValueError, match="EditRequest.mode is 'edit'"):
        ModeRegistry([dataclasses.replace(edit, name="other")])


def test_peak_vram_is_declared_and_overridable_for_any_mode() -> None:
    settings = Settings.from_env({"STUDIO_PEAK_VRAM_REGION_EDIT": "20",
                                  "STUDIO_PEAK_VRAM_APP-X": "2.5"})
    assert REGISTRY.get("region_edit").peak_vram(settings) == 20.0
    assert REGISTRY.get("multiref").peak_vram(settings) == 32.0
    assert settings.peak_vram_overrides["app-x"] == 2.5   # a mode registered later


def test_api_routes_and_their_defaults() -> None:
    generations = REGISTRY.on_route(ApiRoute.GENERATIONS)
    edits = REGISTRY.on_route(ApiRoute.EDITS)
    assert [s.name for s in generations] == ["generate"]
    assert edits[0].api is not None and edits[0].api.models == ("qwen-image-edit",)
    sharing = {s.name for s in edits if s.api is not None and s.api.shares_default}
    assert sharing == {"multiref", "inpaint"}


def test_inputs_carry_the_limits_the_ui_and_api_read() -> None:
    grow = REGISTRY.get("inpaint").input("grow")
    assert grow is not None and grow.knob is limits.GROW and grow.kind is InputKind.NUMBER
    assert REGISTRY.get("multiref").max_images == limits.REFERENCES.high
    assert REGISTRY.get("generate").max_images == 0
    assert not REGISTRY.get("outpaint").prompt_required
    assert REGISTRY.get("remove_background").family.sampler is None


def test_one_value_per_limit() -> None:
    assert (limits.STEPS.low, limits.STEPS.high) == (1, 100)
    assert (limits.CFG.low, limits.CFG.high) == (0.0, 20.0)
    assert limits.GROW.high == limits.FEATHER.high == 256
    assert limits.MAX_SEED == 2**53 - 1
    assert Settings().pad_knob.high == limits.PAD.high
    assert Settings(max_outpaint_pad=512).pad_knob.high == 512


def _block(text: str, language: str, after: str) -> str:
    start = text.index(f"```{language}\n", text.index(after)) + len(language) + 4
    return text[start:text.index("```", start)]


def test_the_worked_example_in_docs_modes_is_true(tmp_path, monkeypatch) -> None:
    """docs/modes.md's two files, as written there, make a registered mode: its module is
    found by discovery alone, and its template loads with the roles it declares."""
    import json
    import sys

    import backend.modes as modes_package
    from backend.settings import PROJECT_ROOT
    from backend.workflows import TemplateLibrary

    doc = (PROJECT_ROOT / "docs" / "modes.md").read_text(encoding="utf-8")
    (tmp_path / "invert.py").write_text(_block(doc, "python", "backend/modes/invert.py"))
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    template = json.loads(_block(doc, "json", "workflows/invert.json"))
    (workflows / "invert.json").write_text(json.dumps(template))
    monkeypatch.setattr(modes_package, "__path__", [*modes_package.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "backend.modes.invert", raising=False)
    try:
        registry = builtin_registry()
    finally:
        sys.modules.pop("backend.modes.invert", None)
    assert registry.names()[-1] == "invert" and "invert" not in REGISTRY
    spec = registry.get("invert")
    loaded = TemplateLibrary(workflows).get("invert", required=spec.roles)
    assert loaded.output_roles == {"output": "3"}
    from backend.modes.spec import WarmupInputs

    request = spec.warmup(WarmupInputs.sample())
    prepared = registry.operation_for(request).prepare(request, Settings())
    assert set(prepared.uploads) == {"image"}
