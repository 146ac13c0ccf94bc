"""The library: every result kept (SQLite index + files in the data folder), per owner.

    library = Library(LibraryConfig.from_env())
    report = await library.open()          # migrations + start-up check + retention
    item = await library.save(NewItem(owner, "ui", "generate", image, params, workflow, ...))
    page = await library.page(owner, ItemQuery(text="castle", limit=48))

See docs/library.md for the folder layout, the schema and backups.
"""

from backend.library.config import LibraryConfig, LibraryMode
from backend.library.library import Library
from backend.library.models import (
    InputFile,
    ItemPage,
    ItemQuery,
    JsonScalar,
    LibraryError,
    LibraryItem,
    LibrarySaveError,
    Lineage,
    NewItem,
    PruneReport,
    StartupReport,
    StoredInput,
    Surface,
)

__all__ = [
    "InputFile", "ItemPage", "ItemQuery", "JsonScalar", "Library", "LibraryConfig",
    "LibraryError", "LibraryItem", "LibraryMode", "LibrarySaveError", "Lineage", "NewItem",
    "PruneReport", "StartupReport", "StoredInput", "Surface",
]
