"""The Chat tab: talk to the studio as to `qwen-image-chat` — "a red fox in the snow", then
"make it night", "remove the background" — with a Chatbot and a MultimodalTextbox.

Each turn is read like the API's (ui/chat_turns.py: the conversation as Gradio gives it back →
a `ChatTurn`), decided in the chat core's one place (`backend.chat.operation.decide`, the LLM
router when configured, else the rules), built into the mode's request there too, and handed to
the desk with surface "chat" (an edit's parent is the library item of the picture it edits).
The reply follows the job itself: its progress line and the sampler's live preview while it
runs, then the summary sentence (`backend.chat.replies.summary_line`) and the picture. Stop
stops the page's running chat job through the desk; the reply then says so.

Clicking a picture in the conversation continues from it (a branch: the next turn works on it,
not on the latest one) and shows it on the right, where "Send to" puts it in another tab.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder
from PIL import Image

from backend.chat import ChatTurn, Decision, help_text, summary_line
from backend.chat.operation import ModeUnavailable, decide, request_for, unreadable_image
from backend.desk import Job, JobState, Saved, Who
from backend.events import Failed, Finished
from backend.jobs import NotReadyAnywhere
from backend.requests import InvalidRequest
from backend.scheduler import QueueFull
from ui.chat_turns import LostImage, Picture, pictures, reply_file, turn_for
from ui.files import served
from ui.identity import Visitor
from ui.layout import send_targets
from ui.live import Track, data_url, message_md, status_html_for
from ui.pages import Page, SessionRefused
from ui.runner import QUICK, QUIET, redact, visitor_of, wire_send_buttons
from ui.tabspec import Shared, TabSpec

log = logging.getLogger(__name__)

MIN_GAP_S = 0.15            # between two streamed updates of the reply
PLACEHOLDER = (
    "**Talk to the studio.** Describe a picture — *a red fox in the snow, watercolor* — then "
    "change it: *make it night*, *remove the background*, *make it 16:9*, *replace the fox with "
    "a cat*. Attach 1–3 pictures to edit or combine them. Click a picture to continue from it."
)
LATEST_NOTE = "Continuing from the latest picture."
BRANCH_NOTE = ("Continuing from an earlier picture (a branch): the next message works on it, "
               "not on the latest one.")
EMPTY_NOTE = "No picture yet: the next message draws one."
DOING = {
    "generate": "Drawing", "edit": "Editing", "multiref": "Combining",
    "remove_background": "Removing the background", "outpaint": "Extending",
    "region_edit": "Changing a region",
}

History = list[Any]
# The conversation's pictures stay small enough that a turn and its answer fit on screen.
CSS = """
#chat_log .message .image-frame img { max-height: 220px; width: auto; max-width: 100%; }
#chat_log img.chat-live { display: block; max-width: 256px; max-height: 256px; margin-top: 8px;
  border-radius: 8px; }
#chat_log .chat-working .run-state { margin-top: 4px; min-width: 260px; }
#chat_note { font-size: 0.9em; }
"""


@dataclass(frozen=True)
class ChatTab:
    chatbot: gr.Chatbot
    box: gr.MultimodalTextbox
    stop: gr.Button
    message: gr.HTML
    picked: gr.Image
    note: gr.Markdown
    branch: gr.State            # the message index the next turn continues from (None: latest)
    send: dict[str, gr.Button]


def build(shared: Shared) -> ChatTab:
    with gr.Row(equal_height=False, elem_id="chat-row"):
        with gr.Column(scale=3, min_width=320):
            chatbot = gr.Chatbot(
                label="Chat", elem_id="chat_log", height=560, placeholder=PLACEHOLDER,
                buttons=["copy"], group_consecutive_messages=False,
            )
            box = gr.MultimodalTextbox(
                placeholder="Describe a picture, or say what to change…", elem_id="chat_input",
                file_types=["image"], file_count="multiple", show_label=False, max_plain_text_length=8000,
            )
            with gr.Row():
                stop = gr.Button("Stop", variant="stop", size="sm", elem_id="chat_stop",
                                 scale=0, min_width=90)
                message = gr.HTML("", elem_id="chat_msg", padding=False)
        with gr.Column(scale=1, min_width=260, elem_id="chat-side"):
            picked = gr.Image(label="Continuing from", type="filepath", format="png",
                              interactive=False, height=220, elem_id="chat_picked")
            note = gr.Markdown(EMPTY_NOTE, elem_id="chat_note")
            send: dict[str, gr.Button] = {}
            with gr.Row(elem_classes=["send-row"]):
                gr.HTML("<span class='send-label'>Send it to</span>", padding=False)
                for target in send_targets(shared.ctx.registry):
                    assert target.send_to is not None
                    send[target.name] = gr.Button(target.send_to.label, size="sm",
                                                  variant="secondary", min_width=60,
                                                  elem_id=f"chat_send_{target.name}")
    branch = gr.State(None)
    return ChatTab(chatbot, box, stop, message, picked, note, branch, send)


# -- a turn -----------------------------------------------------------------------------------
def _reply(content: object) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def _user_message(text: str, files: Sequence[str]) -> dict[str, Any]:
    parts: list[object] = [text] if text else []
    parts += [FileData(path=path, orig_name=Path(path).name) for path in files]
    return {"role": "user", "content": parts}


def _files_of(value: object) -> tuple[str, list[str]]:
    """The MultimodalTextbox's value → (text, file paths)."""
    if not isinstance(value, Mapping):
        return (value if isinstance(value, str) else ""), []
    text = value.get("text")
    files: list[str] = []
    for item in value.get("files") or []:
        if isinstance(item, str):
            files.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("path"), str):
            files.append(str(item["path"]))
        elif isinstance(item, FileData):
            files.append(item.path)
    return (text if isinstance(text, str) else ""), files


