"""The history strip: the owner's newest library items (ui/identity.py says who the owner is),
so it survives a reload and shows every result, whichever tab or job made it.

It is refreshed on page load and whenever one of the page's jobs is saved (the follower bumps
the page's history token, whose `change` event refreshes it: ui/app.py). A change event runs one at a time
per page and always with the newest token, so two results saved close together both show.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import gradio as gr

from backend.library import ItemQuery, Library, LibraryError, LibraryItem
from backend.modes import ModeRegistry
from ui.files import served
from ui.identity import Visitor
from ui.pages import Page

log = logging.getLogger(__name__)

HISTORY_SIZE = 24
CAPTION_CHARS = 40


def title_of(registry: ModeRegistry, mode: str) -> str:
    spec = registry.find(mode)
    return spec.title if spec is not None else mode


def caption(item: LibraryItem, title: str) -> str:
    text = (item.prompt or item.region or "").strip()
    if len(text) > CAPTION_CHARS:
        text = text[: CAPTION_CHARS - 1] + "…"
    return f"{title}: {text}" if text else title


def describe(item: LibraryItem, title: str) -> str:
    """Markdown for the selected history item: what made it."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item.created))
    lines = [f"**{title}** · {when}"]
    for label, value in (("Prompt", item.prompt), ("Region", item.region),
                         ("Negative", item.negative)):
        if value:
            lines.append(f"{label}: {_md_escape(value)}")
    knobs = [f"{label} {value}" for label, value in (
        ("seed", item.seed), ("steps", item.steps), ("cfg", item.cfg), ("variant", item.variant),
    ) if value not in (None, "")]
    knobs.append(f"{item.width}×{item.height}")
    lines.append(" · ".join(knobs))
    if item.notes:
        lines.append(" ".join(item.notes))
    return "  \n".join(lines)


def _md_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\`*_[]<>#|" else c for c in text)


def gallery_value(
    items: Sequence[LibraryItem], registry: ModeRegistry
) -> tuple[list[str], list[tuple[str, str]]]:
    """The items the strip can show (their ids, in order) and the gallery's value."""
    ids, shown = [], []
    for item in items:
        try:
            shown.append((served(item.thumb), caption(item, title_of(registry, item.mode))))
        except OSError as exc:      # pruned or deleted since it was listed
            log.info("history: %s not shown: %s", item.id, exc)
            continue
        ids.append(item.id)
    return ids, shown


async def history_of(library: Library, visitor: Visitor, page: Page,
                     registry: ModeRegistry) -> list[tuple[str, str]] | None:
    """The history strip's value for this page (and remember what it lists, for a click)."""
    try:
        listed = await library.page(
            visitor.owner, ItemQuery(limit=HISTORY_SIZE, count_total=False))
    except LibraryError as exc:
        log.warning("history unavailable: %s (%s)", exc.message, exc.detail)
        gr.Warning(exc.message)
        return None
    page.history, shown = gallery_value(listed.items, registry)
    return shown
