"""The Library tab's HTML: the grid of thumbnails and the open picture (its parameters and its
lineage). Pure functions of library items and a URL maker, so they are tested without a
server. Every file is shown through the owner-checked route (backend/api/library_files.py):
`UrlOf(path, download)` gives its URL for the page's owner.

Clickable things carry `data-item="<id>"`; `PICK_JS` turns a click on one into the component's
`click` event with `{item: id}` (the handler re-checks the owner: an id is only a name).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from backend.library import LibraryItem, Lineage

UrlOf = Callable[[Path, bool], str]
TitleOf = Callable[[str], str]
CAPTION_CHARS = 60

PICK_JS = """
element.addEventListener('click', (event) => {
  const card = event.target.closest('[data-item]');
  if (!card) return;
  event.preventDefault();
  element.querySelectorAll('.lib-card.selected').forEach((c) => c.classList.remove('selected'));
  if (card.classList.contains('lib-card')) card.classList.add('selected');
  trigger('click', {item: card.dataset.item});
  // A phone stacks the open picture under the grid: bring it into view.
  if (window.innerWidth < 900) setTimeout(() => document.getElementById('library-detail')
    ?.scrollIntoView({block: 'start', behavior: 'smooth'}), 400);
});
"""

GRID_CSS = """
.lib-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(132px, 1fr));
  gap: 10px; }
.lib-card { position: relative; display: flex; flex-direction: column; padding: 0;
  border: 1px solid var(--border-color-primary); border-radius: 10px; overflow: hidden;
  background: var(--background-fill-secondary); cursor: pointer; text-align: left; }
.lib-card:hover, .lib-card:focus-visible { border-color: var(--color-accent);
  box-shadow: 0 0 0 2px var(--color-accent-soft); }
.lib-card.selected { border-color: var(--color-accent); box-shadow: 0 0 0 2px var(--color-accent); }
.lib-card img { width: 100%; aspect-ratio: 1 / 1; object-fit: cover; display: block;
  background: var(--background-fill-primary); }
.lib-meta { display: block; padding: 5px 7px 0; font-size: 0.7rem;
  color: var(--body-text-color-subdued); white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.lib-cap { font-size: 0.78rem; line-height: 1.3; margin: 2px 7px 7px; color: var(--body-text-color);
  overflow: hidden; display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical;
  height: 2.6em; font-weight: normal; }
.lib-star { position: absolute; top: 6px; right: 6px; color: #f5b301; font-size: 1.1rem;
  text-shadow: 0 0 3px rgba(0,0,0,.7); }
.lib-empty { padding: 28px 12px; color: var(--body-text-color-subdued); text-align: center; }
@media (max-width: 640px) {
  .lib-grid { grid-template-columns: repeat(3, 1fr); gap: 6px; }
  .lib-cap, .lib-meta { display: none; }
}
"""

DETAIL_CSS = """
.lib-detail .lib-full { width: 100%; max-height: 46vh; object-fit: contain; border-radius: 10px;
  background: var(--background-fill-secondary); display: block; }
.lib-detail .lib-prompt { margin: 8px 0 4px; white-space: pre-wrap; word-break: break-word; }
.lib-detail dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px;
  margin: 6px 0; font-size: 0.85rem; }
.lib-detail dt { color: var(--body-text-color-subdued); }
.lib-detail dd { margin: 0; word-break: break-word; }
.lib-detail .lib-line { margin-top: 8px; font-size: 0.85rem; }
.lib-detail .lib-chips { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 4px; }
.lib-detail .lib-chip { display: flex; align-items: center; gap: 6px; padding: 2px 8px 2px 2px;
  border: 1px solid var(--border-color-primary); border-radius: 8px; cursor: pointer;
  background: var(--background-fill-secondary); font-size: 0.8rem; max-width: 100%; }
.lib-detail .lib-chip img { width: 40px; height: 40px; object-fit: cover; border-radius: 6px; }
.lib-detail .lib-download { display: inline-block; margin: 2px 0 4px; font-weight: 600; }
.lib-detail .lib-empty { padding: 28px 12px; color: var(--body-text-color-subdued); }
"""

# Page-level rules (gr.HTML's `head`): the open picture stays in view while the grid scrolls.
PAGE_STYLE = """<style>
@media (min-width: 900px) {
  #library-side { position: sticky; top: 8px; align-self: flex-start; }
}
#library-pager button { min-height: 34px; }
</style>"""

NO_SELECTION = ("<div class='lib-detail'><div class='lib-empty'>Click a picture to see it full "
                "size, with its settings and what it was made from.</div></div>")


def _text(value: str) -> str:
    return html.escape(value, quote=True)


def short(text: str, limit: int = CAPTION_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when(created: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(created))


def short_when(created: float) -> str:
    """A card's date: the year only when it is not this one."""
    made, now = time.localtime(created), time.localtime()
    return time.strftime("%d %b %H:%M" if made.tm_year == now.tm_year else "%d %b %Y", made)


