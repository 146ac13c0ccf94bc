"""Every shipped template loads, carries its mode's roles, binds, and passes ComfyUI's checks.

The check is ComfyUI 0.3.64's own validation (`backend.comfy.validation`) against the schema
recorded from a real server, with the model folders and the input folder filled with the
names a real install would have.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from backend.comfy.validation import validate_prompt
from backend.modes import REGISTRY
from backend.settings import PROJECT_ROOT, ModelFiles
from backend.workflows import Template, TemplateLibrary, bind, load_template
from backend.workflows.binding import is_link
from backend.workflows.roles import ROLES

WORKFLOWS = PROJECT_ROOT / "workflows"
RECORDED = [
    PROJECT_ROOT / "tests" / "fixtures" / "comfy" / "object_info.json",
    PROJECT_ROOT.parent / "shared" / "comfy" / "object_info.json",
]
GGUF_SCHEMAS = PROJECT_ROOT / "tests" / "fixtures" / "comfy" / "gguf" / "object_info_gguf.json"
MODELS = ModelFiles()
TEMPLATE_FILES = sorted(WORKFLOWS.glob("*.json"))
UPLOADS = {
    "image": "banana/0a1b2c3d.png",
    "image1": "banana/11111111.png",
    "image2": "banana/22222222.png",
    "image3": "banana/33333333.png",
    "mask": "banana/4d4d4d4d.png",
}


def _recorded_object_info() -> dict[str, Any]:
    for path in RECORDED:
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
    raise FileNotFoundError(f"recorded object_info.json not found in {RECORDED}")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """The recorded schema (captured with empty model folders), folders filled in."""
    info = copy.deepcopy(_recorded_object_info())
    required = {c: info[c]["input"]["required"] for c in ("UNETLoader", "CLIPLoader", "VAELoader")}
    required["UNETLoader"]["unet_name"][0] = [
        MODELS.generate_unet,
        MODELS.generate_turbo_unet,
        MODELS.edit_unet,
    ]
    required["CLIPLoader"]["clip_name"][0] = [MODELS.text_encoder]
    required["VAELoader"]["vae_name"][0] = [MODELS.vae, "pixel_space"]
    info["LoadImage"]["input"]["required"]["image"][0] = ["example.png", *UPLOADS.values()]
    # The ComfyUI-GGUF pack's classes as recorded (their lists hold the GGUF defaults).
    info.update(json.loads(GGUF_SCHEMAS.read_text(encoding="utf-8")))
    return info


def typical_values(template: Template) -> dict[str, dict[str, Any]]:
    """What the operations bind for a mode, every image slot filled."""
    unet: str | None = {
        ("generate", "default"): MODELS.generate_unet,
        ("generate", "turbo"): MODELS.generate_turbo_unet,
    }.get((template.mode, template.variant), MODELS.edit_unet)
    if template.variant == "gguf":
        unet = None      # the template's own GGUF file (no setting for it yet)
    values: dict[str, dict[str, Any]] = {
        "unet": {"name": unet},
        "clip": {"name": MODELS.text_encoder},
        "vae": {"name": MODELS.vae},
        "prompt": {"text": "a ripe banana on a blue plate"},
        "negative": {"text": "blurry"},
        "sampler": {"seed": 123456789, "steps": 12, "cfg": 2.5, "denoise": 1.0},
        "latent": {"width": 1024, "height": 768, "batch": 1},
        "shift": {"shift": 3.0},
        "rmbg": {"model": "BiRefNet-general", "sensitivity": 1.0},
        "region": {"text": "the plate"},
        "grounding_model": {"name": MODELS.florence2},
        "segment_model": {"name": MODELS.sam2},
        "grow": {"pixels": 12},
        "feather": {"pixels": 4},
        "pad": {"left": 0, "top": 64, "right": 128, "bottom": 0, "feathering": 0},
    }
    values.update({role: {"file": name} for role, name in UPLOADS.items()})
    return {role: v for role, v in values.items() if role in template.roles}


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.name)
def test_template_loads_with_its_mode_roles(path: Path) -> None:
    template = load_template(path, REGISTRY.get(path.name.split(".")[0]).roles)
    assert REGISTRY.get(template.mode).roles <= template.roles.keys()
    assert template.output_roles["output"] in template.graph
    library = TemplateLibrary(WORKFLOWS)
    assert template.variant in library.variants(template.mode)


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.name)
def test_every_class_and_input_exists_in_the_schema(path: Path, schema: dict[str, Any]) -> None:
    template = load_template(path)
    for node_id, node in template.graph.items():
        assert node["class_type"] in schema, f"{path.name} node {node_id}"
        spec = schema[node["class_type"]]["input"]
        declared = {**spec.get("required", {}), **spec.get("optional", {})}
        assert set(node["inputs"]) <= set(declared), f"{path.name} node {node_id}"
        assert set(spec.get("required", {})) <= set(node["inputs"]), f"{path.name} node {node_id}"
        for name, value in node["inputs"].items():
            if is_link(value):
                source = template.graph[value[0]]
                outputs = schema[source["class_type"]]["output"]
                expected = declared[name][0]
                if isinstance(expected, str) and expected not in ("*", "COMBO"):
                    assert outputs[value[1]] == expected, f"{path.name} {node_id}.{name}"


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.name)
def test_bound_template_passes_comfyui_validation(path: Path, schema: dict[str, Any]) -> None:
    template = load_template(path)
    graph = bind(template, typical_values(template), nonce="t3st")
    result = validate_prompt(graph, schema, input_files=set(UPLOADS.values()))
    assert result.ok, json.dumps(result.body, indent=1)[:3000]
    assert not result.node_errors
    assert set(template.output_roles.values()) <= set(result.outputs_to_execute)


def test_validation_catches_a_broken_template(schema: dict[str, Any]) -> None:
    # The check above can fail: a wrong combo value is rejected.
    template = load_template(WORKFLOWS / "remove_background.json")
    graph = bind(template, typical_values(template), nonce="t3st")
    graph[template.roles["rmbg"][0]]["inputs"]["model"] = "RMBG-2.0"
    assert not validate_prompt(graph, schema, input_files=set(UPLOADS.values())).ok


def test_multiref_with_two_references_still_validates(schema: dict[str, Any]) -> None:
    template = load_template(WORKFLOWS / "multiref.json")
    values = typical_values(template)
    del values["image3"]
    graph = bind(template, values, nonce="t3st")
    assert validate_prompt(graph, schema, input_files=set(UPLOADS.values())).ok


def test_default_templates_do_not_rescale() -> None:
    # Decided: the studio pre-scales in Python so image, mask, latent and composite align.
    for path in TEMPLATE_FILES:
        classes = {n["class_type"] for n in load_template(path).graph.values()}
        assert not classes & {"ImageScaleToTotalPixels", "ImageScale", "ImageScaleBy"}, path.name


def test_composites_reuse_the_sampling_mask() -> None:
    for name in ("region_edit.json", "inpaint.json", "inpaint.conditioning.json", "outpaint.json"):
        graph = load_template(WORKFLOWS / name).graph
        composite = next(n for n in graph.values() if n["class_type"] == "ImageCompositeMasked")
        masks = [
            n["inputs"]["mask"]
            for n in graph.values()
            if n["class_type"] in ("SetLatentNoiseMask", "InpaintModelConditioning")
        ]
        assert masks and all(m == composite["inputs"]["mask"] for m in masks), name
        assert (composite["inputs"]["x"], composite["inputs"]["y"]) == (0, 0)


def test_docs_list_every_role() -> None:
    text = (PROJECT_ROOT / "docs" / "workflows.md").read_text(encoding="utf-8")
    for role in ROLES:
        assert f"`#{role}`" in text, role
