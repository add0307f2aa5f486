"""Bulk imports (``concordia-tm import``): committed in chunks, resumed after a crash with no
unit twice and none lost, taken back whole on bad input, other writers served meanwhile."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from aligner.models import TranslationUnit
from aligner.tmx import TMXError, write_tmx
from service.memory.sqlite import SQLiteStore
from service.memory.sqlite_bulk import bulk_import, bulk_import_tmx, file_key

ROOT = Path(__file__).resolve().parents[1]


def units(n: int, start: int = 0) -> list[TranslationUnit]:
    return [TranslationUnit(f"第{i}段决议。", f"Paragraph {i} of the resolution.")
            for i in range(start, start + n)]


def test_a_crash_midway_resumes_with_no_unit_twice_and_none_lost(tmp_path):
    path = tmp_path / "memory.tmx"
    write_tmx(path, units(2500))
    data = tmp_path / "data"
    crash = (
        "import os, sys; from pathlib import Path\n"
        "from service.memory.sqlite import SQLiteStore\n"
        "from service.memory.sqlite_bulk import bulk_import_tmx\n"
        "def progress(read):\n"
        "    if read >= 1200: os._exit(9)\n"  # killed once the chunk past 1,200 is in
        f"bulk_import_tmx(SQLiteStore({str(data)!r}), Path({str(path)!r}), rule='keep_both',"
        " progress=progress, chunk=500)\n"
    )
    done = subprocess.run([sys.executable, "-c", crash], cwd=ROOT)
    assert done.returncode == 9
    store = SQLiteStore(data)
    assert store.count() == 1500  # three chunks of 500 committed, the rest never read
    assert store.imports()[0].state == "running"
    assert store.abandon_imports() == 1  # a service starting meanwhile finds its process gone
    result = bulk_import_tmx(store, path, rule="keep_both", chunk=500)
    assert (result.imported, result.import_id) == (2500, 1)  # the same import, resumed
    texts = [u.en for u in store.iter_units()]
    assert len(texts) == len(set(texts)) == 2500  # keep_both: a unit twice would show
    assert [r.state for r in store.imports()] == ["done"]


def test_bad_input_midway_takes_the_import_back_whole(tmp_path):
    store = SQLiteStore(tmp_path / "data")
    store.import_units([TranslationUnit("第3段决议。", "Paragraph 3 of the resolution.",
                                        props={"x-document": "A/1"}),
                        TranslationUnit("旧的。", "Old.")])
    before = {u.id: (u.en, u.props) for u in store.iter_units()}

    def broken():
        for number, unit in enumerate(units(1200)):
            if number == 1100:
                raise TMXError("t.tmx, line 9: inline tags do not pair")
            unit.props = {"x-note": "new"}
            yield unit

    with pytest.raises(TMXError):
        bulk_import(store, broken(), key="k", source="t.tmx", chunk=500)
    # the merged unit lost the property the import gave it; the new units are gone
    assert {u.id: (u.en, u.props) for u in store.iter_units()} == before
    assert store.imports()[0].state == "failed" and "do not pair" in store.imports()[0].error
    assert store.deleted_since(0)  # tombstoned: indexes that saw them forget them


def test_a_bad_unit_found_by_the_reading_process_takes_the_file_back(tmp_path):
    """The TMX is read in a process of its own: its verdict, the line of the bad unit,
    reaches the import, which takes back the chunks it had stored."""
    path = tmp_path / "memory.tmx"
    write_tmx(path, units(1200))
    text = path.read_text(encoding="utf-8")
    bad = text.rindex('<tuv xml:lang="en', 0, text.index("Paragraph 1100 of"))
    bad_line = text.count("\n", 0, bad) + 1
    path.write_text(text[:bad] + text[bad:].replace('xml:lang="en', 'xml:lang="fr', 1),
                    encoding="utf-8")
    store = SQLiteStore(tmp_path / "data")
    with pytest.raises(TMXError, match=rf"line {bad_line}: a <tuv> in 'fr"):
        bulk_import_tmx(store, path, chunk=500)
    assert store.count() == 0
    assert store.imports()[0].state == "failed"


def test_the_reading_process_hands_over_the_header_and_what_it_left_out(tmp_path):
    path = tmp_path / "memory.tmx"
    write_tmx(path, units(30))
    text = path.read_text(encoding="utf-8")
    start = text.rindex('<tuv xml:lang="en', 0, text.index("Paragraph 4 of"))
    end = text.index("</tuv>", start) + len("</tuv>")
    path.write_text(text[:start] + text[end:], encoding="utf-8")  # a unit with no English
    store = SQLiteStore(tmp_path / "data")
    result = bulk_import_tmx(store, path, chunk=7)
    assert (result.imported, result.skipped) == (29, 1)
    record = store.import_record(result.import_id)
    assert record.state == "done" and record.header["attrs"]["srclang"] == "zh-CN"
    assert "Paragraph 4 of" not in " ".join(u.en for u in store.iter_units())


def test_a_failed_replacing_import_brings_the_replaced_unit_back(tmp_path):
    store = SQLiteStore(tmp_path / "data")
    old = TranslationUnit("第1段决议。", "Old wording.", creationdate="20100101T000000Z")
    store.import_units([old])

    def newer():
        yield TranslationUnit("第1段决议。", "New wording.", creationdate="20200101T000000Z")
        raise TMXError("t.tmx, line 3: broken")

    with pytest.raises(TMXError):
        bulk_import(store, newer(), key="k", source="t.tmx", rule="keep_newest", chunk=1)
    assert [u.en for u in store.iter_units()] == ["Old wording."]


def test_writes_go_on_during_a_bulk_import(tmp_path):
    path = tmp_path / "memory.tmx"
    write_tmx(path, units(20000))
    store = SQLiteStore(tmp_path / "data")
    store.import_units(units(1, start=10**6))
    other = SQLiteStore(tmp_path / "data")
    waits = []
    running = threading.Event()

    def writer():
        running.wait()
        for _ in range(5):
            began = time.perf_counter()
            unit = next(iter(other.iter_units()))
            other.record_usage(unit.id)
            waits.append(time.perf_counter() - began)
            time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    began = time.perf_counter()
    bulk_import_tmx(store, path, progress=lambda read: running.set(), chunk=1000)
    took = time.perf_counter() - began
    thread.join()
    # A write waits for one chunk of the 20 at most, not for the whole import.
    assert len(waits) == 5 and max(waits) < took / 4, (waits, took)
    assert store.count() == 20001


def test_the_file_key_tells_files_apart(tmp_path):
    a, b = tmp_path / "a.tmx", tmp_path / "b.tmx"
    write_tmx(a, units(10))
    write_tmx(b, units(10, start=1))
    assert file_key(a) != file_key(b) and file_key(a) == file_key(a)


def test_the_import_command_writes_the_fuzzy_index_files_a_service_maps(tmp_path, capsys):
    from service.cli import main
    from service.memory.fuzzy import FuzzyIndex

    path = tmp_path / "memory.tmx"
    write_tmx(path, units(300))
    data = tmp_path / "data"
    assert main(["--data", str(data), "import", str(path)]) == 0
    store = SQLiteStore(data)
    index = FuzzyIndex(data / "fuzzy-index")
    assert index.load(store) and len(index) == 300  # mapped, nothing tokenised
    assert index.search("Paragraph 7 of the resolution.", "en", 1.0) == [(1.0, 8)]


def test_transactions_grow_while_short_and_shrink_when_long():
    """A transaction takes more pieces while transactions are quick, fewer when one takes
    longer than a waiting write should wait; its checkpoint is its last piece's."""
    from collections import Counter

    from service.memory.sqlite_bulk import TRANSACTION_S, _Pace

    pieces = iter([(read, [[read]], Counter(x=1)) for read in range(10, 210, 10)])
    pace = _Pace(most=4)
    sizes, reads, times = [], [], [0.001, 0.001, 0.001, 0.001, 2 * TRANSACTION_S]
    for read, rows, skips in pace.group(pieces):
        sizes.append(len(rows))
        reads.append(read)
        assert skips == Counter(x=len(rows))
        pace.took(times.pop(0) if times else TRANSACTION_S * 0.75)
    assert sizes == [1, 2, 4, 4, 4, 2, 2, 1] and reads == [10, 30, 70, 110, 150, 170, 190, 200]


def test_a_write_waits_for_one_import_transaction_at_most(tmp_path):
    """An import begins its next transaction the moment one ends; a write that waits is let
    through first, not left to SQLite's busy retries, which would find the lock taken again."""
    from service.memory.sqlite import import_transaction

    store = SQLiteStore(tmp_path / "data")
    store.import_units(units(3))
    stop = threading.Event()
    started = threading.Event()

    def importer():
        conn = store._connect()
        while not stop.is_set():
            with import_transaction(store.data_dir):
                conn.execute("BEGIN IMMEDIATE")
                started.set()
                time.sleep(0.2)
                conn.execute("UPDATE meta SET value = value WHERE key = 'generation'")
                conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=importer)
    thread.start()
    started.wait()
    waits = []
    try:
        for number in range(5):
            unit = store.get([1])[1]
            began = time.perf_counter()
            store.edit(1, unit.version, props={"x-note": str(number)})
            waits.append(time.perf_counter() - began)
    finally:
        stop.set()
        thread.join()
    assert max(waits) < 0.35, waits  # one transaction of 0.2 s at most, never two
