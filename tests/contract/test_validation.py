"""validate_prompt against every validation answer recorded from the real ComfyUI 0.3.64."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from backend.comfy.validation import validate_prompt

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "comfy"
INVALID = json.loads((FIXTURES / "trace_prompt_invalid.json").read_text())["entries"]
RUNTIME = json.loads((FIXTURES / "trace_runtime_error.json").read_text())
RUNTIME_UNET = json.loads(
    (FIXTURES / "trace_runtime_error_unet_and_preview_metadata.json").read_text())

# What was in the server's folders when each trace was taken (object_info.json was captured
# with empty model folders; the runtime-error traces had dummy files in some of them).
INPUT_FILES = {"cap_src.png", "cap_rgba.png", "cap_sub.png", "capsub/cap_sub.png"}
LATER_MODELS = {
    ("UNETLoader", "unet_name"): ["fake.safetensors", "garbage.safetensors"],
    ("VAELoader", "vae_name"): ["fake.safetensors", "garbage.safetensors", "pixel_space"],
}


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    return json.loads((FIXTURES / "object_info.json").read_text())


def with_models(object_info: dict[str, Any], lists: dict[tuple[str, str], list[str]]) -> dict[str, Any]:
    info = dict(object_info)
    for (cls, name), files in lists.items():
        schema = copy.deepcopy(info[cls])
        spec = schema["input"]["required"][name]
        schema["input"]["required"][name] = [files, *spec[1:]]
        info[cls] = schema
    return info


def _case_id(entry: dict[str, Any]) -> str:
    return entry["case"]


JSON_CASES = [e for e in INVALID if "json" in e["request"]]


def test_every_recorded_case_is_covered() -> None:
    assert len(JSON_CASES) == 15                  # the 16th is the non-JSON body (a 500)
    assert [e["status"] for e in INVALID if "json" not in e["request"]] == [500]


@pytest.mark.parametrize("entry", JSON_CASES, ids=_case_id)
def test_recorded_rejection_is_reproduced_exactly(entry: dict[str, Any],
                                                  object_info: dict[str, Any]) -> None:
    body = entry["request"]["json"]
    result = validate_prompt(body.get("prompt"), object_info, input_files=INPUT_FILES)

    assert result.status == entry["status"] == 400
    assert not result.ok
    assert result.error_type == entry["body"]["error"]["type"]
    assert result.body == entry["body"]           # messages, details, extra_info, all of it


def test_model_lists_as_they_were_for_the_runtime_traces(object_info: dict[str, Any]) -> None:
    info = with_models(object_info, LATER_MODELS)
    case = RUNTIME["graph_with_cliploader_post"]
    result = validate_prompt(case["request"]["json"]["prompt"], info, input_files=INPUT_FILES)
    assert (result.status, result.body) == (case["status"], case["body"])

    ok = RUNTIME["vae_garbage_post"]
    result = validate_prompt(ok["request"]["json"]["prompt"], info, input_files=INPUT_FILES)
    assert result.ok and result.status == 200
    assert result.node_errors == ok["body"]["node_errors"] == {}
    assert result.outputs_to_execute == ["4"]


def test_partially_valid_prompt_is_accepted_with_node_errors(object_info: dict[str, Any]) -> None:
    info = with_models(object_info, LATER_MODELS)
    case = RUNTIME["unet_fake_post"]
    history = RUNTIME["history_unet_fake"]["body"]
    result = validate_prompt(case["request"]["json"]["prompt"], info, input_files=INPUT_FILES)

    assert result.ok and result.status == 200 == case["status"]
    assert result.node_errors == case["body"]["node_errors"]
    assert result.body["node_errors"] == case["body"]["node_errors"]
    recorded_outputs = next(iter(history.values()))["prompt"][4]
    assert sorted(result.outputs_to_execute) == sorted(recorded_outputs) == ["4", "5"]


def test_bad_enum_on_the_only_output_path(object_info: dict[str, Any]) -> None:
    info = with_models(object_info, {
        **LATER_MODELS,
        ("CLIPLoader", "clip_name"): ["fake.safetensors", "garbage.safetensors"],
    })
    case = RUNTIME_UNET["unet_bad_enum_on_output_path"]
    result = validate_prompt(case["request"]["json"]["prompt"], info, input_files=INPUT_FILES)
    assert (result.status, result.body) == (case["status"], case["body"])

    accepted = RUNTIME_UNET["unet_fake_full_graph_post"]
    result = validate_prompt(accepted["request"]["json"]["prompt"], info, input_files=INPUT_FILES)
    assert result.ok and result.outputs_to_execute == ["10"]


def _simple(**scale: Any) -> dict[str, Any]:
    inputs = {"image": ["1", 0], "upscale_method": "bilinear", "width": 64, "height": 64,
              "crop": "disabled", **scale}
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "cap_src.png"}},
        "2": {"class_type": "ImageScale", "inputs": inputs},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}},
    }


def test_value_below_min_and_string_numbers(object_info: dict[str, Any]) -> None:
    result = validate_prompt(_simple(width=-1), object_info, input_files=INPUT_FILES)
    (error,) = result.body["node_errors"]["2"]["errors"]
    assert error["type"] == "value_smaller_than_min"
    assert error["message"] == "Value -1 smaller than min of 0"
    assert error["details"] == "width"

    # The server converts "64" to an INT before checking it.
    assert validate_prompt(_simple(width="64"), object_info, input_files=INPUT_FILES).ok


def test_new_style_combo_inputs_are_checked(object_info: dict[str, Any]) -> None:
    info = dict(object_info)
    info["UpscaleModelLoader"] = {**info["UpscaleModelLoader"], "input": {"required": {
        "model_name": ["COMBO", {"multiselect": False, "options": ["4x.pth"]}]}}}
    prompt = {
        "1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "2x.pth"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "cap_src.png"}},
        "3": {"class_type": "ImageUpscaleWithModel",
              "inputs": {"upscale_model": ["1", 0], "image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "u"}},
    }
    result = validate_prompt(prompt, info, input_files=INPUT_FILES)
    (error,) = result.node_errors["1"]["errors"]
    assert error["type"] == "value_not_in_list"
    assert error["details"] == "model_name: '2x.pth' not in ['4x.pth']"
    assert error["extra_info"]["input_config"] == ["COMBO", {"multiselect": False,
                                                             "options": ["4x.pth"]}]
    prompt["1"]["inputs"]["model_name"] = "4x.pth"
    assert validate_prompt(prompt, info, input_files=INPUT_FILES).ok


def test_long_option_lists_are_not_echoed(object_info: dict[str, Any]) -> None:
    files = [f"m{i}.safetensors" for i in range(25)]
    info = with_models(object_info, {("UNETLoader", "unet_name"): files})
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "x", "weight_dtype": "default"}},
        "2": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64,
                                                              "batch_size": 1}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}},
        "4": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": 1, "steps": 1, "cfg": 1.0, "sampler_name": "euler",
            "scheduler": "simple", "positive": ["5", 0], "negative": ["5", 0],
            "latent_image": ["2", 0], "denoise": 1.0}},
        "5": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["5", 0]}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["3", 0]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "x"}},
    }
    result = validate_prompt(prompt, info, input_files=INPUT_FILES)
    error = result.node_errors["1"]["errors"][0]
    assert error["details"] == "unet_name: 'x' not in (list of length 25)"
    assert error["extra_info"]["input_config"] is None
    # node 5 feeds itself: rejected (as the server ends up doing), not an endless recursion
    assert result.status == 400 and list(result.node_errors) == ["1"]


def test_broken_node_feeding_no_output_is_ignored(object_info: dict[str, Any]) -> None:
    prompt = _simple()
    prompt["9"] = {"class_type": "ImageInvert", "inputs": {"image": ["77", 0]}}
    result = validate_prompt(prompt, object_info, input_files=INPUT_FILES)
    assert result.ok and result.node_errors == {} and result.outputs_to_execute == ["3"]


def test_partial_execution_targets_limit_outputs(object_info: dict[str, Any]) -> None:
    prompt = _simple()
    prompt["4"] = {"class_type": "SaveImage", "inputs": {"images": ["9", 0],
                                                         "filename_prefix": "bad"}}
    prompt["9"] = {"class_type": "ImageInvert", "inputs": {}}
    full = validate_prompt(prompt, object_info, input_files=INPUT_FILES)
    assert full.ok and full.outputs_to_execute == ["3"] and list(full.node_errors) == ["9"]

    only_3 = validate_prompt(prompt, object_info, input_files=INPUT_FILES,
                             partial_execution_targets=["3"])
    assert only_3.ok and only_3.node_errors == {}
    only_4 = validate_prompt(prompt, object_info, input_files=INPUT_FILES,
                             partial_execution_targets=["4"])
    assert only_4.status == 400
    assert only_4.node_errors["9"]["dependent_outputs"] == ["4"]
    none = validate_prompt(prompt, object_info, partial_execution_targets=["1"])
    assert none.error_type == "prompt_no_outputs"


def test_missing_input_files_are_only_checked_when_known(object_info: dict[str, Any]) -> None:
    prompt = _simple()
    prompt["1"]["inputs"]["image"] = "banana/abc.png"
    assert validate_prompt(prompt, object_info).ok
    assert validate_prompt(prompt, object_info, input_files={"banana/abc.png"}).ok
    assert validate_prompt(prompt, object_info, input_files={"abc.png"}).status == 400


def test_output_node_with_a_dangling_link(object_info: dict[str, Any]) -> None:
    prompt = _simple()
    prompt["3"]["inputs"]["images"] = ["42", 0]
    result = validate_prompt(prompt, object_info, input_files=INPUT_FILES)
    assert result.status == 400
    (error,) = result.node_errors["3"]["errors"]
    assert error["type"] == "exception_during_validation"
    assert result.body["error"]["details"] == "Exception when validating node: '42'"
