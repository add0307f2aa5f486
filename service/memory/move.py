"""Moving a memory from a data folder's SQLite store into an empty PostgreSQL database, and
checking the move: counts, and a TMX export of each compared as canonical XML.

Rows are copied as they are (ids, tombstones, the import audit, the generation, reviews with
their journal and edits), in one transaction: a move that fails leaves the database empty.
Jobs stay behind: their files live in the data folder of the server that ran them.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from service.config import StorePool
from service.memory.factory import is_shared, open_store
from service.memory.store import StoreError, TMStore

# Tables copied, in an order that keeps foreign keys satisfied, with their columns.
_TABLES = {
    "unit": "id, hash, source_key, zh, en, zh_fold, en_fold, zh_runs, en_runs, source_lang, "
    "target_lang, props, tmx, document, speaker, tuid, creationdate, creationid, created_at, "
    "origin, import_id, version",
    "tombstone": "unit_id, generation, replaced_by",
    "import_log": "id, source, rule, started, finished, state, result, header, error, job, runner",
    "review": "id, name, origin, min_score, created_at, updated_at, version, state, "
    "snapshot_version, finished_at, finished_by",
    "review_journal": "review_id, version, start, removed, added, next_id",
    "review_edit": "review_id, seq, op, start, removed, added, undone, at, by",
}


@dataclass
class MoveReport:
    """What was copied (rows per table) and what the check found."""

    counts: dict[str, int] = field(default_factory=dict)
    counts_match: bool = False
    tmx_units: int = 0
    tmx_identical: bool = False
    generation: int = 0

    def as_dict(self) -> dict:
        return {
            "copied": self.counts,
            "counts_match": self.counts_match,
            "tmx_units_compared": self.tmx_units,
            "tmx_identical": self.tmx_identical,
            "generation": self.generation,
        }


def _rows(conn: sqlite3.Connection, table: str, columns: str) -> Iterator[tuple]:
    yield from conn.execute(f"SELECT {columns} FROM {table} ORDER BY rowid")


def move_memory(data_dir: Path, url: str, *, pool: StorePool | None = None) -> MoveReport:
    """Copy the memory of ``data_dir`` into the empty database at ``url`` (reached as
    ``pool`` says), then check it."""
    if not (Path(data_dir) / "tm.sqlite").is_file():
        raise StoreError("no_memory", f"{data_dir} holds no memory (no tm.sqlite)")
    source = open_store(data_dir)  # brings an older data folder to the current schema
    if not is_shared(url):
        raise StoreError("bad_store", "--to takes a postgresql:// URL")
    target = open_store(data_dir, store=url, pool=pool)
    try:
        if target.count() or target.imports(1) or target.reviews().list(1):
            raise StoreError("not_empty", "the target database already holds a memory")
        report = MoveReport()
        conn = sqlite3.connect(Path(data_dir) / "tm.sqlite")
        try:
            with target.writing() as pg:
                for table, columns in _TABLES.items():
                    count = 0
                    with pg.cursor() as cur, cur.copy(
                        f"COPY {table} ({columns}) FROM STDIN"
                    ) as copy:
                        for row in _rows(conn, table, columns):
                            copy.write_row(row)
                            count += 1
                    report.counts[table] = count
                sequences = dict(conn.execute("SELECT name, seq FROM sqlite_sequence"))
                generation = conn.execute(
                    "SELECT value FROM meta WHERE key = 'generation'"
                ).fetchone()[0]
                pg.execute("UPDATE meta SET value = %s WHERE key = 'generation'", (generation,))
                # The same memory: indexes a replica saved for it stay valid.
                for key, value in conn.execute(
                    "SELECT key, value FROM meta WHERE key = 'identity'"
                ):
                    pg.execute("INSERT INTO meta VALUES (%s, %s)", (key, value))
                last_unit = max(
                    sequences.get("unit", 0),
                    pg.execute("SELECT COALESCE(MAX(unit_id), 0) FROM tombstone").fetchone()[0],
                )
                for seq, last in (("unit_id_seq", last_unit),
                                  ("import_log_id_seq", sequences.get("import_log", 0))):
                    pg.execute("SELECT setval(%s, %s, %s)", (seq, max(last, 1), last > 0))
                # An import still running in the folder cannot go on in the database.
                pg.execute(
                    "UPDATE import_log SET state = 'failed', error = 'interrupted: the memory "
                    "was moved while it ran' WHERE state = 'running'"
                )
                pg.execute("SELECT pg_notify('concordia_memory', %s)", (str(generation),))
        finally:
            conn.close()
        report.generation = int(generation)
        report.counts_match = _counts(source) == _counts(target)
        report.tmx_units, report.tmx_identical = same_export(source, target)
        return report
    finally:
        source.close()
        target.close()


def _counts(store: TMStore) -> tuple:
    return (store.count(), store.max_id(), len(store.deleted_since(-1)), store.generation,
            len(store.imports(1_000_000)), len(store.reviews().list(1_000_000)))


def _export(store: TMStore, path: Path) -> None:
    from aligner.tmx import write_tmx

    write_tmx(path, (u.to_translation_unit() for u in store.iter_units()))


def _canonical(path: Path) -> Iterator[bytes]:
    """The header (without its creation date: the time of the export) and each ``tu`` of a
    TMX file as canonical XML (C14N), streamed."""
    for _, element in etree.iterparse(str(path), events=("end",), tag=("header", "tu")):
        if element.tag == "header":
            element.attrib.pop("creationdate", None)
        yield etree.tostring(element, method="c14n")
        element.clear()


def same_export(first: TMStore, second: TMStore) -> tuple[int, bool]:
    """(units compared, whether the two stores export the same TMX as canonical XML)."""
    with tempfile.TemporaryDirectory(prefix="concordia-move-") as tmp:
        a, b = Path(tmp) / "a.tmx", Path(tmp) / "b.tmx"
        _export(first, a)
        _export(second, b)
        count = -1  # the header is not a unit
        left, right = _canonical(a), _canonical(b)
        sentinel = object()
        while True:
            x, y = next(left, sentinel), next(right, sentinel)
            if x is sentinel and y is sentinel:
                return max(count, 0), True
            if x != y:
                return max(count, 0), False
            count += 1
