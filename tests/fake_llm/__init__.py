"""A fake OpenAI-compatible chat server for the LLM router's tests (see `fake.py`)."""

from .fake import Behaviour, FakeLlm, Received

__all__ = ["Behaviour", "FakeLlm", "Received"]
