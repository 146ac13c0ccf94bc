"""An optional LLM router in front of the rules: any OpenAI-compatible chat server (vLLM,
Ollama, LiteLLM …) is asked for a JSON decision; the rules decide whenever it cannot.

Configured by `STUDIO_ROUTER_URL` (the server's OpenAI base URL, e.g.
`http://localhost:11434/v1`; a full `…/chat/completions` URL works too),
`STUDIO_ROUTER_MODEL` (required with the URL), optional `STUDIO_ROUTER_API_KEY`,
`STUDIO_ROUTER_TIMEOUT_S` (default 4) and `STUDIO_ROUTER_COOLDOWN_S` (default 30).

What it sends: the conversation's texts (the latest message in full, earlier ones shortened)
and image facts — how many are attached, whether one is in context, the size of the one the
turn would use — never image bytes. What it accepts: one JSON object (a ```json fence is
tolerated) with a known action, the parameters that action needs, pads within the studio's
limit (`max_pad`; without one, 4× the image's long side), and an action the images allow (edits need an image; 2–3 attachments must be
multiref). Anything else — bad JSON, an unknown action, bad parameters, an HTTP error, no
answer within the timeout, an unreachable server — falls back to the rules, and the
Decision's `router_note` says why. After a timeout, an unreachable server or a 5xx the LLM is
skipped for `cooldown_s`, so a dead router costs one timeout, not one per turn.

The healthcheck probe never asks the LLM (it must not depend on it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import httpx

from . import phrases
from .geometry import Pads
from .parse import ChatTurn, clean_text
from .router import ACTIONS, FALLBACK_IMAGE_SIZE, NEEDS_IMAGE, Action, Decision, route

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024
MAX_PROMPT_CHARS = 2000
MAX_REGION_CHARS = 300
MAX_REASON_CHARS = 160

SYSTEM_PROMPT = """\
You route one turn of an image chat to an operation of an image studio. Answer with ONE JSON \
object and nothing else:
{"action": "generate" | "edit" | "multiref" | "remove_background" | "outpaint" | \
"region_edit" | "help",
 "prompt": "the text for the image model (for help and remove_background: \\"\\")",
 "region": "region_edit only: the words naming the part to change, e.g. \\"the red car\\"",
 "pad_left": 0, "pad_top": 0, "pad_right": 0, "pad_bottom": 0,
 "reason": "a few words: why"}
Rules:
- generate: a new picture from text. Use it when no image is in the conversation, or when \
the user asks for a new/different picture.
- edit: change the image (attached, else the latest one) as the text says.
- multiref: exactly when 2 or 3 images are attached: combine them as the text says.
- remove_background: a cut-out with a transparent background, a sticker.
- outpaint: extend the canvas; pads are PIXELS to add per side (integers from 0 to \
max_pad, at least one above 0), computed from the image size given.
- region_edit: change only a named part: region = that part, prompt = what to put there.
- help: the user asks a question or for help, not for a picture.
The prompt drops chat words ("now", "please", "can you") and keeps the user's language.\
"""


@dataclass(frozen=True)
class RouterConfig:
    url: str  # the chat completions endpoint
    model: str
    api_key: str | None = None
    timeout_s: float = 4.0
    cooldown_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RouterConfig | None:
        """None when `STUDIO_ROUTER_URL` is unset; a ValueError names a bad setting."""
        url = env.get("STUDIO_ROUTER_URL", "").strip()
        if not url:
            return None
        model = env.get("STUDIO_ROUTER_MODEL", "").strip()
        if not model:
            raise ValueError("STUDIO_ROUTER_URL is set but STUDIO_ROUTER_MODEL is not: name "
                             "the model the router server should use.")
        if not re.match(r"(?i)https?://[^/\s]+", url):
            raise ValueError(f"STUDIO_ROUTER_URL {url!r} is not an http(s) URL.")
        timeout = _positive(env, "STUDIO_ROUTER_TIMEOUT_S", 4.0)
        cooldown = _positive(env, "STUDIO_ROUTER_COOLDOWN_S", 30.0, allow_zero=True)
        return cls(completions_url(url), model, env.get("STUDIO_ROUTER_API_KEY") or None,
                   timeout, cooldown)


