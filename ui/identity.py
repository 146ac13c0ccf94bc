"""Who is asking: the person a page's jobs belong to, and the library owner they land with.

- With STUDIO_AUTH, Gradio's `request.username`: person and owner `user:<name>`.
- Without it, the owner is `LibraryConfig.owner_for(...)`: `shared`, `browser:<id>`
  (`STUDIO_LIBRARY=per-browser`: a random id the browser keeps, `gr.BrowserState`) or
  `session:<hash>` (`off`); the person (fairness and caps) is the browser's id, else the page's
  Gradio session.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import gradio as gr

from backend.desk import Who
from backend.library import LibraryConfig

# What a browser id may look like (it comes from the browser: anything else is ignored).
BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
BROWSER_STORAGE_KEY = "banana-studio-browser"


def new_browser_id() -> str:
    return secrets.token_urlsafe(12)


def valid_browser_id(value: object) -> str | None:
    return value if isinstance(value, str) and BROWSER_ID.fullmatch(value) else None


@dataclass(frozen=True)
class Visitor:
    """One request's view of who is asking."""

    who: Who
    session: str            # Gradio's session hash ("" for a request without one)
    user: str | None        # the logged-in user (STUDIO_AUTH), else None

    @property
    def person(self) -> str:
        return self.who.person

    @property
    def owner(self) -> str:
        return self.who.owner

    @property
    def session_bound(self) -> bool:
        """Its results are listed for this page session only (`STUDIO_LIBRARY=off` without a
        login): once the page is gone nobody could see them."""
        return self.owner.startswith("session:")


def visitor_for(library: LibraryConfig, request: gr.Request, browser_id: object) -> Visitor:
    user = request.username or None
    session = request.session_hash or ""
    browser = valid_browser_id(browser_id)
    if user:
        person = f"user:{user}"
    elif browser:
        person = f"browser:{browser}"
    else:
        person = f"session:{session}"
    owner = library.owner_for(user=user, browser_id=browser, session_id=session)
    return Visitor(Who(person=person, owner=owner, surface="ui"), session, user)
