"""The words the rules router recognises: small detectors over one message's text.

Each detector is a pure function of the text (English phrasings; anything else falls through
to plain generate/edit with the text as the prompt). Matching is case-insensitive on the
text itself, so prompts and regions keep the user's casing. Every pattern is linear: bounded
repeats, no nested unbounded groups (the text is at most a few thousand characters anyway).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from .geometry import HORIZONTAL, SIDES, VERTICAL, Amount

_I = re.IGNORECASE

# --- cleaning ------------------------------------------------------------------------------

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                         "\u2013": "-", "\u2014": "-", "\u00a0": " "})
_FILLER_LEAD = re.compile(
    r"^(?:(?:now|ok(?:ay)?|alright|all\s+right|great|nice|cool|good|perfect|awesome|so|and|"
    r"then|also|next|hey|hi|hello|hmm+|please|pls|plz|kindly|actually|well|yes|yeah|yep|"
    r"right|oh|wow|lovely|thanks|thank\s+you|thx)\b[\s,!.:;-]*)+", _I)
_ASK_LEAD = re.compile(
    r"^(?:(?:can|could|would|will)\s+(?:you|u)(?:\s+please)?|please|"
    r"i(?:'d|\s+would)\s+like\s+(?:you\s+)?to|i\s+(?:want|need)\s+(?:you\s+)?to|"
    r"let'?s|try\s+to|go\s+ahead\s+and|help\s+me)\s+", _I)
_FILLER_TRAIL = re.compile(
    r"(?:[\s,]*\b(?:please|pls|plz|thanks|thank\s+you|thx|now|for\s+me|for\s+us)\b)+"
    r"[\s.!?]*$|[\s.!?]+$", _I)


def normalize(text: str) -> str:
    """Curly quotes and dashes to ASCII, runs of whitespace to one space, trimmed."""
    return " ".join(text.translate(_QUOTES).split())


def strip_filler(text: str) -> str:
    """`"ok now can you make it night please!"` → `"make it night"` (text already normalized)."""
    previous = None
    while previous != text:
        previous = text
        text = _FILLER_LEAD.sub("", text)
        text = _ASK_LEAD.sub("", text)
        text = _FILLER_TRAIL.sub("", text).strip(" ,;:-")
    return text


def meaningful(text: str) -> bool:
    """Has a letter, a digit or a symbol like an emoji (not only punctuation)."""
    return any(unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) == "So"
               for ch in text)


# --- the probe, help and questions -----------------------------------------------------------

_HEALTHCHECK = re.compile(r"^\s*health[\s_-]?check[\s.!?]*$", _I)
_GREETING = re.compile(
    r"^(?:hi|hello|hey|yo|hiya|howdy|good\s+(?:morning|afternoon|evening)|thanks|thank\s+you|"
    r"thx|ok(?:ay)?|cool|nice|great|bye|goodbye)(?:\s+(?:there|again|a\s+lot|so\s+much))?"
    r"[\s!.,:)]*$", _I)
_HELP = re.compile(
    r"^/?(?:help|commands|usage|instructions|menu|options|examples)\b[\s?!.]*$|"
    r"^(?:help\s+me|i\s+need\s+help)[\s?!.]*$|"
    r"\bwhat\s+(?:else\s+)?(?:can|do|could)\s+(?:you|u|i)\s+(?:do|make|ask|say|type|help\s+with)\b|"
    r"\bwhat\s+are\s+(?:you|your\s+(?:capabilities|features|commands|options|limits))\b|"
    r"\bwho\s+are\s+you\b|\bwhat\s+is\s+this\s+(?:chat|thing|bot|place)\b|"
    r"\bhow\s+(?:does|do)\s+(?:this|it|you|the\s+chat|this\s+chat|this\s+thing)\s+work\b|"
    r"\bhow\s+(?:do|can|should)\s+i\s+(?:use|start|begin|talk\s+to|work\s+with)\b|"
    r"\bhow\s+to\s+use\b|\bwhat\s+(?:commands|features|modes)\b|"
    r"\bwhat\s+should\s+i\s+(?:type|say|ask|write)\b|"
    r"\b(?:can|could|do)\s+you\s+(?:also\s+)?(?:\w+\s+)?(?:images|pictures|photos|"
    r"backgrounds|stickers|image\s+editing)\s*\??$|"
    r"\bdo\s+you\s+support\b|\bshow\s+me\s+(?:the\s+)?(?:help|commands|examples)\b", _I)
_QUESTION_START = re.compile(
    r"^(?:what|what's|whats|why|who|whom|whose|when|where|which|how|is|are|am|was|were|does|"
    r"did|do\s+(?:you|i|we)|can\s+(?:you|i|we|u)|could\s+(?:you|i|we)|may\s+i|should|"
    r"would\s+(?:you|it)|will\s+(?:you|it)|isn't|aren't|tell\s+me|explain)\b", _I)
_SUGGESTION = re.compile(r"^(?:how|what)\s+about\s+|^what\s+if\s+", _I)
# Words that ask for a picture, so a question that has one is a request, not a question.
_PICTURE_CUE = re.compile(
    r"\b(?:draw|paint|sketch|generate|create|make|render|show|design|imagine|edit|change|"
    r"replace|remove|add|put|turn|extend|expand|zoom|convert|transform|give|recolou?r|"
    r"colou?r|swap|cut|erase|delete|fix|enhance|restore|blur|sharpen|brighten|darken|widen|"
    r"uncrop|outpaint|isolate|place|insert|apply|produce|illustrate|visuali[sz]e|try|redo|"
    r"look\s+like|picture\s+of|image\s+of|photo\s+of|drawing\s+of|painting\s+of)\b", _I)
_PRONOUNS = frozenset({"it", "this", "that", "he", "she", "they", "him", "her", "them",
                       "this image", "this picture", "the image", "the picture", "this photo"})
_LOOK_LIKE = re.compile(r"^what\s+(?:does|do|would|might)\s+(?P<x>.+?)\s+look\s+like\b", _I)


def is_healthcheck(text: str) -> bool:
    return bool(_HEALTHCHECK.match(text))


def help_kind(text: str) -> Literal["help", "greeting", "question"] | None:
    """Why this text is not a picture request, or None when it may be one.
    "question": a question (English question word first) without a picture word."""
    if _GREETING.match(text):
        return "greeting"
    if _HELP.search(text):
        return "help"
    if _QUESTION_START.match(text) and not _SUGGESTION.match(text) \
            and not _PICTURE_CUE.search(text):
        return "question"
    return None


def look_like_subject(text: str) -> str | None:
    """`"what does a quokka look like?"` → `"a quokka"` (a question that asks for a picture).
    None for "what would it look like at night?" (about the picture in context: an edit)."""
    match = _LOOK_LIKE.match(text)
    if match is None or match.group("x").lower() in _PRONOUNS:
        return None
    return match.group("x")


def strip_suggestion(text: str) -> str:
    """`"how about a cat?"` → `"a cat?"` ("what if it rained?" stays: it reads as an edit)."""
    return re.sub(r"^(?:how|what)\s+about\s+", "", text, count=1, flags=_I)


# --- a new picture while one is in context -----------------------------------------------------

_NEW_PICTURE = re.compile(
    r"^(?:draw|generate|create|make|paint|render|sketch|design|produce|imagine|give\s+me|"
    r"show\s+me|get\s+me|i\s+want|i\s+need|i'?d\s+like)\s+(?:me\s+|us\s+)?(?:an?\s+)?"
    r"(?:brand\s+|completely\s+|totally\s+|something\s+)?"
    r"(?:new|another|different|fresh|separate|second)\b"
    r"(?!\s+(?:back\s?ground|backdrop|bg|version|variation|variant|colou?r|style|look|angle|"
    r"hat|outfit|expression|pose|lighting|sky|face|hair|edit)\b)|"
    r"\b(?:start\s+over|from\s+scratch|start\s+fresh|new\s+(?:image|picture|photo|drawing|"
    r"painting|scene|prompt|conversation|chat))\b|"
    r"^(?:generate|imagine)\s+(?:me\s+)?(?:an?|some|two|three)\b|"
    r"^(?:something|anything)\s+(?:completely\s+|totally\s+)?(?:different|else)\b", _I)
_REPEAT = re.compile(
    r"^(?:(?:draw|make|generate|create|give\s+me|show\s+me|do|try)\s+)?(?:another(?:\s+one)?|one\s+more|again|try\s+again|retry|redo|re-?roll|"
    r"do\s+it\s+again|(?:a\s+)?different\s+seed|another\s+(?:try|take|seed))[\s!.]*$", _I)


def asks_new_picture(text: str) -> bool:
    """"draw a new …", "generate a …", "start over": a fresh picture even with one in context."""
    return bool(_NEW_PICTURE.search(text))


def asks_repeat(text: str) -> bool:
    return bool(_REPEAT.match(text))


# --- generate: the prompt and a size named in it -------------------------------------------

_WXH = re.compile(
    r"(?:,\s*|\b(?:at|in|size)\s+)?\b(?P<w>\d{3,4})\s*[x×*]\s*(?P<h>\d{3,4})\b"
    r"(?:\s*(?:px|pixels|resolution))?", _I)
_RATIO = re.compile(
    r"(?:,\s*|\b(?:at|in|as)\s+(?:an?\s+)?)?\b(?P<a>\d{1,2})\s*:\s*(?P<b>\d{1,2})\b"
    r"(?:\s+(?:aspect(?:\s+ratio)?|ratio|format))?", _I)
_NAMED_ASPECT = re.compile(
    r"(?:,\s*|\b(?:in|as)\s+(?:an?\s+)?)?\b(?P<name>square|landscape|portrait|widescreen|"
    r"vertical|panoramic|panorama)\s+(?:format|orientation|mode|aspect(?:\s+ratio)?)\b|"
    r"(?:,\s*|\bin\s+)?\bwidescreen\b", _I)
NAMED_RATIOS: dict[str, tuple[int, int]] = {
    "square": (1, 1), "landscape": (16, 9), "widescreen": (16, 9), "panorama": (2, 1),
    "panoramic": (2, 1), "portrait": (9, 16), "vertical": (9, 16),
}
_GENERATE_VERB = re.compile(
    r"^(?:generate|create|make|render|produce|give\s+me|show\s+me|get\s+me|i\s+want|"
    r"i\s+need|i'?d\s+like|can\s+i\s+(?:have|get|see)|imagine)\s+(?:me\s+|us\s+)?"
    r"(?=(?:an?|some|the|new|another|\d+|one|two|three|my|our|picture|image|photo|pic|"
    r"drawing|painting|illustration|render|portrait|poster|logo|icon|wallpaper)\b)", _I)
_STYLE_VERB = re.compile(r"^(?P<verb>draw|paint|sketch|illustrate)\s+(?:me\s+|us\s+)?", _I)
_START_OVER = re.compile(r"^(?:let'?s\s+)?(?:start\s+(?:over|fresh|again)|from\s+scratch)"
                         r"(?:\s+with)?[\s,:;.!-]*", _I)
_IMAGE_OF = re.compile(
    r"^(?:(?:an?|the|one)\s+)?(?:(?:brand\s+)?new\s+|another\s+|different\s+|fresh\s+)?"
    r"(?:image|picture|pic|one)\s+(?:of|showing|with)\s+", _I)


@dataclass(frozen=True)
class GenerateText:
    prompt: str
    size: tuple[int, int] | None  # (width, height) as stated; None = the studio's default
    ratio: tuple[int, int] | None  # an aspect named instead of a size


def generate_text(text: str) -> GenerateText:
    """The prompt without "generate an image of" and without the size words; the size."""
    size: tuple[int, int] | None = None
    ratio: tuple[int, int] | None = None
    if match := _WXH.search(text):
        size = (int(match.group("w")), int(match.group("h")))
        text = _cut(text, match)
    elif match := _RATIO.search(text):
        a, b = int(match.group("a")), int(match.group("b"))
        if a and b:
            ratio = (a, b)
            text = _cut(text, match)
    elif match := _NAMED_ASPECT.search(text):
        ratio = NAMED_RATIOS[(match.group("name") or "widescreen").lower()]
        text = _cut(text, match)
    text = _START_OVER.sub("", strip_filler(text))
    verb = _GENERATE_VERB.match(text)
    style = None if verb else _STYLE_VERB.match(text)
    head = f"{style.group('verb')} " if style else ""
    rest = text[verb.end():] if verb else text[style.end():] if style else text
    rest = _IMAGE_OF.sub("", rest, count=1)
    prompt = strip_filler(head + rest)
    return GenerateText(prompt, size, ratio)


def _cut(text: str, match: re.Match[str]) -> str:
    return normalize(text[: match.start()] + " " + text[match.end():]).strip(" ,")


# --- remove background ---------------------------------------------------------------------------

_BG = r"(?:back\s?ground|bg|backdrop)"
_TRANSPARENT = re.compile(
    rf"\btransparent\s+(?:{_BG}|png|cut-?out|image|version)\b|"
    rf"\b{_BG}\s+(?:\w+\s+){{0,3}}?(?:transparent|see-through|clear|alpha)\b|"
    r"\bwith\s+(?:a\s+|an\s+)?(?:transparen(?:t|cy)|alpha(?:\s+channel)?)\b|"
    r"\b(?:make|turn)\s+(?:it|this|the\s+(?:image|picture|photo))\s+(?:into\s+a\s+)?"
    r"transparent(?:\s+png)?\s*$|\balpha\s+(?:channel|background|mask)\b|"
    r"\b(?:png|image)\s+with\s+transparency\b", _I)
_REMOVE_BACKGROUND = re.compile(
    r"\b(?:remove|delete|erase|drop|strip|cut(?:\s+out|\s+away)?|get\s+rid\s+of|"
    r"take\s+(?:out|away|off)|knock\s+out|lose|ditch|mask\s+out|clear)\s+"
    rf"(?:the\s+|its\s+|this\s+|that\s+|their\s+|his\s+|her\s+|all\s+(?:of\s+)?the\s+|"
    rf"the\s+whole\s+|the\s+entire\s+)?{_BG}\b|"
    rf"\b{_BG}\s+(?:removal|remover|erase|eraser|cut-?out)\b|\bremove\s?bg\b|\brembg\b|"
    rf"\bno\s+(?:more\s+)?{_BG}\b|\bwithout\s+(?:a\s+|the\s+|any\s+|its\s+)?{_BG}\b|"
    r"\bstickers?\b|\bisolate\b|"
    r"\bcut\s+(?:out\s+)?(?:the\s+subject|the\s+object|the\s+person|the\s+foreground|him|her|"
    r"them|it)(?:\s+out)?\s*$|\bcut\s+out\s+(?:the|this|that)\s+\w+(?:\s+\w+)?\s*$|"
    r"\bcut\s+(?:him|her|them|it|the\s+\w+)\s+out\b|"
    r"\bextract\s+(?:the\s+)?(?:subject|foreground|object|person|main\s+subject)\b|"
    r"\b(?:keep|leave)\s+only\s+(?:the\s+)?(?:subject|foreground|person|main\s+subject)\b|"
    r"\bforeground\s+only\b|\bsubject\s+only\b", _I)
# "replace the background with a beach", "put it on a white background": a new background is
# an edit instruction (see the router's tie-breaks), not a removal.
_BACKGROUND_SWAP = re.compile(
    rf"\b(?:replace|swap|switch|change|exchange|substitute)\w*\b(?:\s+\w+){{0,3}}?\s+{_BG}\b|"
    rf"\b{_BG}\b.{{0,60}}?\b(?:replace|swap|put|place|add|instead|with\s+(?:an?|some)\s+\w+|"
    r"(?:make|turn|paint)\s+it|white|black|gr[ae]y|blue|red|green|solid|plain)\b|"
    rf"\b(?:new|different|another)\s+{_BG}\b|\bon\s+(?:an?|some)\s+[\w\s]{{1,30}}?{_BG}\b", _I)


def wants_transparency(text: str) -> bool:
    return bool(_TRANSPARENT.search(text))


def removes_background(text: str) -> bool:
    return bool(_REMOVE_BACKGROUND.search(text))


def names_background(text: str) -> bool:
    """Says "background"/"transparent" (without it, "a sticker of a cat" is a style)."""
    return bool(re.search(rf"\b(?:{_BG}|transparen(?:t|cy))\b", text, _I))


def swaps_background(text: str) -> bool:
    return bool(_BACKGROUND_SWAP.search(text))


# --- outpaint ---------------------------------------------------------------------------------

_CROP = re.compile(r"(?<!un)(?<!un-)\bcrop(?:ped|ping)?\s+(?:it|this|the\s+\w+|to|into|in|out)\b",
                   _I)
_ASPECT = re.compile(r"\b(?P<a>\d{1,2})\s*[:/]\s*(?P<b>\d{1,2})\b"
                     r"(?:\s+(?:aspect(?:\s+ratio)?|ratio|format|frame))?", _I)
_ASPECT_LEAD = re.compile(
    r"(?:\b(?:make|turn|change|convert|set|reframe|extend|expand|outpaint|adjust|fix)\s+"
    r"(?:it|this|the\s+(?:image|picture|photo|canvas|frame|shot|aspect(?:\s+ratio)?|ratio|"
    r"format))?\s*(?:(?:in)?to|as|in)?\s*(?:an?\s+)?|\baspect(?:\s+ratio)?\s+(?:of\s+|to\s+)?|"
    r"\b(?:in|to|into|as)\s+(?:an?\s+)?)$", _I)
_NAMED_ASPECT_EDIT = re.compile(
    r"\b(?:make|turn|change|convert|reframe)\s+(?:it|this|the\s+(?:image|picture|photo|canvas|"
    r"frame))\s+(?:in)?(?:to\s+)?(?:an?\s+)?(?P<name>square|landscape|widescreen|panoramic|"
    r"panorama|portrait|vertical)\b(?:\s+(?:format|orientation|image|picture|photo|one))?|"
    r"\b(?:in|to)\s+(?P<name2>square|landscape|portrait|widescreen|vertical)\s+"
    r"(?:format|orientation|mode)\b", _I)
_WIDER = re.compile(
    r"\b(?:make|turn)\s+(?:it|this|the\s+(?:image|picture|photo|canvas|frame|shot|scene|view))"
    r"\s+(?:(?P<factor>twice|two\s+times|2x|three\s+times|3x)\s+as\s+(?P<as>wide|tall|high)|"
    r"(?:a\s+(?:bit|little|lot|tad)\s+|slightly\s+|much\s+)?(?P<comp>wider|broader|taller|"
    r"higher|longer))\b|"
    r"^(?:widen|broaden)(?:\s+(?:it|this|the\s+(?:image|picture|photo|canvas|frame|shot|view|"
    r"scene)))?\b(?!\s+(?:the|his|her|its|their|my)\b)", _I)
_ZOOM = re.compile(
    r"\bzoom(?:ed|ing)?[\s-]*out\b|\bpull\s+(?:the\s+camera\s+)?back\b|\bun-?crop\b|"
    r"\bshow\s+more\s+of\s+(?:the\s+)?(?:scene|surroundings|background|area|room|landscape|"
    r"environment|world|place)\b|\bwider\s+(?:shot|view|angle)\b|"
    r"\b(?:extend|expand|outpaint)\s+(?:it\s+|the\s+(?:image|picture|photo|canvas|frame|scene)\s+)?"
    r"(?:in\s+|on\s+|to\s+)?(?:all|every|each)\s+(?:sides?|directions?|edges?|ways)\b|"
    r"\b(?:extend|expand|outpaint)\s+(?:it|the\s+(?:image|picture|photo|canvas|frame|scene|"
    r"shot))?\s*\baround\b", _I)
_OUT_VERB = re.compile(
    r"\b(?:extend(?:ed|ing)?|expand(?:ed|ing)?|outpaint(?:ing)?|continue|grow|enlarge|widen|"
    r"pan|open\s+up|add\s+(?:some\s+)?(?:more\s+)?(?:space|room|canvas|area)|"
    r"(?:more|extra)\s+(?:space|room|canvas|area))\b", _I)
_ADD_MORE = re.compile(
    r"\badd\s+(?:some\s+)?more\s+(?P<what>[\w\s'-]{1,40}?)\s+(?:(?:to|on|at|along)\s+"
    r"(?:the\s+)?(?P<side>left|right|top|bottom)(?:\s+(?:side|edge))?|(?P<side2>above|below))\b",
    _I)
SIDE_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("left",), "leftward": ("left",), "leftwards": ("left",),
    "right": ("right",), "rightward": ("right",), "rightwards": ("right",),
    "top": ("top",), "up": ("top",), "upward": ("top",), "upwards": ("top",),
    "above": ("top",), "bottom": ("bottom",), "down": ("bottom",), "downward": ("bottom",),
    "downwards": ("bottom",), "below": ("bottom",),
    "horizontally": HORIZONTAL, "sideways": HORIZONTAL, "sides": HORIZONTAL,
    "vertically": VERTICAL, "around": SIDES,
}
# Words that may sit between an outpaint verb and its side: objects, prepositions, amounts.
_RUN_WORDS = frozenset({
    "it", "this", "the", "image", "picture", "photo", "photograph", "canvas", "frame", "scene",
    "shot", "view", "scenery", "background", "it's", "its", "to", "on", "at", "toward", "towards",
    "in", "into", "onto", "from", "off", "of", "by", "side", "sides", "edge", "edges", "part",
    "and", "both", "a", "an", "half", "third", "quarter", "little", "bit", "lot", "slightly",
    "more", "px", "pixels", "pixel", "percent", "%", "each", "all", "every", "direction",
    "directions", "way", "ways", "further", "farther", "out", "some",
})
_CONNECTORS = re.compile(
    r"^(?:[,;:-]\s*)?(?:(?:and|with|showing|to\s+show|to\s+include|including|adding|add|"
    r"filled\s+with|fill(?:ing)?\s+(?:it\s+)?with|so\s+(?:that\s+)?(?:we|you|it)\s+"
    r"(?:see|shows?)|revealing)\b\s*)*", _I)
_NO_PROMPT_WORDS = frozenset({
    "it", "this", "the", "image", "picture", "photo", "canvas", "frame", "scene", "more", "a",
    "an", "some", "please", "too", "also", "side", "sides", "edge", "bit", "little", "one",
    "version", "format", "ratio", "aspect", "go", "give", "get", "have", "let", "make", "turn",
    "i", "me", "you", "can", "could", "would", "want", "need",
})
_PIXELS = re.compile(r"\b(?P<n>\d{1,5})\s*(?:px|pixels?|pix)\b|\bby\s+(?P<b>\d{1,5})\b"
                     r"(?!\s*(?:%|x\b|times|percent|per\s*cent|:))", _I)
_PERCENT = re.compile(r"\b(?P<n>\d{1,3}(?:\.\d+)?)\s*(?:%|percent\b|per\s*cent\b)", _I)
_FRACTION = re.compile(
    r"\bby\s+(?:a\s+|one\s+)?(?P<w>half|third|quarter|fifth|tenth)\b|"
    r"\b(?:a|one)\s+(?P<w2>third|quarter|fifth)\b|\bhalf\s+(?:the|its)\s+(?:width|height|size)\b",
    _I)
_LITTLE = re.compile(r"\b(?:a\s+(?:little|bit|tad)(?:\s+bit)?|slightly|a\s+touch|somewhat)\b", _I)
_LOT = re.compile(r"\b(?:a\s+lot|lots|much\s+more|way\s+more|significantly|considerably|"
                  r"double|twice)\b", _I)
_FACTOR = re.compile(r"\b(?P<f>\d(?:\.\d+)?)\s*(?:x|×|times)(?!\w)|\bx\s*(?P<g>\d(?:\.\d+)?)\b",
                     _I)
FRACTIONS = {"half": 0.5, "third": 1 / 3, "quarter": 0.25, "fifth": 0.2, "tenth": 0.1}


@dataclass(frozen=True)
class OutpaintText:
    """An outpaint request in words: which sides (or an aspect, or zoom), how much, the prompt."""

    kind: Literal["sides", "zoom", "aspect"]
    sides: tuple[str, ...]
    amount: Amount
    factor: float | None  # zoom: the canvas as a multiple of the image
    ratio: tuple[int, int] | None  # aspect
    prompt: str


def asks_crop(text: str) -> bool:
    return bool(_CROP.search(text))


def outpaint_text(text: str) -> OutpaintText | None:
    """Recognise "extend to the left (by 300 px)", "make it 16:9", "zoom out", "widen"…"""
    amount = _amount(text)
    if match := _ASPECT.search(text):
        a, b = int(match.group("a")), int(match.group("b"))
        if a and b and max(a, b) / min(a, b) <= 4:
            start = match.start()
            if lead := _ASPECT_LEAD.search(text[:start]):
                start = lead.start()
            sides = _sides_in(text)
            return OutpaintText("aspect", sides, amount, None, (a, b),
                                _residual(text, start, match.end(), strip_sides=bool(sides)))
    if match := _NAMED_ASPECT_EDIT.search(text):
        name = (match.group("name") or match.group("name2")).lower()
        return OutpaintText("aspect", (), amount, None, NAMED_RATIOS[name],
                            _residual(text, match.start(), match.end()))
    if match := _WIDER.search(text):
        tall = re.search(r"tall|high|taller|higher|longer", match.group(0), _I) is not None
        factor = match.group("factor")
        if factor:
            multiple = 3.0 if factor.lower() in ("three times", "3x") else 2.0
            amount = Amount(fraction=(multiple - 1) / 2)
        elif amount == Amount():
            amount = Amount(fraction=0.25)
        elif amount.fraction is not None:  # "a bit wider": the stated share is the total
            amount = Amount(fraction=amount.fraction / 2)
        return OutpaintText("sides", VERTICAL if tall else HORIZONTAL, amount, None, None,
                            _residual(text, match.start(), match.end()))
    if match := _ADD_MORE.search(text):
        side = (match.group("side") or match.group("side2")).lower()
        rest = _residual(text, match.start(), match.end())
        what = match.group("what").strip()
        return OutpaintText("sides", SIDE_WORDS[side], amount, None, None,
                            f"{what}, {rest}" if rest else what)
    for verb in _OUT_VERB.finditer(text):
        run_end, sides = _side_run(text, verb.end())
        if sides:
            return OutpaintText("sides", sides, amount, None, None,
                                _residual(text, verb.start(), run_end))
        if verb.group(0).lower().startswith(("extend", "expand", "outpaint")) \
                and _ends_clause(text, run_end):
            return OutpaintText("zoom", SIDES, amount, _factor(text, amount), None,
                                _residual(text, verb.start(), run_end))
    if match := _ZOOM.search(text):
        run_end, sides = _side_run(text, match.end())
        if sides:  # "outpaint to the left"
            return OutpaintText("sides", sides, amount, None, None,
                                _residual(text, match.start(), run_end))
        return OutpaintText("zoom", SIDES, amount, _factor(text, amount), None,
                            _residual(text, match.start(), run_end))
    return None


def _side_run(text: str, start: int) -> tuple[int, tuple[str, ...]]:
    """Consume words that may follow an outpaint verb; (where the run ends, sides named)."""
    sides: list[str] = []
    end = start
    for word in re.finditer(r"[\w'%-]+|[,&+]", text[start:]):
        token = word.group(0).lower()
        before = text[start:start + word.start()]
        everywhere = re.search(r"\b(?:all|every|each)\s+$", before, _I) is not None
        if token in ("sides", "directions", "ways", "edges") and everywhere:
            sides.extend(SIDES)  # "in all directions", "on all sides"
        elif token == "sides":
            if not re.search(r"\b(?:both|the)\s+$", before, _I):
                break
            sides.extend(HORIZONTAL)  # "extend both sides"
        elif token in SIDE_WORDS:
            sides.extend(SIDE_WORDS[token])
        elif not (token in _RUN_WORDS or token in ",&+" or re.fullmatch(r"\d+(?:px|%)?", token)):
            break
        end = start + word.end()
    return end, tuple(side for side in SIDES if side in sides)


def _sides_in(text: str) -> tuple[str, ...]:
    found = {side for word in re.findall(r"\b(left|right|top|bottom)\b", text, _I)
             for side in SIDE_WORDS[word.lower()]}
    return tuple(side for side in SIDES if side in found)


def _ends_clause(text: str, at: int) -> bool:
    rest = text[at:].strip()
    return not rest or bool(re.match(r"(?:[,;:.!-]|with\b|and\b|to\s+show\b|showing\b|"
                                     r"so\b|filled\b|including\b|revealing\b)", rest, _I))


def _amount(text: str) -> Amount:
    if match := _PIXELS.search(text):
        return Amount(pixels=int(match.group("n") or match.group("b")))
    if match := _PERCENT.search(text):
        return Amount(fraction=float(match.group("n")) / 100)
    if match := _FRACTION.search(text):
        word = (match.group("w") or match.group("w2") or "half").lower()
        return Amount(fraction=FRACTIONS[word])
    if _LITTLE.search(text):
        return Amount(fraction=0.25)
    if _LOT.search(text):
        return Amount(fraction=1.0)
    return Amount()


def _factor(text: str, amount: Amount) -> float | None:
    if match := _FACTOR.search(text):
        factor = float(match.group("f") or match.group("g"))
        return factor if factor > 1 else None
    if amount.fraction is not None:
        return 1 + amount.fraction
    return None


def _residual(text: str, start: int, end: int, *, strip_sides: bool = False) -> str:
    """The words around a recognised phrase, as the prompt for the new area ("" if none)."""
    rest = (text[:start] + " " + text[end:]).strip()
    rest = _PIXELS.sub(" ", rest)
    rest = _PERCENT.sub(" ", rest)
    rest = _FRACTION.sub(" ", rest)
    rest = _FACTOR.sub(" ", rest)
    if strip_sides:
        rest = re.sub(r"\b(?:by\s+)?(?:extending|growing|adding\s+to)\s+(?:the\s+)?"
                      r"(?:left|right|top|bottom)(?:\s+(?:side|edge))?\b", " ", rest, flags=_I)
    rest = re.sub(r"\b(?:by|a\s+(?:little|bit|lot)(?:\s+bit)?|slightly|on|at|to)\s*$", "",
                  rest.strip(), flags=_I)
    rest = strip_filler(normalize(rest))
    rest = _CONNECTORS.sub("", rest).strip(" ,;:-")
    rest = strip_filler(rest)
    words = re.findall(r"[\w'%-]+", rest.lower())
    if not words or all(word in _NO_PROMPT_WORDS or word in _RUN_WORDS for word in words):
        return ""
    return rest


# --- region edit ------------------------------------------------------------------------------

_DETERMINERS = r"(?:the|his|her|their|its|my|our|your|that|this|those|these|a|an)"
_REGION_PATTERNS = (
    re.compile(r"^(?:replace|swap(?:\s+out)?|switch(?:\s+out)?|exchange|substitute)\s+"
               r"(?P<x>.+?)\s+(?:with|for|by)\s+(?P<y>.+)$", _I),
    re.compile(r"^(?:change|turn|make|transform|convert|recolou?r|colou?r|paint|edit|modify)\s+"
               r"(?:only|just)\s+(?P<x>.+?)\s+(?:to|into|with)\s+(?P<y>.+)$", _I),
    re.compile(r"^(?:only|just)\s+(?:change|turn|make|transform|convert|recolou?r|colou?r|"
               r"paint|edit|modify|replace)\s+(?P<x>.+?)\s+(?:to|into|with)\s+(?P<y>.+)$", _I),
    re.compile(r"^(?:change|turn|transform|convert)\s+(?P<x>.+?)\s+only\s+(?:to|into)\s+"
               r"(?P<y>.+)$", _I),
    re.compile(r"^(?:change|turn|transform|convert)\s+(?P<x>.+?)\s+(?:to|into)\s+"
               r"(?P<y>.+?)\s*,?\s+only$", _I),
)
_MAKE_ONLY = re.compile(
    r"^(?P<verb>make|paint|colou?r|recolou?r|dye|turn|tint)\s+(?:only|just)\s+(?P<rest>.+)$|"
    r"^(?:only|just)\s+(?P<verb2>make|paint|colou?r|recolou?r|dye|turn|tint)\s+(?P<rest2>.+)$",
    _I)
_KEEP_REST = re.compile(
    r"(?:\s*[,;-]\s*|\s+)(?:(?:and|but)\s+)?(?:keep|leave|don'?t\s+(?:change|touch))\s+"
    r"(?:everything|the\s+rest|all|anything)(?:\s+else)?(?:\s+(?:of\s+the\s+(?:image|picture|"
    r"photo)))?(?:\s+(?:the\s+same|as\s+(?:it\s+)?is|unchanged|intact|alone|untouched))?\s*$|"
    r"\s*[,;-]?\s*(?:and\s+)?nothing\s+else\s*$", _I)
_CHANGE_X_TO_Y = re.compile(
    r"^(?:change|turn|transform|convert|recolou?r|replace)\s+(?P<x>.+?)\s+(?:to|into|with)\s+"
    r"(?P<y>.+)$", _I)
_MAKE_X_Y = re.compile(r"^(?P<verb>make|paint|colou?r|recolou?r|dye|tint)\s+(?P<rest>.+)$", _I)
# Where the region's words stop in "make just the front door green": a colour, a comparative…
_STOP_WORDS = frozenset({
    "red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black",
    "white", "gray", "grey", "golden", "gold", "silver", "teal", "cyan", "magenta", "beige",
    "transparent", "invisible", "bigger", "smaller", "larger", "darker", "brighter", "lighter",
    "shinier", "older", "younger", "happier", "sadder", "longer", "shorter", "wider", "taller",
    "thinner", "fatter", "wooden", "metallic", "glowing", "shiny", "rusty", "snowy", "wet", "dry",
    "blurry", "sharper", "sharp", "smiling", "look", "match", "disappear", "vanish", "into",
    "like", "more", "less", "a", "an", "bright", "dark", "light", "pale", "neon", "striped",
    "spotted", "polka", "plaid", "marble", "glass", "made",
})
WHOLE_IMAGE = frozenset({
    "it", "this", "that", "everything", "all", "the image", "the picture", "the photo",
    "the whole image", "the whole picture", "the whole thing", "the whole photo", "the scene",
    "the whole scene", "the entire image", "the entire picture", "the colors", "the colours",
})
_BACKGROUND_WORDS = re.compile(rf"\b(?:{_BG}|scene|setting|surroundings)\b", _I)


@dataclass(frozen=True)
class RegionText:
    region: str  # the words naming what to change ("the car")
    prompt: str  # what to put there ("a tram"), or the instruction ("make the car red")


def region_text(text: str) -> RegionText | None:
    """"replace the X with Y", "change only the X to Y", "make just the X …" (filler stripped).
    None when the region would be the whole image or its background (an edit instead)."""
    kept = _KEEP_REST.sub("", text)
    keep_rest = kept != text
    for pattern in _REGION_PATTERNS:
        if match := pattern.match(kept):
            return _region(match.group("x"), match.group("y"))
    if match := _MAKE_ONLY.match(kept):
        verb = match.group("verb") or match.group("verb2")
        rest = match.group("rest") or match.group("rest2")
        return _make_region(verb, rest)
    if keep_rest:
        if match := _CHANGE_X_TO_Y.match(kept):
            return _region(match.group("x"), match.group("y"))
        if match := _MAKE_X_Y.match(kept):
            return _make_region(match.group("verb"), match.group("rest"))
    return None


def _region(x: str, y: str) -> RegionText | None:
    region = re.sub(r"^(?:only|just)\s+|\s+(?:only|alone)$", "", x.strip(), flags=_I).strip()
    prompt = re.sub(r"\s*,?\s+only$", "", y.strip(), flags=_I)
    prompt = strip_filler(prompt)
    if not _usable_region(region) or not meaningful(prompt):
        return None
    return RegionText(region, prompt)


def _make_region(verb: str, rest: str) -> RegionText | None:
    """`make just the front door green` → region "the front door", "make the front door green"."""
    words = rest.split()
    if len(words) < 2:
        return None
    cut = next((i for i, word in enumerate(words[1:], start=1)
                if word.lower().strip(",.") in _STOP_WORDS), None)
    if cut is None:  # no colour or comparative: determiner + one word, or the first word
        cut = 2 if re.fullmatch(_DETERMINERS, words[0], _I) and len(words) > 2 else 1
    region = " ".join(words[:cut])
    if not _usable_region(region):
        return None
    return RegionText(region, strip_filler(f"{verb.lower()} {rest}"))


def _usable_region(region: str) -> bool:
    lowered = region.lower()
    return (bool(region) and len(region) <= 300 and lowered not in WHOLE_IMAGE
            and not _BACKGROUND_WORDS.search(region) and meaningful(region))