def completions_url(base: str) -> str:
    """`http://h:11434` → `http://h:11434/v1/chat/completions`; `…/v1` → `…/v1/chat/completions`."""
    base = base.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if re.fullmatch(r"(?i)https?://[^/]+", base):
        base += "/v1"
    return base + "/chat/completions"


class LlmUnusable(Exception):
    """Why the LLM's answer was not used (the message goes into `router_note`)."""

    def __init__(self, message: str, *, cool_down: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.cool_down = cool_down


class LlmRouter:
    """`await router.route(turn, image_size, max_pad=…)` → a Decision (`decided_by` "llm" or
    "rules", with `router_note` saying why the LLM was not used). One per process: it holds
    an httpx client (`aclose()` at shutdown) and the cool-down state."""

    def __init__(self, config: RouterConfig, *, client: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._client = client or httpx.AsyncClient(trust_env=False)
        self._own_client = client is None
        self._clock = clock
        self._skip_until = 0.0
        self._skip_why = ""

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def route(self, turn: ChatTurn, image_size: tuple[int, int] | None = None, *,
                    max_pad: int | None = None) -> Decision:
        rules = route(turn, image_size, max_pad=max_pad)
        if phrases.is_healthcheck(phrases.normalize(turn.text)):
            return rules
        now = self._clock()
        if now < self._skip_until:
            return _fallback(rules, f"skipped for {self._skip_until - now:.0f} s more after "
                                    f"it {self._skip_why}")
        try:
            answer = await self._ask(turn, image_size, max_pad)
            decision = decision_from_answer(answer, turn, pad_limit(image_size, max_pad))
        except LlmUnusable as exc:
            if exc.cool_down and self.config.cooldown_s > 0:
                self._skip_until = now + self.config.cooldown_s
                self._skip_why = exc.message
            log.warning("LLM router not used: %s", exc.message)
            return _fallback(rules, exc.message)
        self._skip_until = 0.0
        if decision.action == "generate" and rules.action == "generate":
            decision = replace(decision, size=rules.size)  # "…, 16:9" read by the rules
        return decision

    async def _ask(self, turn: ChatTurn, image_size: tuple[int, int] | None,
                   max_pad: int | None) -> str:
        """The model's message content, within the timeout and the size limit."""
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        body = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": json.dumps(
                    summary(turn, image_size, pad_limit(image_size, max_pad)),
                    ensure_ascii=False)},
            ],
            "response_format": {"type": "json_object"},
            "temperature": 0,
            "max_tokens": 400,
            "stream": False,
        }
        timeout = self.config.timeout_s
        try:
            async with asyncio.timeout(timeout):
                async with self._client.stream("POST", self.config.url, json=body,
                                               headers=headers, timeout=timeout) as response:
                    raw = await _read_limited(response)
        except TimeoutError as exc:
            raise LlmUnusable(f"timed out after {timeout:g} s", cool_down=True) from exc
        except httpx.TimeoutException as exc:
            raise LlmUnusable(f"timed out after {timeout:g} s", cool_down=True) from exc
        except httpx.HTTPError as exc:
            raise LlmUnusable(f"unreachable ({type(exc).__name__})", cool_down=True) from exc
        if response.status_code >= 500:
            raise LlmUnusable(f"answered HTTP {response.status_code}", cool_down=True)
        if response.status_code != 200:
            raise LlmUnusable(f"answered HTTP {response.status_code}")
        return _message_content(raw)


def pad_limit(image_size: tuple[int, int] | None, max_pad: int | None) -> int:
    """The largest pad the LLM may choose: the studio's limit, else 4× the image's long side."""
    if max_pad is not None:
        return max_pad
    return 4 * max(image_size or FALLBACK_IMAGE_SIZE)


