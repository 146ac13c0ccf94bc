"""The rules router: a `ChatTurn` (+ the size of the image it would work on) → a `Decision`.

Deterministic and pure; tested on `tests/chat/router_corpus.json`. The rules, in order
(the first that applies decides):

1. `"healthcheck"` (the operations guide's probe) → generate, a small 256×256 image in one
   sampler step (fast; it proves the path, not the picture), even with an image in context.
2. Help: a greeting, "help", "what can you do?", "how does this work", or any question that
   starts with an English question word and asks for no picture (no "draw", "make", "show"…)
   → `help` (a short text, no job). "what does a quokka look like?" → generate "a quokka".
3. 2–3 attached images → multiref with the text as the prompt (whatever the words: the
   images were attached to be used together).
4. No image attached, one in context, and "draw/generate/create a new …", "generate a …",
   "start over" → generate (a new picture, the context image is not used). An ATTACHED image
   is always used: "create a new version of this" with an attachment edits it.
5. Remove background: "remove/cut out/delete the background", "transparent background",
   "make the background transparent", "make it a sticker", "isolate the subject", "cut him
   out", "no background", "remove bg". Tie-breaks: transparency wins over everything
   ("change the background to transparent" = removal); a NEW background ("replace the
   background with a beach", "remove the background and put him on a beach", "put it on a
   white background") is an edit — Qwen-Image-Edit swaps backgrounds well as a whole-image
   instruction, while region edit's Florence-2 + SAM 2 cannot outline "the background" (it is
   everything but the subject).
6. Crop ("crop it to 16:9") → help: the studio extends, it does not crop.
7. Outpaint: an aspect ("make it 16:9", "make it square", "landscape format"; pads on the
   short axis split evenly, or on the side named: "make it 16:9 by extending the right"),
   "make it wider/taller", "widen", "twice as wide", "add more sky at the top", "extend
   (it) to the left (by 300 px / by half / by 20 % / a little)", "extend left and right",
   "extend upwards", "zoom out", "uncrop", "outpaint", "extend the image" (all sides).
   Amounts: see `geometry.py`. The words left over are the prompt for the new area.
   "extend his arm to the left" is an edit (only picture words may sit between the verb and
   the side).
8. Region edit: "replace/swap the X with/for Y" (region X, prompt Y), "change/turn only the X
   to/into Y", "only change the X to Y", "make/paint just the X <colour…>" (prompt = the
   instruction without "just"), "change the X to Y and keep everything else". When X is the
   whole image ("it", "everything") or its background, it is an edit instead. "replace the
   man with the hat with a woman" splits at the first "with" (region "the man").
9. Otherwise: an image (attached, else the latest in context) → edit with the text; none →
   generate, with "generate an image of" removed and a size taken from "1024x768", "16:9",
   "portrait format". Operations that need an image (5–8) without one → help, saying so.
   "another one"/"try again" after a generation → generate the previous prompt again (after an
   edit → help: the source of that edit is not known here).

Plain "change the sky to sunset" (no "only") is an edit: Qwen-Image-Edit follows it well and a
mask is not needed; "replace the X with Y" is a region edit because the issue's examples ask
for it and the region is named explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from io import BytesIO
from typing import Literal, get_args

from PIL import Image, UnidentifiedImageError

from . import phrases
from .geometry import Pads, aspect_pads, aspect_size, grid_size, side_pads, zoom_pads
from .parse import ChatImage, ChatTurn

Action = Literal[
    "generate", "edit", "multiref", "remove_background", "outpaint", "region_edit", "help"
]
ACTIONS: tuple[Action, ...] = get_args(Action)
NEEDS_IMAGE: frozenset[Action] = frozenset(
    {"edit", "remove_background", "outpaint", "region_edit"}
)
DecidedBy = Literal["rules", "llm"]

HEALTHCHECK_SIZE = (256, 256)
HEALTHCHECK_STEPS = 1
FALLBACK_IMAGE_SIZE = (1024, 1024)  # when the caller could not tell the image's size


@dataclass(frozen=True)
class Decision:
    """What to do with a turn. Parameters are set only for the action that uses them."""

    action: Action
    prompt: str  # the text for the model ("" for remove_background, the help case)
    reason: str  # one short sentence, for the reply and the logs
    decided_by: DecidedBy = "rules"
    pads: Pads | None = None  # outpaint: pixels per side
    region: str | None = None  # region_edit: the words naming what to change
    size: tuple[int, int] | None = None  # generate: (width, height) named in the text
    steps: int | None = None  # sampler steps when the turn needs other than the default
    router_note: str = ""  # when an LLM router is configured but did not decide: why


def route(
    turn: ChatTurn,
    image_size: tuple[int, int] | None = None,
    *,
    max_pad: int | None = None,
) -> Decision:
    """Decide a turn by the rules above. `image_size` is the size of `turn.source_image`
    (see `image_size()`); `max_pad` caps each outpaint side: pass the studio's limit
    (`settings.max_outpaint_pad`); None = no cap."""
    text = phrases.normalize(turn.text)
    if phrases.is_healthcheck(text):
        return Decision("generate", "healthcheck", "Health probe: a small test image.",
                        size=HEALTHCHECK_SIZE, steps=HEALTHCHECK_STEPS)
    if help_decision := _help(text, turn):
        return help_decision
    stripped = phrases.strip_filler(phrases.strip_suggestion(text))
    if len(turn.attached) >= 2:
        return Decision("multiref", stripped,
                        f"Combining the {len(turn.attached)} attached images.")
    if not turn.attached and phrases.asks_repeat(stripped):
        previous = _previous_generation(turn)
        if previous is None:
            return _help_decision("I can repeat a generation; for an edit, say the change again.")
        return replace(previous, reason="Again, with a new seed.")
    if turn.has_image and not turn.attached and phrases.asks_new_picture(stripped):
        return _generate(stripped, "Asked for a new picture.")
    operation = _image_operation(text, stripped, turn, image_size, max_pad)
    if operation is not None:
        return operation
    if turn.has_image:
        return Decision("edit", stripped, f"Editing {_which(turn)}.")
    return _generate(stripped, "No image in the conversation: a new picture.")


def images_for(decision: Decision, turn: ChatTurn) -> tuple[ChatImage, ...]:
    """The images the decided operation works on (multiref: all attached; edits: one)."""
    if decision.action == "multiref":
        return turn.attached
    if decision.action in NEEDS_IMAGE and turn.source_image is not None:
        return (turn.source_image,)
    return ()


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's header, without decoding its pixels; None if unknown."""
    try:
        with Image.open(BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


# --- the steps ----------------------------------------------------------------------------


def _help(text: str, turn: ChatTurn) -> Decision | None:
    if not phrases.meaningful(text):
        return _nothing_said(turn)
    if subject := phrases.look_like_subject(text):
        return _generate(subject, "A picture answers that.")
    kind = phrases.help_kind(text)
    if kind == "help" or kind == "greeting":
        return _help_decision("Here is what I can do.")
    if kind == "question":
        return _help_decision("I make and edit pictures; I don't answer questions.")
    if not phrases.meaningful(phrases.strip_filler(text)):
        return _nothing_said(turn)
    return None


def _nothing_said(turn: ChatTurn) -> Decision:
    if turn.attached:
        return _help_decision("Say what to do with the image.")
    return _help_decision("Say what to draw, or what to change in the picture.")


def _image_operation(
    text: str, stripped: str, turn: ChatTurn, size: tuple[int, int] | None,
    max_pad: int | None,
) -> Decision | None:
    """Steps 5–8: remove background, crop, outpaint, region edit (None: none of them)."""
    if phrases.wants_transparency(text) or (
        phrases.removes_background(text) and not phrases.swaps_background(text)
    ):
        if not turn.has_image:
            # "a sticker of a cat" without a picture is a style for a new one
            return _needs_image("Removing a background") if phrases.names_background(text) \
                else None
        return Decision("remove_background", "", f"Removing the background of {_which(turn)}.")
    if phrases.swaps_background(text):
        return None  # an edit (or a generation without an image)
    if turn.has_image and phrases.asks_crop(text):
        return _help_decision(
            "I can't crop, but I can extend the picture: say e.g. \"make it 16:9\"."
        )
    outpaint = phrases.outpaint_text(text)
    # without an image, "a cabin, 16:9" is the shape of a new picture; "make it 16:9" is not
    if outpaint is not None and (turn.has_image or outpaint.kind != "aspect"
                                 or not outpaint.prompt):
        if not turn.has_image:
            return _needs_image("Extending a picture")
        return _outpaint(outpaint, size or FALLBACK_IMAGE_SIZE, max_pad, turn)
    if region := phrases.region_text(stripped):
        if not turn.has_image:
            return _needs_image(f"Changing {region.region}")
        return Decision("region_edit", region.prompt,
                        f"Changing {region.region} in {_which(turn)}.", region=region.region)
    return None


def _outpaint(
    words: phrases.OutpaintText, size: tuple[int, int], max_pad: int | None, turn: ChatTurn
) -> Decision:
    if words.kind == "aspect" and words.ratio is not None:
        pads = aspect_pads(size, words.ratio, words.sides)
        label = f"{words.ratio[0]}:{words.ratio[1]}"
        if not pads.any():
            return _help_decision(f"The picture is already {label}.")
        reason = f"Extending {_which(turn)} to {label}"
    elif words.kind == "zoom":
        pads = zoom_pads(size, words.factor, words.amount.pixels)
        reason = f"Zooming out of {_which(turn)}"
    else:
        pads = side_pads(size, words.sides, words.amount)
        reason = f"Extending {_which(turn)}"
    pads, capped = pads.capped(max_pad)
    reason += f" ({pads.describe()}"
    reason += f"; capped at {max_pad} px per side)." if capped else ")."
    return Decision("outpaint", words.prompt, reason, pads=pads)


def _generate(text: str, reason: str) -> Decision:
    words = phrases.generate_text(text)
    prompt = words.prompt if phrases.meaningful(words.prompt) else text
    size = None
    if words.size is not None:
        size = grid_size(*words.size)
    elif words.ratio is not None:
        size = aspect_size(words.ratio)
    return Decision("generate", prompt, reason, size=size)


def _previous_generation(turn: ChatTurn) -> Decision | None:
    """"another one": the previous user text, when it was a generation without any image."""
    for index in range(len(turn.history) - 1, -1, -1):
        entry = turn.history[index]
        if entry.role != "user":
            continue
        if entry.images or any(e.images for e in turn.history[:index]):
            return None
        previous = ChatTurn(entry.text, (), None, turn.history[:index], index)
        decision = route(previous)
        return decision if decision.action == "generate" else None
    return None


def _needs_image(what: str) -> Decision:
    return _help_decision(
        f"{what} needs a picture: attach one, or describe one to generate first."
    )


def _help_decision(reason: str) -> Decision:
    return Decision("help", "", reason)


def _which(turn: ChatTurn) -> str:
    return "the attached image" if turn.attached else "the latest image"
