"""Saved styles, like Fooocus': a name and text appended to the prompt and to the negative
prompt. A few ship with the studio (`styles.json` beside this module); people add their own in
`<STUDIO_DATA_DIR>/styles.json` (the same shape: a list of {"name", "prompt", "negative"}),
read again on every lookup so a style added while the studio runs works at once. A user style
with a shipped style's name replaces it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from backend.requests import InvalidRequest, RequestBase

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).with_name("styles.json")
USER_FILE = "styles.json"
NAME_MAX = 60
TEXT_MAX = 1000
R = TypeVar("R", bound=RequestBase)


class UnknownStyle(InvalidRequest):
    """A style name the studio does not have (the sentence lists the ones it has)."""


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str = ""
    negative: str = ""

    def apply_to(self, prompt: str, negative: str) -> tuple[str, str]:
        """The prompt and negative with this style's text appended (", "-separated)."""
        return _join(prompt, self.prompt), _join(negative, self.negative)


def _join(text: str, extra: str) -> str:
    text, extra = text.strip(), extra.strip()
    return f"{text}, {extra}" if text and extra else text or extra


@dataclass(frozen=True)
class StyleBook:
    """The styles by name, shipped ones first, then the user's in their file's order.
    `problem` is a sentence when the user's file could not be read (its styles are left
    out; the shipped ones still work)."""

    styles: Mapping[str, Style]
    problem: str | None = None

    def __iter__(self) -> Iterator[Style]:
        return iter(self.styles.values())

    def names(self) -> list[str]:
        return list(self.styles)

    def get(self, name: str) -> Style:
        style = self.styles.get(name.strip())
        if style is None:
            known = ", ".join(self.styles) or "none"
            raise UnknownStyle(f"There is no style named {name.strip()!r}; the styles are: "
                               f"{known}.", "style")
        return style

    def styled(self, request: R, name: str | None) -> R:
        """`request` with the named style appended to its prompt and negative prompt (as it
        is, without a name). A mode without a prompt takes no style."""
        if name is None or not name.strip():
            return request
        style = self.get(name)
        prompt = getattr(request, "prompt", None)
        if not isinstance(prompt, str):
            raise InvalidRequest(f"The {request.mode.replace('_', ' ')} mode has no prompt "
                                 "to add a style to.", "style")
        new_prompt, negative = style.apply_to(prompt, request.negative_prompt)
        # `prompt` is each mode's own field (checked above), not one of RequestBase's.
        return replace(request, negative_prompt=negative,
                       prompt=new_prompt)  # type: ignore[call-arg]


def load_styles(data_dir: Path) -> StyleBook:
    """The shipped styles plus the user's file in `data_dir` (when there is one)."""
    styles = {s.name: s for s in _read(SHIPPED.read_text(encoding="utf-8"), str(SHIPPED))}
    user = data_dir / USER_FILE
    try:
        text = user.read_text(encoding="utf-8")
    except FileNotFoundError:
        return StyleBook(styles)
    except OSError as exc:
        return StyleBook(styles, f"{user} could not be read ({exc.strerror}).")
    try:
        styles.update((s.name, s) for s in _read(text, str(user)))
    except ValueError as exc:
        log.warning("styles: %s", exc)
        return StyleBook(styles, str(exc))
    return StyleBook(styles)


def _read(text: str, where: str) -> list[Style]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON (line {exc.lineno}): {exc.msg}.") from None
    if not isinstance(raw, list):
        raise ValueError(f"{where} must hold a list of styles: "
                         '[{"name": …, "prompt": …, "negative": …}].')
    out: list[Style] = []
    for index, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise ValueError(f"{where}: style {index} is not an object.")
        name, prompt, negative = (item.get(k, "") for k in ("name", "prompt", "negative"))
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
            raise ValueError(f"{where}: style {index} needs a name of 1 to {NAME_MAX} "
                             "characters.")
        if not all(isinstance(t, str) and len(t) <= TEXT_MAX for t in (prompt, negative)):
            raise ValueError(f"{where}: style {name!r}: prompt and negative are text of at "
                             f"most {TEXT_MAX} characters.")
        assert isinstance(prompt, str) and isinstance(negative, str)
        out.append(Style(name.strip(), prompt, negative))
    return out
