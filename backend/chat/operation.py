"""A decided turn → the studio request that carries it out. Shared by every chat surface (the
`/v1/chat/completions` route and the UI's Chat tab), so both decide and build alike.

- `decide(turn, router, max_pad=…)`: the LLM router when one is configured, else the rules,
  with the size of the picture the turn works on (read from its header).
- `unreadable_image(decision, turn)`: an image the decision would use that is no picture
  (the caller refuses the turn with a sentence naming it).
- `request_for(decision, turn, registry)`: the decided mode's request, filled by the mode's
  declared inputs; `ModeUnavailable` when this studio has no such mode.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from backend.modes import InputKind, ModeRegistry
from backend.requests import RequestBase

from .llm_router import LlmRouter
from .parse import ChatImage, ChatTurn
from .router import Decision, image_size, images_for, route

log = logging.getLogger(__name__)


class ModeUnavailable(Exception):
    """The decided operation has no mode in this studio. `message` is a sentence."""

    def __init__(self, action: str) -> None:
        self.message = f"This studio has no {action.replace('_', ' ')} mode."
        super().__init__(self.message)


async def decide(turn: ChatTurn, router: LlmRouter | None, *, max_pad: int | None) -> Decision:
    """The turn's decision: the LLM router's when configured (it falls back to the rules by
    itself), else the rules'."""
    size = image_size(turn.source_image.data) if turn.source_image is not None else None
    if router is not None:
        decision = await router.route(turn, size, max_pad=max_pad)
    else:
        decision = route(turn, size, max_pad=max_pad)
    if decision.router_note:
        log.info("chat: %s", decision.router_note)
    return decision


def unreadable_image(decision: Decision, turn: ChatTurn) -> ChatImage | None:
    """The first image the decision works on that is not a picture (None: all are)."""
    for image in images_for(decision, turn):
        if image_size(image.data) is None:
            return image
    return None


def request_for(decision: Decision, turn: ChatTurn, registry: ModeRegistry) -> RequestBase:
    """The decided mode's request, filled by its declared inputs: the prompt, the region
    words, the pictures (as the bytes that were sent), the pads and the size."""
    spec = registry.find(decision.action)
    if spec is None:
        raise ModeUnavailable(decision.action)
    images = images_for(decision, turn)
    numbers: dict[str, int] = {}
    if decision.pads is not None:
        p = decision.pads
        numbers.update(left=p.left, top=p.top, right=p.right, bottom=p.bottom)
    if decision.size is not None:
        numbers.update(width=decision.size[0], height=decision.size[1])
    values: dict[str, object] = {}
    for declared in spec.inputs:
        kind = declared.kind
        if kind is InputKind.PROMPT:
            values[declared.name] = decision.prompt
        elif kind is InputKind.TEXT and decision.region is not None:
            values[declared.name] = decision.region
        elif kind is InputKind.IMAGE and images:
            values[declared.name] = images[0].data
        elif kind is InputKind.IMAGES and images:
            values[declared.name] = tuple(image.data for image in images)
        elif kind is InputKind.NUMBER and declared.name in numbers:
            values[declared.name] = numbers[declared.name]
    request = spec.request_from(values)
    if decision.steps is not None:
        request = replace(request, steps=decision.steps)
    return request
