"""ui/upload.py: the upload guard is a class (it survives Gradio's per-session rebuilds), and
the stub Gradio writes beside it is committed and stays as committed."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from gradio.data_classes import ImageData  # noqa: E402

from ui.upload import StudioImage  # noqa: E402

STUB = Path(__file__).resolve().parents[2] / "ui" / "upload.pyi"


def test_a_rebuilt_component_keeps_the_guard(tmp_path: Path) -> None:
    junk = tmp_path / "holiday.png"
    junk.write_bytes(b"PK\x03\x04 not a picture")
    image = StudioImage(type="filepath", render=False)
    # What Gradio does when an event updates the component for one session.
    rebuilt = image.__class__(**{**image.constructor_args, "render": False})
    for component in (image, rebuilt):
        assert component.preprocess(ImageData(path=str(junk))) == str(junk)   # never opened
        assert component.preprocess(None) is None
    assert image.get_block_name() == "image"       # drawn by gr.Image's own frontend


def test_importing_it_leaves_the_committed_stub_as_it_is() -> None:
    before = STUB.read_bytes()
    code = "import os; os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'; import ui.upload"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=STUB.parents[1], timeout=120)
    assert STUB.read_bytes() == before, "ui/upload.py changed: commit the regenerated ui/upload.pyi"