def summary(turn: ChatTurn, image_size: tuple[int, int] | None,
            max_pad: int) -> dict[str, object]:
    """What the LLM sees: texts and image facts, never image bytes."""
    size = {"width": image_size[0], "height": image_size[1]} if image_size else None
    return {
        "latest_message": turn.text,
        "attached_images": len(turn.attached),
        "image_in_context": turn.context_image is not None,
        "image_size": size,
        "max_pad": max_pad,  # the most pixels one side may grow by
        "earlier_messages": [
            {"role": entry.role, "text": entry.text, "images": entry.images}
            for entry in turn.history
        ],
    }


def decision_from_answer(content: str, turn: ChatTurn, max_pad: int) -> Decision:
    """Validate the LLM's JSON against the turn. Raises `LlmUnusable` saying what was wrong."""
    text = content.strip()
    if fence := re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL | re.IGNORECASE):
        text = fence.group(1)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LlmUnusable("answered something that is not JSON") from exc
    if not isinstance(data, dict):
        raise LlmUnusable("answered JSON that is not an object")
    action = data.get("action")
    if action not in ACTIONS:
        raise LlmUnusable(f"chose an unknown action {str(action)[:40]!r}")
    chosen: Action = ACTIONS[ACTIONS.index(action)]
    _check_images(chosen, turn)
    prompt = _text_field(data, "prompt", MAX_PROMPT_CHARS)
    reason = _text_field(data, "reason", MAX_REASON_CHARS) or f"The LLM chose {chosen}."
    if chosen in ("generate", "edit", "multiref", "region_edit") and not prompt:
        raise LlmUnusable(f"gave no prompt for {chosen}")
    pads = region = None
    if chosen == "outpaint":
        pads = _pads(data, max_pad)
    if chosen == "region_edit":
        region = _text_field(data, "region", MAX_REGION_CHARS)
        if not region:
            raise LlmUnusable("gave no region for region_edit")
    if chosen in ("help", "remove_background"):
        prompt = ""
    if not reason.endswith("."):
        reason += "."
    return Decision(chosen, prompt, reason, "llm", pads=pads, region=region)


def _check_images(action: Action, turn: ChatTurn) -> None:
    if action in NEEDS_IMAGE and not turn.has_image:
        raise LlmUnusable(f"chose {action} without an image in the conversation")
    if action == "multiref" and len(turn.attached) < 2:
        raise LlmUnusable("chose multiref without 2–3 attached images")
    if len(turn.attached) >= 2 and action not in ("multiref", "help"):
        raise LlmUnusable(f"chose {action} for {len(turn.attached)} attached images")


def _text_field(data: Mapping[str, object], key: str, limit: int) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise LlmUnusable(f"gave a {key} that is not text")
    if len(value) > limit:
        raise LlmUnusable(f"gave a {key} over {limit} characters")
    return clean_text(" ".join(value.split()))[0]


def _pads(data: Mapping[str, object], max_pad: int) -> Pads:
    values = []
    for side in ("left", "top", "right", "bottom"):
        value = data.get(f"pad_{side}", 0)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise LlmUnusable(f"gave pad_{side} that is not a whole number")
        if not 0 <= value <= max_pad:
            raise LlmUnusable(f"gave pad_{side}={value}, outside 0–{max_pad}")
        values.append(value)
    pads = Pads(*values)
    if not pads.any():
        raise LlmUnusable("gave outpaint with no pads")
    return pads


async def _read_limited(response: httpx.Response) -> bytes:
    chunks = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise LlmUnusable(f"answered more than {MAX_ANSWER_BYTES // 1024} KB")
        chunks.append(chunk)
    return b"".join(chunks)


def _message_content(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise LlmUnusable("answered a body that is not JSON") from exc
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LlmUnusable("answered without choices[0].message.content") from exc
    if not isinstance(content, str):
        raise LlmUnusable("answered a message without text content")
    return content


def _fallback(rules: Decision, why: str) -> Decision:
    return replace(rules, router_note=f"LLM router not used ({why}); the rules decided.")


def _positive(env: Mapping[str, str], key: str, default: float, *,
              allow_zero: bool = False) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{key} {raw!r} is not a number of seconds.") from exc
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{key} must be {'≥' if allow_zero else '>'} 0 (got {raw}).")
    return value
