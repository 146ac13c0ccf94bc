"""Prompts you can reuse (issue 14 item 4), under every tab's prompt: a "Style" menu (saved
styles: text appended to the prompt and the negative prompt, backend/prompts/styles.py) and
"Recent prompts" (the person's last 50, newest first; type to search, pick one to put it in
the prompt box). The list is read when the menu is opened, so a prompt run in another tab or
window is there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import gradio as gr

from backend.library import LibraryConfig
from backend.prompts import PromptHistory, StyleBook, load_styles
from backend.requests import RequestBase
from ui.identity import visitor_for

R = TypeVar("R", bound=RequestBase)
NO_STYLE = ""
# One history object per data folder (its lock is what keeps two quick runs' writes apart).
_HISTORIES: dict[Path, PromptHistory] = {}


def history_for(data_dir: Path) -> PromptHistory:
    if data_dir not in _HISTORIES:
        _HISTORIES[data_dir] = PromptHistory(data_dir)
    return _HISTORIES[data_dir]


@dataclass
class PromptTools:
    prompt: gr.Textbox
    style: gr.Dropdown
    recent: gr.Dropdown
    data_dir: Path

    def styles(self) -> StyleBook:
        return load_styles(self.data_dir)

    @property
    def history(self) -> PromptHistory:
        return history_for(self.data_dir)


def style_choices(book: StyleBook) -> list[tuple[str, str]]:
    return [("No style", NO_STYLE), *((s.name, s.name) for s in book)]


def prompt_tools(data_dir: Path, mode: str, prompt: gr.Textbox) -> PromptTools:
    """Call right after the tab's prompt box, inside its column."""
    book = load_styles(data_dir)
    with gr.Row(elem_classes=["prompt-tools"]):
        style = gr.Dropdown(
            style_choices(book), value=NO_STYLE, label="Style",
            info=f"Appended to the prompt and negative; add your own in {data_dir.name}/"
                 "styles.json",
            elem_id=f"{mode}_style", min_width=160,
        )
        recent = gr.Dropdown(
            [], value=None, label="Recent prompts", filterable=True,
            info="Your last 50; type to search, pick one to reuse it",
            elem_id=f"{mode}_recent", min_width=200,
        )
    # Straight into the prompt box, in the browser.
    recent.input(None, recent, prompt, js="(v) => v || ''", queue=False,
                 api_visibility="private")
    return PromptTools(prompt, style, recent, data_dir)


def wire_prompt_tools(tools: PromptTools, config: LibraryConfig,
                      browser: gr.BrowserState) -> None:
    """On opening either menu: the person's recent prompts and the current styles."""

    def refresh(browser_id: object, request: gr.Request) -> tuple[object, object]:
        person = visitor_for(config, request, browser_id).person
        return (gr.update(choices=tools.history.recent(person)),
                gr.update(choices=style_choices(tools.styles())))

    for menu in (tools.recent, tools.style):
        menu.focus(refresh, [browser], [tools.recent, tools.style], queue=False,
                   show_progress="hidden", api_visibility="private")


def styled(tools: PromptTools, request: R, name: object) -> R:
    """The request with the chosen style appended (InvalidRequest names an unknown one)."""
    if name is None or name == NO_STYLE:
        return request
    return tools.styles().styled(request, str(name))


_WRITES: set[asyncio.Task[None]] = set()


def remember(tools: PromptTools, person: str, prompt: object) -> None:
    """The prompt as typed (before any style) joins the person's recent prompts: written in
    a worker thread, never holding up the Run that asked (the queue strip waits on it)."""
    if not isinstance(prompt, str) or not prompt.strip():
        return
    task = asyncio.get_running_loop().create_task(
        asyncio.to_thread(tools.history.add, person, prompt))
    _WRITES.add(task)
    task.add_done_callback(_WRITES.discard)
