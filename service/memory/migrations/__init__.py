"""Versioned migrations of the store's schema: numbered SQL files, one folder per database kind
(``sqlite/``, ``postgresql/``), applied in order in one transaction each run.

``schema_version`` holds the number of the last file applied. A database that has none is at
version 0: for SQLite that includes data folders written before migrations existed, which
``0001`` adopts as they are (all its statements keep what exists).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(kind: str) -> list[Migration]:
    """The migrations for ``kind`` (``sqlite`` or ``postgresql``), in order."""
    found = []
    for entry in resources.files(__package__).joinpath(kind).iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{kind} migrations are not numbered 1, 2, …: {found}")
    return found


def latest(kind: str) -> int:
    return len(migrations(kind))


def pending(kind: str, current: int) -> list[Migration]:
    """What a database at version ``current`` still needs; refuses a newer database."""
    todo = migrations(kind)
    if current > len(todo):
        from service.memory.store import StoreError

        raise StoreError(
            "newer_store",
            f"the store's schema is at version {current}, newer than this Concordia knows "
            f"({len(todo)}): run the newer version",
        )
    return todo[current:]
