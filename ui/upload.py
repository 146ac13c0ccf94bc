"""The studio's image upload: a gr.Image whose handler gets the uploaded file's path, unopened.

Stock gr.Image decodes in Gradio's preprocess, before the studio sees the file: an unreadable
upload ends in Gradio's generic error (with a server path and the exception's name), and a
large PNG is fully decoded before the pixel limit is checked. Here the handler reads the bytes
and the backend's decode_image checks the header first and words the refusal.

It is a subclass, not a per-instance override: Gradio rebuilds a component for a session
whenever an event updates its properties (any `gr.update`, and every output a dict-returning
handler leaves out), from its class and constructor arguments, so an instance attribute is
lost after a history click or a restore. Gradio writes a `.pyi` stub beside the module of every
component subclass on import; `ui/upload.pyi` is that stub, committed, so the import finds it
current and never rewrites the tree (tests/unit/test_ui_upload.py checks it stays so).
"""

from __future__ import annotations

from typing import Any

import gradio as gr


class StudioImage(gr.Image):
    is_template = True      # the page draws it with gr.Image's own frontend

    def preprocess(self, payload: Any) -> Any:
        if payload is None:
            return None
        path = getattr(payload, "path", None)   # Gradio's ImageData (not ours)
        if path:
            return str(path)
        # A data: URL (rare): let Gradio decode it.
        return super().preprocess(payload)
