"""Refresh docs/screenshots/<mode>.png (1440×900, each tab right after a run on the fake).

    .venv/bin/python -m tests.browser.screenshots

Runs the tab tests with STUDIO_SCREENSHOT_DIR set; ordinary test runs never write there.
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
    return pytest.main(["-q", "-p", "no:cacheprovider", str(Path(__file__).with_name("test_tabs.py"))])


if __name__ == "__main__":
    sys.exit(main())
