"""Refresh docs/screenshots: <mode>.png (1440×900, each tab right after a run on the fake),
generate-batch.png (a batch of four to pick from), chat.png (the Chat tab after a drawing,
an edit and a branch) and phone-*.png (390×844).

    .venv/bin/python -m tests.browser.screenshots

Runs the tests that take them with STUDIO_SCREENSHOT_DIR set; ordinary test runs never write
there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.browser.helpers import SCREENSHOT_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ[SCREENSHOT_DIR_ENV] = str(ROOT / "docs" / "screenshots")
    here = Path(__file__).parent
    return pytest.main(["-q", "-p", "no:cacheprovider", str(here / "test_tabs.py"),
                        str(here / "test_phone.py"), str(here / "test_chat.py"),
                        f"{here / 'test_queue.py'}::test_a_batch_of_four_is_a_grid_and_the_picked_one_goes_to_edit"])


if __name__ == "__main__":
    sys.exit(main())
