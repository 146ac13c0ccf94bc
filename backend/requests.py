"""What every mode's request shares: the common fields, the image input type, and the error a
request raises when the studio will not send it."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import ClassVar

from PIL import Image

# An input picture as the surfaces hand it over: decoded (UI editor layers) or file bytes.
ImageInput = Image.Image | bytes


class InvalidRequest(ValueError):
    """A request the studio will not send; `message` says what to change, `field` where."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class RequestBase:
    """Common fields, keyword-only so each mode keeps its own positional fields first.

    `mode` names the registered mode (backend/modes) that runs the request.
    """

    mode: ClassVar[str] = ""
    _: KW_ONLY
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    variant: str | None = None
    negative_prompt: str = ""
