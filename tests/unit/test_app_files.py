"""Workflow apps: what a file must be, the sentence each problem gets (naming the file, the
node and the role), the controls read from /object_info, and how the folder lands in the
registry (backend/apps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backend.apps import AppError, AppShelf, ControlKind, controls_of, load_app, title_from_stem
from backend.apps.controls import check_output
from backend.apps.mode import app_spec
from backend.modes import REGISTRY, ApiInput, ApiRoute, WarmupInputs
from backend.requests import InvalidRequest
from backend.settings import Settings
from backend.workflows import TemplateLibrary, bind
from tests.fake_comfy.objectinfo import recorded_object_info

INFO = recorded_object_info()


def blur(title: str = "Blur #param:blur_radius", **extra: Any) -> dict[str, Any]:
    graph: dict[str, Any] = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"},
              "_meta": {"title": "Picture #image"}},
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1,
                                                   "sigma": 1.0},
              "_meta": {"title": title}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"},
              "_meta": {"title": "Result #output"}},
    }
    graph.update(extra)
    return graph


def write(folder: Path, name: str, data: object) -> Path:
    path = folder / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def problem(path: Path, object_info: dict[str, Any] | None = INFO) -> str:
    with pytest.raises(AppError) as caught:
        app = load_app(path)
        controls_of(app, object_info)
        check_output(app, object_info)
    return caught.value.message


def test_a_titled_workflow_is_an_app_with_real_limits(tmp_path: Path) -> None:
    app = load_app(write(tmp_path, "soft_blur.json", blur()))
    assert (app.name, app.title, app.takes_image) == ("app-soft_blur", "Soft blur", True)
    image, radius = controls_of(app, INFO)
    assert image.kind is ControlKind.IMAGE
    assert (radius.name, radius.kind, radius.label) == ("blur_radius", ControlKind.INT, "Blur")
    assert (radius.low, radius.high, radius.step, radius.default) == (1, 31, 1, 1)


def test_combos_get_their_options_and_the_file_may_name_itself(tmp_path: Path) -> None:
    graph = blur(title="Blur")
    graph["2"] = {"class_type": "ImageScaleBy",
                  "inputs": {"image": ["1", 0], "upscale_method": "area", "scale_by": 0.5},
                  "_meta": {"title": "Method #param:upscale_method #param:scale_by"}}
    app = load_app(write(tmp_path, "x.json", {**graph, "title": "Half size"}))
    assert app.title == "Half size"
    controls = {c.name: c for c in controls_of(app, INFO)}
    assert controls["upscale_method"].kind is ControlKind.CHOICE
    assert "lanczos" in controls["upscale_method"].options
    assert (controls["scale_by"].kind, controls["scale_by"].low) == (ControlKind.FLOAT, 0.01)


def test_without_object_info_the_workflow_values_give_the_types(tmp_path: Path) -> None:
    app = load_app(write(tmp_path, "b.json", blur()))
    radius = controls_of(app, None)[1]
    assert (radius.kind, radius.low, radius.high) == (ControlKind.INT, None, None)


def test_title_from_the_file_name() -> None:
    assert title_from_stem("negative_film") == "Negative film"
    assert title_from_stem("sepia-tone") == "Sepia tone"


@pytest.mark.parametrize(
    ("name", "graph", "words"),
    [
        ("no_output.json",
         {k: v for k, v in blur().items() if k != "3"},
         ["no_output.json", "no output node", "#output", "SaveImage"]),
        ("typo.json", blur(title="Blur #radius"),
         ["typo.json", "node 2 (ImageBlur, 'Blur #radius')", "unknown role #radius"]),
        ("builtin.json", blur(title="Blur #unet"),
         ["builtin.json", "node 2 (ImageBlur", "#unet is a built-in mode's role"]),
        ("missing_input.json", blur(title="Blur #param:strength"),
         ["missing_input.json", "node 2 (ImageBlur", "#param:strength", "strength"]),
        ("link.json", {**blur(), "3": {**blur()["3"], "_meta": {"title": "#output #param:images"}}},
         ["link.json", "node 3 (SaveImage", "#param:images", "connected to another node"]),
        ("reserved.json", blur(title="Blur #param:image"),
         ["reserved.json", "node 2 (ImageBlur", "#param:image", "use #image"]),
        ("Bad Name.json", blur(), ["Bad Name.json", "lowercase"]),
        ("mask_alone.json",
         {**blur(), "1": {**blur()["1"], "_meta": {"title": "Mask #mask"}}},
         ["mask_alone.json", "#mask", "#image"]),
    ],
)
def test_structural_problems_name_file_node_and_role(
    tmp_path: Path, name: str, graph: dict[str, Any], words: list[str]
) -> None:
    message = problem(write(tmp_path, name, graph), None)
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    ("graph", "words"),
    [
        # a picture role on a class that uploads nothing
        ({**blur(), "2": {**blur()["2"], "_meta": {"title": "Blur #image"}}},
         ["node 2 (ImageBlur, 'Blur #image') #image", "goes on a LoadImage"]),
        # the result on a node that saves nothing
        ({**blur(), "2": {**blur()["2"], "_meta": {"title": "Blur #output"}},
          "3": {**blur()["3"], "_meta": {"title": "Save"}}},
         ["node 2 (ImageBlur, 'Blur #output')", "#output", "SaveImage"]),
        # the same, where the file gives the node the input it looks for
        ({**blur(), "2": {**blur()["2"], "inputs": {**blur()["2"]["inputs"], "filename_prefix": "x"},
                          "_meta": {"title": "Blur #output"}},
          "3": {**blur()["3"], "_meta": {"title": "Save"}}},
         ["node 2 (ImageBlur, 'Blur #output') #output", "goes on a SaveImage"]),
        # a param naming an input the class does not have (present in the file, not in ComfyUI)
        ({**blur(), "2": {**blur()["2"], "inputs": {**blur()["2"]["inputs"], "amount": 3},
                          "_meta": {"title": "Blur #param:amount"}}},
         ["node 2 (ImageBlur", "#param:amount", "ImageBlur has no input 'amount'"]),
        # text on a number
        ({**blur(), "2": {**blur()["2"], "inputs": {**blur()["2"]["inputs"], "text": 1},
                          "_meta": {"title": "Blur #prompt"}}},
         ["node 2 (ImageBlur", "#prompt"]),
    ],
)
def test_wrong_classes_are_named_against_object_info(
    tmp_path: Path, graph: dict[str, Any], words: list[str]
) -> None:
    message = problem(write(tmp_path, "wrong.json", graph))
    assert "wrong.json: node 2" in message
    for word in words:
        assert word in message, message


def test_its_request_binds_each_control_to_its_role(tmp_path: Path) -> None:
    app = load_app(write(tmp_path, "b.json", blur()))
    spec = app_spec(app, controls_of(app, INFO), 1000)
    assert spec.api is not None and spec.api.route is ApiRoute.EDITS
    assert spec.api.models == ("app-b",)
    call = ApiInput({"blur_radius": "7"}, "", (b"png",), None, Settings())
    request = spec.api.build(call)
    assert request.param("blur_radius") == 7
    with pytest.raises(InvalidRequest, match="between 1 and 31"):
        spec.operation.validate(spec.api.build(ApiInput({"blur_radius": "40"}, "", (b"x",),
                                                        None, Settings())), Settings())
    prepared = spec.operation.prepare(spec.warmup(WarmupInputs.sample()), Settings())
    graph = bind(app.template, prepared.bindings(app.template.roles, {"image": "up.png"}),
                 nonce="n1")
    assert graph["2"]["inputs"]["blur_radius"] == 1 and graph["1"]["inputs"]["image"] == "up.png"
    assert graph["3"]["inputs"]["filename_prefix"] == "banana/app-b-n1"


def test_an_app_without_a_picture_is_a_generation_model(tmp_path: Path) -> None:
    graph = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0},
              "_meta": {"title": "Canvas #param:width #param:color"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"},
              "_meta": {"title": "#output"}},
    }
    app = load_app(write(tmp_path, "canvas.json", graph))
    spec = app_spec(app, controls_of(app, INFO), 1000)
    assert spec.api is not None and spec.api.route is ApiRoute.GENERATIONS
    assert [c.name for c in controls_of(app, INFO)] == ["width", "color"]


def test_the_shelf_registers_apps_and_broken_ones_refuse_with_the_reason(tmp_path: Path) -> None:
    write(tmp_path, "good.json", blur())
    write(tmp_path, "bad.json", blur(title="Blur #radius"))
    registry = REGISTRY.copy()
    shelf = AppShelf(tmp_path, registry)
    shelf.apply(shelf._stamps(), INFO)
    assert {"app-good", "app-bad"} <= set(registry.names())
    assert registry.names()[-2:] == ("app-bad", "app-good"), "apps come after built-in modes"
    bad = registry.get("app-bad")
    assert bad.api is None
    with pytest.raises(InvalidRequest, match="unknown role #radius"):
        bad.operation.validate(bad.request_type(), Settings())
    entry = shelf.find("app-bad")
    assert entry is not None and entry.problem is not None and "bad.json" in entry.problem

    (tmp_path / "bad.json").unlink()
    write(tmp_path, "good.json", blur(title="Blur #param:sigma"))
    version = shelf.version
    shelf.apply(shelf._stamps(), INFO)
    assert "app-bad" not in registry and shelf.version == version + 1
    assert registry.get("app-good").inputs[-1].name == "sigma"
    shelf.unregister_all()
    assert "app-good" not in registry and "app-good" not in REGISTRY


def test_the_template_library_reads_apps_from_their_folder(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    write(apps, "b.json", blur())
    library = TemplateLibrary(tmp_path, apps)
    template = library.get("app-b", required={"output"})
    assert template.mode == "app-b" and template.path == apps / "b.json"
    assert library.variants("app-b") == ["default"]
    assert library.variants("app-none") == []


def test_the_docs_example_and_the_shipped_app_are_valid_apps(tmp_path: Path) -> None:
    from backend.settings import PROJECT_ROOT

    doc = (PROJECT_ROOT / "docs" / "modes.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Workflow apps"):]
    example = section[section.index("```json") + len("```json"):]
    example = example[:example.index("```")]
    app = load_app(write(tmp_path, "blur.json", json.loads(example)))
    assert [(c.name, c.low, c.high) for c in controls_of(app, INFO)] == [
        ("image", None, None), ("blur_radius", 1, 31)]
    for path in sorted((PROJECT_ROOT / "workflows" / "apps").glob("*.json")):
        shipped = load_app(path)
        check_output(shipped, INFO)
        assert controls_of(shipped, INFO), path


def test_a_masked_app_uploads_the_mask_at_the_pictures_size(tmp_path: Path) -> None:
    graph = blur()
    graph["4"] = {"class_type": "LoadImage", "inputs": {"image": "m.png"},
                  "_meta": {"title": "Where #mask"}}
    app = load_app(write(tmp_path, "masked.json", graph))
    spec = app_spec(app, controls_of(app, INFO), 1000)
    assert spec.api is not None and [i.name for i in spec.inputs] == [
        "image", "mask", "blur_radius"]
    prepared = spec.operation.prepare(spec.warmup(WarmupInputs.sample(64)), Settings())
    assert set(prepared.uploads) == {"image", "mask"}
