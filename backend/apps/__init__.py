"""Workflow apps: a titled ComfyUI API-format workflow in the apps folder (`workflows/apps/`,
or STUDIO_APPS_DIR) becomes a mode `app-<stem>` — a tab, an API model, readiness, history —
with no Python. docs/modes.md "Workflow apps" describes the titles it reads.

`app` loads and checks one file, `controls` derives its controls from its roles and
`/object_info`, `mode` makes it a `ModeSpec`, `shelf` keeps the folder and the registry in
step.
"""

from backend.apps.app import APP_ROLES, App, AppError, is_app_mode, load_app, title_from_stem
from backend.apps.controls import Control, ControlKind, controls_of
from backend.apps.mode import AppRequest, app_spec
from backend.apps.shelf import AppEntry, AppShelf

__all__ = [
    "APP_ROLES",
    "App",
    "AppEntry",
    "AppError",
    "AppRequest",
    "AppShelf",
    "Control",
    "ControlKind",
    "app_spec",
    "controls_of",
    "is_app_mode",
    "load_app",
    "title_from_stem",
]