def progress_text(decision: Decision, track: Track) -> str:
    """The reply while the job runs: what is being done, the progress line, the preview."""
    what = DOING.get(decision.action, "Working")
    subject = f" “{html.escape(decision.prompt[:80])}”" if decision.prompt else ""
    status = status_html_for([track]) or ""
    preview = ""
    if track.preview is not None:
        preview = (f"<img class='chat-live' src='{data_url(track.preview)}' "
                   "alt='Live preview' width='256'>")
    return f"<div class='chat-working'><b>{what}{subject}…</b>{status}{preview}</div>"


async def parent_of(shared: Shared, picture: Picture | None, owner: str) -> str | None:
    """The library item an edit's source picture is, when it is this owner's."""
    if picture is None or picture.item_id is None:
        return None
    try:
        item = await shared.ctx.library.get(owner, picture.item_id)
    except Exception:       # a library that cannot answer only loses lineage
        return None
    return item.id if item is not None else None


def result_path(job: Job, finished: Finished | None, saved: Saved | None) -> tuple[str, str | None]:
    """The result's file in Gradio's cache and its library item (None when not kept)."""
    if saved is not None and saved.items:
        item = saved.items[0]
        return served(item.result), item.id
    assert finished is not None and finished.images
    folder = Path(get_upload_folder()) / "banana-chat"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job.id}.png"
    finished.images[0].save(path, format="PNG")
    return str(path), None


def chat_jobs(shared: Shared, visitor: Visitor) -> list[Job]:
    """The page's person's active chat jobs of this owner (the Chat tab's, not the API's)."""
    return [j for j in shared.ctx.desk.active(visitor.person)
            if j.ticket.who.surface == "chat" and j.ticket.who.owner == visitor.owner]


async def respond(
    shared: Shared, value: object, history: History | None, branch: int | None,
    browser: object, request: gr.Request,
) -> AsyncIterator[tuple[Any, ...]]:
    """The turn's handler; yields (chatbot, box, branch, picked, note, message, history_token)."""
    skip = gr.skip()
    ctx = shared.ctx
    history = list(history or [])
    text, files = _files_of(value)
    if not text.strip() and not files:
        yield (skip,) * 7
        return
    visitor = visitor_of(shared, request, browser)
    try:
        page = shared.pages.enter(visitor)
    except SessionRefused as exc:
        yield skip, skip, skip, skip, skip, message_md(exc.message, "error"), skip
        return
    busy_box = gr.MultimodalTextbox(value=None, interactive=False)
    history.append(_user_message(text, files))
    earlier = history[:-1]

    def said(reply: str) -> tuple[Any, ...]:
        history.append(_reply(reply))
        return history, gr.MultimodalTextbox(value=None, interactive=True), skip, skip, skip, \
            "", skip

    try:
        turn, source = await asyncio.to_thread(
            turn_for, text, files, earlier, branch, max_bytes=ctx.settings.max_upload_bytes)
        decision = await decide(turn, ctx.chat_router, max_pad=ctx.settings.pad_knob.high)
        if decision.action == "help":
            yield said(help_text(decision))
            return
        bad = unreadable_image(decision, turn)
        if bad is not None:
            yield said("That attachment is not a picture the studio can read: send PNG, JPEG "
                       "or WebP.")
            return
        request_ = request_for(decision, turn, ctx.registry)
        parent = await parent_of(shared, source, visitor.owner) \
            if decision.action != "generate" and not turn.attached else None
        who = Who(person=visitor.person, owner=visitor.owner, surface="chat")
        job = ctx.desk.submit(request_, who, parent_id=parent, label=turn.text or None)
    except (LostImage, ModeUnavailable, InvalidRequest, QueueFull, NotReadyAnywhere) as exc:
        yield said(redact(exc.message, ctx.settings.comfy_url))
        return
    for other in shared.pages.of_person(visitor.person):
        other.wake()
    async for update in follow(shared, page, job, decision, turn, history, busy_box):
        yield update


