"""Which store a memory lives in: the one place that names the implementations.

The interface (:mod:`service.memory.store`) never imports them; callers open a store here.
A memory is either embedded, SQLite in the data folder (the default, nothing to set up), or
shared, a PostgreSQL database named by its URL (``postgresql://user@host:port/db``), which
several service replicas use at once.
"""

from __future__ import annotations

from pathlib import Path

from service.config import StorePool
from service.memory.store import StoreError, TMStore


def is_shared(location: str | None) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than the embedded store."""
    return bool(location) and location.startswith(("postgresql://", "postgres://"))


def open_store(
    data_dir: Path | str,
    *,
    store: str | None = None,
    max_segment_chars: int = 2000,
    pool: StorePool | None = None,
) -> TMStore:
    """The store ``store`` names (a PostgreSQL URL, reached as ``pool`` says, else by the
    defaults), else SQLite in ``data_dir``."""
    if is_shared(store):
        try:
            from service.memory.postgres import PostgresStore
        except ImportError as exc:  # psycopg is a dependency; a broken install says so
            raise StoreError(
                "store_unavailable", f"the PostgreSQL store cannot be used: {exc}", 503
            ) from None
        return PostgresStore(store, max_segment_chars=max_segment_chars, pool=pool)
    if store and store != "sqlite":
        raise StoreError(
            "bad_store", "the store is `sqlite` (in the data folder) or a postgresql:// URL"
        )
    from service.memory.sqlite import SQLiteStore

    return SQLiteStore(data_dir, max_segment_chars=max_segment_chars)
