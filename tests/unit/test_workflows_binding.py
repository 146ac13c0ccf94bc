"""Binding by role, pruning, template loading errors, reload, preflight messages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backend.modes import REGISTRY
from backend.settings import PROJECT_ROOT
from backend.workflows import (
    MissingRole,
    TemplateError,
    TemplateLibrary,
    bind,
    check_ready,
    load_template,
    new_nonce,
    requirements,
)

WORKFLOWS = PROJECT_ROOT / "workflows"


@pytest.fixture
def library() -> TemplateLibrary:
    return TemplateLibrary(WORKFLOWS)


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def minimal_remove_background(prompt_title: str = "Remove #rmbg") -> dict:
    return {
        "1": {
            "class_type": "LoadImage",
            "inputs": {"image": "x.png"},
            "_meta": {"title": "#image"},
        },
        "2": {
            "class_type": "BiRefNetRMBG",
            "inputs": {"image": ["1", 0], "model": "BiRefNet-general"},
            "_meta": {"title": prompt_title},
        },
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": "x"},
            "_meta": {"title": "Result #output"},
        },
    }


# --- binding -----------------------------------------------------------------------------


def test_values_land_on_role_nodes_and_template_is_untouched(library: TemplateLibrary) -> None:
    template = library.get("generate")
    before = json.dumps(template.graph, sort_keys=True)
    graph = bind(
        template,
        {
            "prompt": {"text": "a banana"},
            "negative": {"text": "blurry"},
            "sampler": {"seed": 7, "steps": 9, "cfg": 3.0},
            "latent": {"width": 1024, "height": 768, "batch": 2},
            "unet": {"name": "custom.safetensors"},
        },
        nonce="n1",
    )
    by_title = {n["_meta"]["title"]: n["inputs"] for n in graph.values()}
    assert by_title["Positive prompt #prompt"]["text"] == "a banana"
    assert by_title["Negative prompt #negative"]["text"] == "blurry"
    sampler = by_title["Sampler #sampler"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"]) == (7, 9, 3.0)
    latent = by_title["Size #latent"]
    assert (latent["width"], latent["height"], latent["batch_size"]) == (1024, 768, 2)
    assert by_title["Diffusion model #unet"]["unet_name"] == "custom.safetensors"
    assert json.dumps(template.graph, sort_keys=True) == before


def test_none_keeps_the_template_value(library: TemplateLibrary) -> None:
    template = library.get("generate")
    graph = bind(template, {"sampler": {"steps": None, "seed": 1}}, nonce="n")
    sampler = graph[template.roles["sampler"][0]]["inputs"]
    assert sampler["steps"] == 20 and sampler["seed"] == 1


def test_missing_role_names_mode_file_and_role(library: TemplateLibrary) -> None:
    template = library.get("generate")
    with pytest.raises(MissingRole) as info:
        bind(template, {"prompt": {"text": "x"}, "region": {"text": "the car"}}, nonce="n")
    message = info.value.message
    assert "generate" in message and "generate.json" in message and "#region" in message
    assert isinstance(info.value, TemplateError)


def test_unknown_field_is_an_error(library: TemplateLibrary) -> None:
    with pytest.raises(TemplateError, match="no field 'txt'"):
        bind(library.get("generate"), {"prompt": {"txt": "x"}}, nonce="n")


def test_multiref_prunes_unused_reference_slots(library: TemplateLibrary) -> None:
    template = library.get("multiref")
    graph = bind(
        template,
        {"image1": {"file": "banana/a.png"}, "image2": {"file": "banana/b.png"}},
        nonce="n",
    )
    loads = [n["inputs"]["image"] for n in graph.values() if n["class_type"] == "LoadImage"]
    assert sorted(loads) == ["banana/a.png", "banana/b.png"]
    assert template.roles["image3"][0] not in graph
    encoders = [n for n in graph.values() if n["class_type"] == "TextEncodeQwenImageEditPlus"]
    assert len(encoders) == 2
    for enc in encoders:
        assert "image3" not in enc["inputs"]
        assert enc["inputs"]["image1"][0] in graph and enc["inputs"]["image2"][0] in graph


def test_multiref_with_one_reference_keeps_only_image1(library: TemplateLibrary) -> None:
    graph = bind(library.get("multiref"), {"image1": {"file": "banana/a.png"}}, nonce="n")
    for node in graph.values():
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in graph, "a link points at a pruned node"
        if node["class_type"] == "TextEncodeQwenImageEditPlus":
            assert {"image2", "image3"}.isdisjoint(node["inputs"])


def test_pruning_a_required_slot_names_the_dangling_input(library: TemplateLibrary) -> None:
    # inpaint without a mask: SetLatentNoiseMask's required mask input would dangle.
    with pytest.raises(TemplateError) as info:
        bind(library.get("inpaint"), {"image": {"file": "banana/a.png"}}, nonce="n")
    message = info.value.message
    assert "#mask" in message and "SetLatentNoiseMask" in message and "'mask'" in message


def test_object_info_decides_optional_inputs(library: TemplateLibrary) -> None:
    template = library.get("multiref")
    # A schema in which image3 were required must turn pruning into an error.
    schema = {"TextEncodeQwenImageEditPlus": {"input": {"required": {}, "optional": {}}}}
    with pytest.raises(TemplateError, match="image3"):
        bind(
            template,
            {"image1": {"file": "a.png"}, "image2": {"file": "b.png"}},
            nonce="n",
            object_info=schema,
        )


def test_nonce_goes_into_output_prefixes(library: TemplateLibrary) -> None:
    template = library.get("region_edit")
    values = {"image": {"file": "banana/a.png"}, "region": {"text": "the car"}}
    first = bind(template, values, nonce=new_nonce())
    second = bind(template, values, nonce=new_nonce())
    out, mask_out = template.output_roles["output"], template.output_roles["mask_output"]
    p1, p2 = first[out]["inputs"]["filename_prefix"], second[out]["inputs"]["filename_prefix"]
    assert p1 != p2 and p1.startswith("banana/region_edit-")
    assert first[mask_out]["inputs"]["filename_prefix"] == p1 + "-mask"
    assert bind(template, values, nonce="abc")[out]["inputs"]["filename_prefix"] == (
        "banana/region_edit-abc"
    )


def test_bad_nonce_is_rejected(library: TemplateLibrary) -> None:
    with pytest.raises(ValueError):
        bind(library.get("generate"), {}, nonce="../x")


def test_bound_graph_has_only_nodes(tmp_path: Path) -> None:
    data = minimal_remove_background()
    data["extra"] = {"ds": {"scale": 1}}
    data["version"] = 0.4
    path = write(tmp_path / "remove_background.json", data)
    template = load_template(path)
    assert set(template.graph) == {"1", "2", "3"}
    graph = bind(template, {"image": {"file": "a.png"}}, nonce="n")
    assert set(graph) == {"1", "2", "3"}
    for node in graph.values():
        assert set(node) <= {"class_type", "inputs", "_meta"}


# --- loading -----------------------------------------------------------------------------


def test_ui_format_is_rejected_with_the_fix(tmp_path: Path) -> None:
    path = write(
        tmp_path / "edit.json",
        {"last_node_id": 3, "nodes": [{"id": 1, "type": "LoadImage"}], "links": [], "version": 0.4},
    )
    with pytest.raises(TemplateError, match=r"Save \(API Format\)"):
        load_template(path)


def test_unreadable_json_is_a_template_error(tmp_path: Path) -> None:
    path = tmp_path / "edit.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(TemplateError, match="edit.json"):
        load_template(path)


def test_missing_mode_role_on_load(tmp_path: Path) -> None:
    data = minimal_remove_background(prompt_title="Remove background")  # no #rmbg
    path = write(tmp_path / "remove_background.json", data)
    with pytest.raises(MissingRole) as info:
        load_template(path, REGISTRY.get("remove_background").roles)
    assert info.value.role == "rmbg"
    assert "remove_background" in info.value.message and str(path) in info.value.message
    library = TemplateLibrary(tmp_path)   # the library checks what the caller's mode needs
    assert library.get("remove_background").roles
    with pytest.raises(MissingRole):
        library.get("remove_background", required=REGISTRY.get("remove_background").roles)


def test_role_on_a_node_without_its_inputs(tmp_path: Path) -> None:
    data = minimal_remove_background()
    data["3"]["_meta"]["title"] = "Result #output #prompt"  # SaveImage has no text input
    path = write(tmp_path / "remove_background.json", data)
    with pytest.raises(TemplateError, match=r"#prompt.*none of its inputs"):
        load_template(path)


def test_variants_default_first_and_unknown_variant(library: TemplateLibrary) -> None:
    assert library.variants("generate") == ["default", "gguf", "turbo"]
    assert library.variants("inpaint") == ["default", "conditioning", "gguf"]
    assert library.get("generate", "turbo").variant == "turbo"
    with pytest.raises(TemplateError, match="available: default, gguf, turbo"):
        library.get("generate", "nope")
    with pytest.raises(TemplateError):
        library.get("generate", "../generate")


def test_library_rereads_a_changed_file(tmp_path: Path) -> None:
    path = write(tmp_path / "remove_background.json", minimal_remove_background())
    library = TemplateLibrary(tmp_path)
    first = library.get("remove_background")
    assert library.get("remove_background") is first  # cached while unchanged
    data = minimal_remove_background()
    data["2"]["inputs"]["model"] = "BiRefNet-HR"
    write(path, data)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    second = library.get("remove_background")
    assert second is not first
    assert second.graph["2"]["inputs"]["model"] == "BiRefNet-HR"


# --- preflight ---------------------------------------------------------------------------


def test_requirements_lists_classes_and_folder_models(library: TemplateLibrary) -> None:
    reqs = requirements(library.get("region_edit"))
    assert {"Florence2Run", "Sam2Segmentation", "UNETLoader"} <= reqs.classes
    assert reqs.models == {
        "diffusion_models": {"qwen_image_edit_2511_fp8mixed.safetensors"},
        "text_encoders": {"qwen_2.5_vl_7b_fp8_scaled.safetensors"},
        "vae": {"qwen_image_vae.safetensors"},
    }  # pack-managed Florence-2 / SAM 2 names are not folder files
    assert requirements(library.get("remove_background")).models == {}


def test_check_ready_messages(library: TemplateLibrary) -> None:
    reqs = requirements(library.get("remove_background"))
    schema = {"LoadImage": {}, "SaveImage": {}}
    readiness = check_ready(reqs, schema, {})
    assert not readiness.ready
    assert readiness.missing_classes == ("BiRefNetRMBG",)
    assert readiness.message == "missing node classes: BiRefNetRMBG (ComfyUI-RMBG pack)"

    reqs = requirements(library.get("edit"))
    schema = {cls: {} for cls in reqs.classes}
    have = {
        "diffusion_models": ["qwen_image_2512_fp8_e4m3fn.safetensors"],
        "text_encoders": ["qwen_2.5_vl_7b_fp8_scaled.safetensors"],
        "vae": ["qwen_image_vae.safetensors"],
    }
    readiness = check_ready(reqs, schema, have)
    assert readiness.message == (
        "missing model files: diffusion_models/qwen_image_edit_2511_fp8mixed.safetensors"
    )
    have["diffusion_models"].append("qwen_image_edit_2511_fp8mixed.safetensors")
    readiness = check_ready(reqs, schema, have)
    assert readiness.ready and readiness.message == ""


def test_check_ready_reads_loader_combos_when_no_listing() -> None:
    reqs = requirements(
        {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}}}
    )
    schema = {"VAELoader": {"input": {"required": {"vae_name": [["qwen_image_vae.safetensors"]]}}}}
    assert check_ready(reqs, schema).ready
    schema["VAELoader"]["input"]["required"]["vae_name"] = [["other.safetensors"]]
    assert check_ready(reqs, schema).missing_models == ("vae/qwen_image_vae.safetensors",)


def test_requirements_use_the_configured_model_names(library: TemplateLibrary) -> None:
    reqs = requirements(
        library.get("edit"), model_names={"unet": "my_edit.safetensors", "vae": None}
    )
    assert reqs.models["diffusion_models"] == {"my_edit.safetensors"}
    assert reqs.models["vae"] == {"qwen_image_vae.safetensors"}