async def follow(
    shared: Shared, page: Page, job: Job, decision: Decision, turn: ChatTurn,
    history: History, busy_box: gr.MultimodalTextbox,
) -> AsyncIterator[tuple[Any, ...]]:
    """The running job as the last reply: progress and preview, then the picture or why not."""
    skip = gr.skip()
    track = Track(job.id, job.ticket.mode)
    history.append(_reply(progress_text(decision, track)))
    yield history, busy_box, skip, skip, skip, "", skip
    shown = time.monotonic()
    finished: Finished | None = None
    saved: Saved | None = None
    failed: Failed | None = None
    async for event in job.events():
        if isinstance(event, Finished):
            finished = event
        elif isinstance(event, Saved):
            saved = event
        elif isinstance(event, Failed):
            failed = event
        if track.apply(event):
            break
        if time.monotonic() - shown >= MIN_GAP_S:
            history[-1] = _reply(progress_text(decision, track))
            shown = time.monotonic()
            yield history, skip, skip, skip, skip, skip, skip
    free_box = gr.MultimodalTextbox(value=None, interactive=True)
    if failed is not None or finished is None or not finished.images:
        why = failed.message if failed is not None else "The job ended without a picture."
        kind = "info" if failed is not None and failed.kind == "interrupted" else "error"
        history[-1] = _reply(redact(why, shared.ctx.settings.comfy_url))
        yield history, free_box, skip, skip, skip, message_md(
            redact(why, shared.ctx.settings.comfy_url), kind), skip
        return
    path, item_id = await asyncio.to_thread(result_path, job, finished, saved)
    image: Image.Image = finished.images[0]
    line = summary_line(decision, seed=finished.seed, size=image.size,
                        images=len(turn.attached) or 1)
    history[-1] = _reply([line, reply_file(path, item_id)])
    if saved is not None and saved.items:
        page.history_version += 1
    warning = saved.warning if saved is not None else None
    yield (history, free_box, None, path, LATEST_NOTE,
           message_md(warning, "warn") if warning else "", str(page.history_version))


def stop(shared: Shared, browser: object, request: gr.Request) -> str:
    visitor = visitor_of(shared, request, browser)
    jobs = chat_jobs(shared, visitor)
    if not jobs:
        return message_md("Nothing to stop: no chat picture of yours is being made.", "info")
    target = next((j for j in jobs if j.state is JobState.RUNNING), jobs[0])
    return message_md(shared.ctx.desk.stop(visitor.person, target.id).value, "info")


def pick(history: History | None, evt: gr.SelectData) -> tuple[Any, ...]:
    """A click on a picture in the conversation: continue from it (None: the latest)."""
    skip = gr.skip()
    index = evt.index[0] if isinstance(evt.index, (list, tuple)) and evt.index else evt.index
    if not isinstance(index, int):
        return skip, skip, skip
    found = [p for p in pictures(history or [], [get_upload_folder()]) if isinstance(p, Picture)]
    chosen = [p for p in found if p.message_index == index]
    if not chosen:
        return skip, skip, skip
    if chosen[-1] is found[-1]:
        return None, chosen[-1].path, LATEST_NOTE
    return index, chosen[-1].path, BRANCH_NOTE


# -- wiring -----------------------------------------------------------------------------------
def wire(shared: Shared, chat: ChatTab, tabs_by_mode: Mapping[str, TabSpec], tabs: gr.Tabs,
         current_mode: gr.State, history_token: gr.Textbox) -> None:
    assert shared.browser is not None
    browser = shared.browser
    outputs = [chat.chatbot, chat.box, chat.branch, chat.picked, chat.note, chat.message,
               history_token]

    async def on_submit(value: object, history: History | None, branch: int | None,
                        browser_id: object, request: gr.Request
                        ) -> AsyncIterator[tuple[Any, ...]]:
        async for update in respond(shared, value, history, branch, browser_id, request):
            yield update

    # Not limited: the desk runs the job, this only follows it (like the page's follower).
    chat.box.submit(on_submit, [chat.box, chat.chatbot, chat.branch, browser], outputs,
                    trigger_mode="once", **QUICK)

    async def on_stop(browser_id: object, request: gr.Request) -> str:
        return stop(shared, browser_id, request)

    chat.stop.click(on_stop, [browser], [chat.message], **QUIET)

    def on_pick(history: History | None, evt: gr.SelectData) -> tuple[Any, ...]:
        return pick(history, evt)

    chat.chatbot.select(on_pick, [chat.chatbot], [chat.branch, chat.picked, chat.note], **QUIET)
    chat.chatbot.clear(lambda: (None, None, EMPTY_NOTE), None,
                       [chat.branch, chat.picked, chat.note], **QUIET)
    wire_send_buttons(chat.send, chat.picked, tabs_by_mode, tabs, current_mode)
