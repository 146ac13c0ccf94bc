"""ui/tabspec.py and ui/runner.py helpers: the Advanced values and the error text that reaches
the browser."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from ui.runner import redact  # noqa: E402
from ui.tabspec import common_values  # noqa: E402


def test_random_seed_and_default_variant_become_none():
    values = {"seed": 7, "randomize": True, "steps": 20, "cfg": 2.5, "variant": "default",
              "negative_prompt": None}
    assert common_values(values) == {"seed": None, "variant": None, "steps": 20, "cfg": 2.5,
                                     "negative_prompt": ""}


def test_fixed_seed_and_named_variant_pass_through():
    values = {"seed": 7.0, "randomize": False, "steps": 4, "cfg": 1.0, "variant": "turbo"}
    assert common_values(values) == {"seed": 7, "variant": "turbo", "steps": 4, "cfg": 1.0}


def test_modes_without_a_sampler_carry_only_seed_and_variant():
    assert common_values({"seed": 0, "randomize": True, "variant": "default"}) == {
        "seed": None, "variant": None}


def test_redact_hides_the_comfy_address():
    text = redact("Cannot reach http://192.168.1.9:8188/prompt (192.168.1.9:8188)",
                  "http://192.168.1.9:8188")
    assert "192.168" not in text