def grid_html(items: Sequence[LibraryItem], url_of: UrlOf, title_of: TitleOf,
              selected: str | None, empty: str) -> str:
    if not items:
        return f"<div class='lib-empty'>{_text(empty)}</div>"
    cards = []
    for item in items:
        words = short(item.prompt or item.region or "")
        label = f"{title_of(item.mode)}: {words}" if words else title_of(item.mode)
        cards.append(
            f"<button type='button' class='lib-card{' selected' if item.id == selected else ''}'"
            f" data-item='{_text(item.id)}' title='{_text(label)}'>"
            f"<img loading='lazy' alt='{_text(label)}' src='{_text(url_of(item.thumb, False))}'>"
            + ("<span class='lib-star' aria-label='starred'>★</span>" if item.starred else "")
            + f"<span class='lib-meta'>{_text(title_of(item.mode))} · "
            f"{_text(short_when(item.created))}</span><span class='lib-cap'>{_text(words)}</span>"
            "</button>")
    return f"<div class='lib-grid'>{''.join(cards)}</div>"


def _chip(item: LibraryItem, url_of: UrlOf, title_of: TitleOf) -> str:
    words = short(item.prompt or item.region or "", 32)
    label = f"{title_of(item.mode)}{': ' + words if words else ''}"
    return (f"<button type='button' class='lib-chip' data-item='{_text(item.id)}'>"
            f"<img loading='lazy' alt='' src='{_text(url_of(item.thumb, False))}'>"
            f"<span>{_text(label)}</span></button>")


def parameter_rows(item: LibraryItem, title_of: TitleOf) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [("Mode", title_of(item.mode)), ("Made", when(item.created)),
                                   ("Size", f"{item.width}×{item.height}")]
    for label, value in (("Region", item.region), ("Negative", item.negative),
                         ("Seed", item.seed), ("Steps", item.steps), ("CFG", item.cfg),
                         ("Variant", item.variant)):
        if value not in (None, ""):
            rows.append((label, str(value)))
    for key, value in sorted(item.params.items()):
        if value not in (None, ""):
            rows.append((key.replace("_", " ").capitalize(),
                         value if isinstance(value, str) else json.dumps(value)))
    total = sum(item.timings.values()) if item.timings else 0.0
    if total:
        rows.append(("Took", f"{total:.1f} s"))
    rows.append(("From", {"ui": "the studio", "api": "the API", "chat": "the chat",
                          "cli": "the command line"}.get(item.surface, item.surface)))
    return rows


def detail_html(item: LibraryItem, url_of: UrlOf, title_of: TitleOf) -> str:
    """The open picture, its prompt and its download link (the actions come right under)."""
    prompt = item.prompt or ""
    return (
        f"<div class='lib-detail' id='library-open' data-open='{_text(item.id)}'>"
        f"<img class='lib-full' alt='{_text(short(prompt) or title_of(item.mode))}' "
        f"src='{_text(url_of(item.result, False))}'>"
        f"<div class='lib-prompt'>{'★ ' if item.starred else ''}{_text(prompt)}</div>"
        f"<a class='lib-download' id='library-download' download "
        f"href='{_text(url_of(item.result, True))}'>Download PNG</a></div>")


def info_html(lineage: Lineage, url_of: UrlOf, title_of: TitleOf) -> str:
    """Its parameters, then its lineage: what it was made from and what was made from it
    (each a chip that opens that picture)."""
    item = lineage.item
    rows = "".join(f"<dt>{_text(k)}</dt><dd>{_text(v)}</dd>"
                   for k, v in parameter_rows(item, title_of))
    parts = [f"<div class='lib-detail'><dl>{rows}</dl>"]
    if item.notes:
        parts.append(f"<div class='lib-line'>{_text(' '.join(item.notes))}</div>")
    if lineage.ancestors:
        chips = "".join(_chip(a, url_of, title_of) for a in lineage.ancestors)
        parts.append("<div class='lib-line' id='library-made-from'>Made from (its source "
                     f"first):<div class='lib-chips'>{chips}</div></div>")
    if lineage.children:
        chips = "".join(_chip(c, url_of, title_of) for c in lineage.children)
        parts.append("<div class='lib-line' id='library-made-with'>Made from this one:"
                     f"<div class='lib-chips'>{chips}</div></div>")
    parts.append("</div>")
    return "".join(parts)
