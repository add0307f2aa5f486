"""Bulk imports into the SQLite store: a TMX of any size in one pass, committed in chunks.

``SQLiteStore.import_units`` is one transaction: right for an upload, wrong for the whole UN
memory, whose import would hold the write lock for half an hour. A bulk import parses a chunk
of units with no lock held, then writes it in one short transaction together with its
checkpoint (how many units of the file are done, and the counts so far), so readers, edits
and lookups go on meanwhile, and every chunk bumps the generation (indexes follow as units
arrive). After a crash the same import started again skips the units its checkpoint says
are done: no unit twice, none lost. Bad input found midway (a ``TMXError``) undoes the
import: its units are deleted (tombstoned) and the stored units it merged into or replaced
are restored from its undo journal, so a failed bulk import leaves the memory as it was.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from aligner.errors import InputError
from aligner.markup import runs_to_data
from aligner.tmx import TMXError
from service.memory.rows import DATE, HASH, KEY, TUID, now_tmx, unit_date, unit_row
from service.memory.store import ImportResult, MergeRule, StoreError

if TYPE_CHECKING:
    from service.memory.sqlite import SQLiteStore

CHUNK = 5000  # units a transaction at most
PIECE = 500  # units read at a time: a transaction takes one piece or several (``_Pace``)
# How long a transaction of the import may last: a write waiting behind it waits that long.
TRANSACTION_S = 0.05
# The import checkpoints the WAL itself, between its transactions (writes go on meanwhile, and
# leave checkpoints to it: ``sqlite.BULK_LOCK``), once the WAL holds this many pages, not in
# every commit that finds it over SQLite's 1,000: each insert changes index pages at random
# places, and a checkpoint per transaction would copy and sync them every time.
WAL_PAGES = 16384
# A checkpoint cannot finish while a reader (the indexer, a lookup) still reads an older
# state, and then the WAL does not start over: past this many pages the import waits for
# the readers (a RESTART checkpoint), so that the WAL stays bounded.
WAL_PAGES_MOST = 131072
# The import's own page cache (KiB, SQLite's negative form): the unit table's hash and source
# key indexes take a row at a random place each, and a cache of SQLite's default 2 MiB
# re-reads their pages for every chunk. An upper bound, not an allocation.
CACHE_KIB = 256 * 1024

_UNDO = """
CREATE TABLE IF NOT EXISTS import_undo (
    import_id INTEGER NOT NULL,
    unit_id INTEGER NOT NULL,
    row TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS import_undo_import ON import_undo(import_id);
"""
# What a merge changes (restored on undo); a replaced unit is kept whole.
_MERGED = ("props", "document", "speaker", "creationdate")
_UNIT_COLUMNS = (
    "hash", "source_key", "zh", "en", "zh_fold", "en_fold", "zh_runs", "en_runs",
    "source_lang", "target_lang", "props", "tmx", "document", "speaker", "tuid",
    "creationdate", "creationid", "created_at", "origin", "import_id", "version",
)


def file_key(path: Path) -> str:
    """What identifies a file across a crash: its name, size and a digest of its ends."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return f"{path.name}:{size}:{digest.hexdigest()[:32]}"


@contextmanager
def _only_bulk_import(data_dir: Path) -> Iterator[None]:
    """One bulk import at a time per data folder: a running one found in the log while
    this lock is held is one that crashed."""
    from service.memory.sqlite import BULK_LOCK

    with open(data_dir / BULK_LOCK, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                "import_running", f"another bulk import into {data_dir} is running", 409
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _crashed(conn: sqlite3.Connection, key: str) -> tuple[int, dict] | None:
    """The import of the file ``key`` that a crash left unfinished: (id, its checkpoint).

    Left running, or marked failed as interrupted by a service that found its process gone
    (``abandon_imports``): its committed chunks are in the memory either way."""
    from service.memory.sqlite import this_process

    for import_id, result in conn.execute(
        "SELECT id, result FROM import_log WHERE state = 'running' OR "
        "(state = 'failed' AND error LIKE 'interrupted%') ORDER BY id DESC"
    ):
        checkpoint = json.loads(result or "{}")
        if checkpoint.get("resume_key") == key:
            conn.execute(
                "UPDATE import_log SET state = 'running', error = '', runner = ? WHERE id = ?",
                (this_process(), import_id),
            )
            return import_id, checkpoint
    return None


# What a bulk import reads: ``rows(created_at, import_id, done, piece)`` yields, ``piece``
# units at a time, (units of the input read so far, their rows, the units skipped and why),
# past the first ``done`` units (committed before a crash).
RowChunks = Callable[[str, int, int, int], Iterator[tuple[int, list[list], Counter[str]]]]


def bulk_import(
    store: SQLiteStore,
    units: Iterable,
    *,
    key: str,
    source: str,
    rule: MergeRule | str = MergeRule.MERGE,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> ImportResult:
    """Import ``units`` (an iterator, read once) in transactions of ``chunk`` units at most.

    ``key`` names the input (``file_key``): a bulk import of the same key that crashed is
    resumed after its last committed chunk. ``progress(units_read)`` after each chunk.
    """
    max_chars = store.max_segment_chars

    def rows(created_at: str, import_id: int, done: int, piece: int):
        return _row_chunks(units, created_at, source, import_id, max_chars, done, piece)

    return _import_rows(store, rows, key=key, source=source, rule=rule, progress=progress,
                        chunk=chunk)


def _row_chunks(
    units: Iterable, created_at: str, origin: str, import_id: int, max_chars: int, done: int,
    piece: int,
) -> Iterator[tuple[int, list[list], Counter[str]]]:
    """``units`` past the first ``done`` as insert rows (each ending with its
    ``unit_date``), ``piece`` at a time (``RowChunks``)."""
    seen = 0
    batch: list[list] = []
    skips: Counter[str] = Counter()
    for unit in units:
        seen += 1
        if seen <= done:
            continue  # committed before the crash
        row = unit_row(unit, created_at, origin, import_id, max_chars)
        if isinstance(row, str):
            skips[row] += 1
        else:
            row.append(unit_date(unit.attrs or {}, row[DATE]))
            batch.append(row)
        if len(batch) >= piece:
            yield seen, batch, skips
            batch, skips = [], Counter()
    yield seen, batch, skips


def _import_rows(
    store: SQLiteStore,
    rows: RowChunks,
    *,
    key: str,
    source: str,
    rule: MergeRule | str,
    progress: Callable[[int], None] | None,
    chunk: int,
    header: dict | None = None,
    skipped: Counter[str] | None = None,
) -> ImportResult:
    """The import of what ``rows`` reads, read in pieces of ``PIECE`` units and stored
    ``chunk`` units a transaction at most. ``header`` and ``skipped`` (units the reader left
    out) are read once ``rows`` is done: a reader may fill them in as it ends."""
    started = time.perf_counter()
    rule = MergeRule(rule)
    with _only_bulk_import(store.data_dir):
        conn = store._connect()
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_PAGES * 4096}")
        try:
            conn.executescript(_UNDO)
            found = _crashed(conn, key)
            if found is None:
                created_at = now_tmx()
                import_id = store._log_start(source, rule, created_at, "")
                done, counts = 0, {}
            else:
                import_id, counts = found
                done, created_at = counts["read"], counts["created_at"]
            result = ImportResult(rule=rule.value, import_id=import_id)
            for name in ("imported", "merged", "replaced", "skipped"):
                setattr(result, name, counts.get(name, 0))
            result.skipped_reasons = dict(counts.get("skipped_reasons", {}))
            try:
                piece = min(chunk, PIECE)
                pace = _Pace(most=chunk // piece)
                with closing(rows(created_at, import_id, done, piece)) as pieces:
                    for seen, batch, skips in pace.group(pieces):
                        for reason, count in skips.items():
                            result.skip(reason, count)
                        began = time.perf_counter()
                        _commit(store, conn, batch, rule, result, seen, key, created_at)
                        pace.took(time.perf_counter() - began)
                        _checkpoint(conn, store.path)
                        if progress is not None:
                            progress(seen)
                for reason, count in (skipped or {}).items():
                    result.skip(reason, count)
            except KeyboardInterrupt:
                raise  # resumable: the log keeps it running, with its checkpoint
            except BaseException as exc:
                reason = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
                _undo(store, conn, import_id)
                store._log_failed(import_id, reason)
                raise
            result.seconds = time.perf_counter() - started
            with store._write_lock:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM import_undo WHERE import_id = ?", (import_id,))
                store._log_end(conn, import_id, result.as_dict(), header)
                conn.execute("COMMIT")
        finally:
            conn.close()
    return result


class _Pace:
    """How many pieces a transaction takes: twice as many while transactions are short next
    to ``TRANSACTION_S``, half as many when one is longer (a large memory: each insert
    reaches index pages at random places). A small memory is imported a few thousand units
    a transaction, and a write never waits much longer than ``TRANSACTION_S`` at any size."""

    def __init__(self, most: int):
        self.most = max(1, most)
        self.pieces = 1

    def took(self, seconds: float) -> None:
        if seconds < TRANSACTION_S / 2:
            self.pieces = min(self.pieces * 2, self.most)
        elif seconds > TRANSACTION_S:
            self.pieces = max(self.pieces // 2, 1)

    def group(self, pieces: Iterator[tuple[int, list[list], Counter[str]]]):
        """``pieces`` taken ``self.pieces`` at a time (read before the transaction begins)."""
        group: list[tuple[int, list[list], Counter[str]]] = []
        for piece in pieces:
            group.append(piece)
            if len(group) >= self.pieces:
                yield _joined(group)
                group = []
        if group:
            yield _joined(group)


def _joined(group: list[tuple[int, list[list], Counter[str]]]):
    rows = [row for _, part, _ in group for row in part]
    return group[-1][0], rows, sum((skips for _, _, skips in group), Counter())


def _checkpoint(conn: sqlite3.Connection, db: Path) -> None:
    """Copy the WAL into the database when it has grown past ``WAL_PAGES`` (each time
    until it starts over), waiting for readers past ``WAL_PAGES_MOST``."""
    pages = wal_pages(db)
    if pages > WAL_PAGES_MOST:
        conn.execute("PRAGMA wal_checkpoint(RESTART)")
    elif pages > WAL_PAGES:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


def wal_pages(db: Path) -> int:
    """Pages in ``db``'s WAL since it last started over: ``mxFrame`` of the wal-index header,
    4 bytes at offset 16 of the ``-shm`` file in native byte order
    (https://www.sqlite.org/walformat.html); 0 when there is none."""
    try:
        with open(f"{db}-shm", "rb") as handle:
            head = handle.read(20)
    except FileNotFoundError:
        return 0
    return int.from_bytes(head[16:20], sys.byteorder) if len(head) == 20 else 0


def _commit(store, conn, rows, rule, result, read, key, created_at) -> None:
    """One chunk, its undo journal and the import's checkpoint, in one transaction, begun
    once the writes waiting for the one before have had their turn."""
    from service.memory.sqlite import import_transaction

    with import_transaction(store.data_dir), store._write_lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                _journal(conn, rows, rule, result.import_id)
                store._apply(conn, rows, rule, result)
            checkpoint = {
                **result.as_dict(), "read": read, "resume_key": key, "created_at": created_at,
            }
            conn.execute(
                "UPDATE import_log SET result = ? WHERE id = ?",
                (json.dumps(checkpoint, ensure_ascii=False), result.import_id),
            )
            if rows:
                result.generation = store._bump(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _journal(conn: sqlite3.Connection, rows: list[list], rule: MergeRule, import_id: int):
    """Keep, before a chunk is applied, the stored units it can change: those with its
    hashes (a merge adds properties) and, under the replacing rules, its source keys or
    tuids (replaced units are deleted). Kept once per unit and import."""
    if rule is MergeRule.KEEP_BOTH:
        return
    lookups = [("hash", [r[HASH] for r in rows])]
    if rule is MergeRule.KEEP_NEWEST:
        lookups.append(("source_key", [r[KEY] for r in rows]))
    elif rule is MergeRule.BY_TUID:
        lookups.append(("tuid", [r[TUID] for r in rows if r[TUID]]))
    columns = ", ".join(_UNIT_COLUMNS)
    for column, values in lookups:
        values = list(dict.fromkeys(values))
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            marks = ",".join("?" * len(part))
            conn.execute(
                f"INSERT INTO import_undo SELECT ?, id, json_array({columns}) FROM unit "
                f"WHERE {column} IN ({marks}) AND import_id != ? AND id NOT IN "
                "(SELECT unit_id FROM import_undo WHERE import_id = ?)",
                [import_id, *part, import_id, import_id],
            )


def _undo(store: SQLiteStore, conn: sqlite3.Connection, import_id: int) -> None:
    """Take a failed import back: its units deleted, the units it merged into as they
    were, those it replaced stored again (under new ids: ids are never reused)."""
    from service.memory.sqlite import _INSERT

    with store._write_lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            added = [r[0] for r in conn.execute(
                "SELECT id FROM unit WHERE import_id = ?", (import_id,)
            )]
            journal = conn.execute(
                "SELECT unit_id, row FROM import_undo WHERE import_id = ? ORDER BY unit_id",
                (import_id,),
            ).fetchall()
            if added:
                store._tombstone(conn, added, None)
            for unit_id, row in journal:
                values = json.loads(row)
                live = conn.execute("SELECT 1 FROM unit WHERE id = ?", (unit_id,)).fetchone()
                if live:
                    merged = dict(zip(_UNIT_COLUMNS, values, strict=True))
                    conn.execute(
                        "UPDATE unit SET props = ?, document = ?, speaker = ?, creationdate = ? "
                        "WHERE id = ?",
                        (*[merged[c] for c in _MERGED], unit_id),
                    )
                else:
                    new_id = conn.execute(_INSERT, values[:-1]).lastrowid
                    conn.execute("UPDATE unit SET version = ? WHERE id = ?", (values[-1], new_id))
                    conn.execute(
                        "UPDATE tombstone SET replaced_by = ? WHERE unit_id = ?", (new_id, unit_id)
                    )
            conn.execute("DELETE FROM import_undo WHERE import_id = ?", (import_id,))
            if added or journal:
                store._bump(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def bulk_import_tmx(
    store: SQLiteStore,
    path: Path,
    *,
    rule: MergeRule | str = MergeRule.MERGE,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> ImportResult:
    """``bulk_import`` of a TMX file: checked whole first (``check_tmx``: well-formed XML,
    no entities; constant memory, a fraction of the import's time), then streamed.

    A second process reads the file and makes the rows while this one writes them: reading
    and writing each take about half an import's time on one core."""
    from aligner.tmx import check_tmx

    check_tmx(path, path.name)
    header: dict = {}
    left_out: Counter[str] = Counter()
    max_chars = store.max_segment_chars

    def rows(created_at: str, import_id: int, done: int, piece: int):
        return _rows_read_apart(
            (path, created_at, import_id, max_chars, done, piece), header, left_out
        )

    return _import_rows(
        store, rows, key=file_key(path), source=os.path.basename(path), rule=rule,
        progress=progress, chunk=chunk, header=header, skipped=left_out,
    )


def _rows_read_apart(
    args: tuple, header: dict, left_out: Counter[str]
) -> Iterator[tuple[int, list[list], Counter[str]]]:
    """``_read_rows(*args)`` run in a process of its own, its pieces passed on as they come;
    its header and left-out units put into ``header`` and ``left_out`` at the end."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    reader = context.Process(
        target=_read_rows, args=(*args, send), name="concordia-tmx-reader", daemon=True
    )
    reader.start()
    send.close()  # the reader's end: when it dies, the next receive ends in EOFError
    try:
        while True:
            try:
                kind, *message = receive.recv()
            except EOFError:
                raise RuntimeError(
                    f"the TMX reading process stopped (exit code {reader.exitcode})"
                ) from None
            if kind == "rows":
                yield tuple(message)
            elif kind == "end":
                header.update(message[0])
                left_out.update(message[1])
                return
            else:
                error, text = message
                raise (TMXError(text) if error == "TMXError" else InputError(text))
    finally:
        receive.close()
        reader.terminate()
        reader.join()


def _read_rows(
    path: Path, created_at: str, import_id: int, max_chars: int, done: int, piece: int, send
) -> None:
    """The reading process of ``bulk_import_tmx``: sends ("rows", read, rows, skips) for
    each piece, then ("end", header, left-out units), or ("error", kind, message) for bad
    input. A full pipe holds it back: it reads at most a piece or two ahead of the writer."""
    from aligner.tmx import read_tmx

    header: dict = {}
    left_out: Counter[str] = Counter()

    def keep(h) -> None:
        header.update(attrs=h.attrs, extras=runs_to_data(h.extras), version=h.version)

    units = read_tmx(path, on_header=keep, only_langs=("zh", "en"), skipped=left_out)
    origin = os.path.basename(path)
    try:
        for read, rows, skips in _row_chunks(
            units, created_at, origin, import_id, max_chars, done, piece
        ):
            send.send(("rows", read, rows, skips))
        send.send(("end", header, left_out))
    except InputError as exc:
        send.send(("error", type(exc).__name__, str(exc)))
    except BrokenPipeError:
        pass  # the importing process is gone
    finally:
        send.close()
