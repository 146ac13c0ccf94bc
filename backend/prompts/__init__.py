"""Reusable prompts (issue 14 item 4): saved styles (`styles`) and each person's recent
prompts (`history`). No Gradio here: the tabs and the API share it."""

from backend.prompts.history import HISTORY_SIZE, PromptHistory
from backend.prompts.styles import Style, StyleBook, UnknownStyle, load_styles

__all__ = ["HISTORY_SIZE", "PromptHistory", "Style", "StyleBook", "UnknownStyle", "load_styles"]
