"""Chat: a conversation in OpenAI's `messages` shape → one studio operation → a chat reply.

The flow (the `/v1/chat/completions` route and the Chat tab both follow it):

    messages (raw JSON)
      → parse_messages(messages, max_image_bytes=…)        parse.py  → ChatTurn
            the latest user text, the images attached to it (bytes, ≤ 3), else the latest
            image earlier in the conversation (with its message index, for branching),
            a short history; ChatInputError(message, param, code) on bad input
      → size = image_size(turn.source_image.data)           router.py (header only, or None)
      → decision = await llm.route(turn, size, max_pad=…)  llm_router.py, when configured
        or decision = route(turn, size, max_pad=…)          router.py, the rules
            Decision(action, prompt, reason, decided_by, pads, region, size, router_note)
      → the caller maps it to a studio request               (not here: mode names are plain
            strings; images_for(decision, turn) gives the images it works on)
      → the job's result
      → replies.py: reply_text / completion_body, or the SSE events (role_event, KEEP_ALIVE
            while waiting, content_event, finish_event, DONE; error_event on a late failure);
            help_text(decision) for the `help` action (no job)

No Gradio, no HTTP framework: everything here is plain data in, plain data out, except
`LlmRouter`, which talks to the configured chat server over httpx.
"""

from .geometry import Pads
from .llm_router import LlmRouter, RouterConfig
from .parse import ChatImage, ChatInputError, ChatTurn, HistoryEntry, parse_messages
from .replies import (
    DONE,
    HELP_TEXT,
    KEEP_ALIVE,
    CompletionMeta,
    completion_body,
    content_event,
    data_url,
    error_event,
    finish_event,
    help_text,
    reply_text,
    role_event,
    stream_events,
    summary_line,
)
from .router import ACTIONS, Action, Decision, image_size, images_for, route

__all__ = [
    "ACTIONS",
    "DONE",
    "HELP_TEXT",
    "KEEP_ALIVE",
    "Action",
    "ChatImage",
    "ChatInputError",
    "ChatTurn",
    "CompletionMeta",
    "Decision",
    "HistoryEntry",
    "LlmRouter",
    "Pads",
    "RouterConfig",
    "completion_body",
    "content_event",
    "data_url",
    "error_event",
    "finish_event",
    "help_text",
    "image_size",
    "images_for",
    "parse_messages",
    "reply_text",
    "role_event",
    "route",
    "stream_events",
    "summary_line",
]
