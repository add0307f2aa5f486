"""Which store a memory lives in: the one place that names the implementations.

The interface (:mod:`service.memory.store`) never imports them; callers open a store here.
"""

from __future__ import annotations

from pathlib import Path

from service.memory.store import TMStore


def open_store(data_dir: Path | str, *, max_segment_chars: int = 2000) -> TMStore:
    """The store for a data folder (SQLite, the embedded default)."""
    from service.memory.sqlite import SQLiteStore

    return SQLiteStore(data_dir, max_segment_chars=max_segment_chars)
