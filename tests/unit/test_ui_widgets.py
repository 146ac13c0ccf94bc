"""ui/widgets.py helpers: the Advanced values and the error text that reaches the browser."""

from __future__ import annotations

import os
from types import SimpleNamespace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from ui.widgets import common_values, redact  # noqa: E402


def adv(sampler=True):
    return SimpleNamespace(
        steps=object() if sampler else None,
        inputs=lambda: [1, 2, 3, 4, 5] if sampler else [1, 2, 3],
    )


def test_random_seed_and_default_variant_become_none():
    common, rest = common_values(adv(), [7, True, 20, 2.5, "default", "prompt"])
    assert common == {"seed": None, "variant": None, "steps": 20, "cfg": 2.5}
    assert rest == ["prompt"]


def test_fixed_seed_and_named_variant_pass_through():
    common, rest = common_values(adv(), [7.0, False, 4, 1.0, "turbo"])
    assert common == {"seed": 7, "variant": "turbo", "steps": 4, "cfg": 1.0}
    assert rest == []


def test_modes_without_a_sampler_carry_only_seed_and_variant():
    common, rest = common_values(adv(sampler=False), [0, True, "default", "img"])
    assert common == {"seed": None, "variant": None}
    assert rest == ["img"]


def test_redact_hides_the_comfy_address():
    ctx = SimpleNamespace(settings=SimpleNamespace(comfy_url="http://192.168.1.9:8188"))
    text = redact("Cannot reach http://192.168.1.9:8188/prompt (192.168.1.9:8188)", ctx)
    assert "192.168" not in text
