"""The SQLite translation-memory store, on real UNPC pairs: transactions, merging, restarts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from aligner.models import TranslationUnit
from aligner.tmx import TMXError, read_tmx, write_tmx
from service.memory.factory import open_store
from service.memory.fuzzy import FuzzyIndex
from service.memory.store import content_hash

ROOT = Path(__file__).resolve().parents[1]


def unpc_units(shared_data: Path, count: int, start: int = 0) -> list[TranslationUnit]:
    zh = (shared_data / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()
    en = (shared_data / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()
    units = []
    for i in range(start, len(zh)):
        if zh[i].strip() and en[i].strip():
            units.append(
                TranslationUnit(zh[i], en[i], props={"x-document": f"UNPC/{i // 100}"})
            )
        if len(units) == count:
            break
    return units


def test_broken_tmx_leaves_memory_unchanged(tmp_path, shared_data):
    store = open_store(tmp_path / "data")
    first = store.import_units(unpc_units(shared_data, 50))
    assert first.imported == 50
    generation = store.generation
    tmx = tmp_path / "big.tmx"
    write_tmx(tmx, unpc_units(shared_data, 400, start=100))
    data = tmx.read_bytes()
    broken = tmp_path / "broken.tmx"
    broken.write_bytes(data[: len(data) // 2])  # cut in the middle of the body
    with pytest.raises(TMXError):
        store.import_tmx(broken)
    assert store.count() == 50
    assert store.generation == generation
    # The same file whole goes in completely.
    assert store.import_tmx(tmx).imported == 400
    assert store.count() == 450


def test_crash_during_import_leaves_memory_as_before(tmp_path, shared_data):
    data = tmp_path / "data"
    store = open_store(data)
    store.import_units(unpc_units(shared_data, 30))
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from aligner.models import TranslationUnit
        from service.memory.factory import open_store

        def units():
            for i in range(5000):
                yield TranslationUnit(f"第{{i}}段", f"Paragraph {{i}}")
            os._exit(3)  # the process dies in the middle of the transaction

        open_store({str(data)!r}).import_units(units(), chunk=100)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 3, proc.stderr.decode()
    reopened = open_store(data)
    assert reopened.count() == 30
    assert reopened.max_id() == 30


def test_duplicates_are_merged(tmp_path, shared_data):
    store = open_store(tmp_path / "data")
    units = unpc_units(shared_data, 20)
    store.import_units(units)
    again = [
        TranslationUnit(
            "  " + u.source + " ",  # whitespace differences do not make a new unit
            u.target.replace(" ", "  "),
            props={"x-speaker": "Mr. Rycroft", "x-document": "other"},
        )
        for u in units[:5]
    ]
    result = store.import_units(again + again)
    assert (result.imported, result.merged) == (0, 10)
    assert store.count() == 20
    stored = list(store.iter_units())[0]
    # Existing values win, new properties are added.
    assert stored.props == {"x-document": "UNPC/0", "x-speaker": "Mr. Rycroft"}
    assert stored.speaker == "Mr. Rycroft"
    assert stored.hash == content_hash(units[0].source, units[0].target)
    # Reversed direction of the same pair is the same unit.
    flipped = TranslationUnit(units[1].target, units[1].source, "en-US", "zh-CN")
    assert store.import_units([flipped]).merged == 1


def test_restart_keeps_everything(tmp_path, shared_data):
    data = tmp_path / "data"
    store = open_store(data)
    units = unpc_units(shared_data, 100)
    store.import_units(units, source="first.tmx")
    deleted = store.delete([3, 4])
    store.close()
    again = open_store(data)
    assert again.count() == 98
    assert deleted == [3, 4]
    assert again.get([1])[1].en == units[0].target
    assert again.get([1])[1].origin == "first.tmx"
    assert again.deleted_since(0) == [3, 4]
    index = FuzzyIndex()
    assert index.sync(again) == 98
    assert index.search(units[2].target, "en", 1.0) == []  # id 3 is gone


def test_skips_what_is_not_a_zh_en_pair(tmp_path):
    store = open_store(tmp_path / "data", max_segment_chars=50)
    result = store.import_units(
        [
            TranslationUnit("Bonjour", "Hello", "fr-FR", "en-US"),
            TranslationUnit("你好", "", "zh-CN", "en-US"),
            TranslationUnit("长" * 51, "long", "zh-CN", "en-US"),
            TranslationUnit("你好", "Hello", "zh-CN", "en-US", creationdate="yesterday"),
        ]
    )
    assert (result.imported, result.skipped) == (1, 3)
    assert result.skipped_reasons == {"not_zh_en": 1, "empty_segment": 1, "segment_too_long": 1}
    # Not a TMX date: dropped, not exported broken; a unit Concordia made is dated when stored.
    stored = store.get([1])[1]
    assert stored.creationdate == stored.created_at and stored.creationdate != "yesterday"


def test_import_streams_in_constant_memory(tmp_path):
    store = open_store(tmp_path / "data")

    def many(n):
        for i in range(n):
            yield TranslationUnit(f"第{i}号决议草案获得通过。", f"Draft {i} was adopted.")

    tracemalloc.start()
    result = store.import_units(many(100_000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.imported == 100_000
    assert peak < 16 * 1024 * 1024, peak  # 100,000 units held at once would take far more


def test_export_round_trip(tmp_path, shared_data):
    store = open_store(tmp_path / "data")
    units = unpc_units(shared_data, 60)
    store.import_units(units)
    out = tmp_path / "out.tmx"
    write_tmx(out, (u.to_translation_unit() for u in store.iter_units()))
    back = list(read_tmx(out))
    assert [(u.source, u.target) for u in back] == [(u.source, u.target) for u in units]
    assert back[0].props["x-document"] == "UNPC/0"
    second = open_store(tmp_path / "second")
    assert second.import_tmx(out).imported == 60


def test_semantic_index_exact_then_quantised_follows_the_store(tmp_path, shared_data):
    from service.memory.semantic import SemanticIndex

    store = open_store(tmp_path / "data")
    units = unpc_units(shared_data, 120)
    store.import_units(units[:60])
    index = SemanticIndex(tmp_path / "data", "use-m3", exact_below=100)
    assert not index.load(store)  # nothing saved yet: built from the store
    assert index.sync(store) == 60 and not index.approximate
    probe = index.embed_query(units[10].target)
    assert index.search(probe, "en", 1)[0][0] == 11
    assert index.search(probe, "zh", 1)[0][0] == 11  # the translation is the nearest zh
    store.delete([11])
    index.sync(store)
    assert 11 not in [i for i, _ in index.search(probe, "en", 5)]
    store.import_units(units[60:])
    assert index.sync(store) == 60 and index.approximate  # 119 >= 100: IVF-PQ
    assert len(index) == 119
    assert index.search(index.embed_query(units[100].source), "zh", 1)[0][0] == 101
    store.delete([101])
    index.sync(store)
    assert 101 not in [i for i, _ in index.search(probe, "zh", 119)]
    index.close()
    again = SemanticIndex(tmp_path / "data", "use-m3", exact_below=100)
    assert again.load(store) and again.approximate and len(again) == 118
    assert again.sync(store) == 0
    folder = tmp_path / "data" / "semantic"
    (folder / json.loads((folder / "manifest.json").read_text())["files"]["zh"]).unlink()
    assert not again.load(store)  # a missing file means a rebuild
    assert again.sync(store) == 118
    again.close()


def test_fuzzy_index_saved_and_caught_up(tmp_path, shared_data):
    store = open_store(tmp_path / "data")
    units = unpc_units(shared_data, 200)
    store.import_units(units[:150])
    folder = tmp_path / "fuzzy"
    index = FuzzyIndex(folder)
    index.sync(store)
    index.close()  # the indexer writes what it holds
    # While the service is down: a delete and a new import.
    store.delete([5])
    store.import_units(units[150:])
    again = FuzzyIndex(folder)
    assert again.load(store)
    assert again.sync(store) == 50  # only the new units are tokenised
    assert len(again) == 199
    assert again.search(units[4].target, "en", 1.0) == []
    assert again.search(units[180].source, "zh", 1.0) == [(1.0, 181)]
    assert again.search(units[20].target, "en", 1.0) == [(1.0, 21)]
    again.close()
    # A file cut short (a crash before the disk had it all): rebuilt, not a failed start.
    manifest = json.loads((folder / "manifest.json").read_text())
    segment = folder / manifest["segments"]["zh"][0] / "rows.npy"
    segment.write_bytes(segment.read_bytes()[:100])
    assert not FuzzyIndex(folder).load(store)
    segment.write_bytes(b"")
    assert not FuzzyIndex(folder).load(store)
    (folder / "manifest.json").write_text("{")
    assert not FuzzyIndex(folder).load(store)
    rebuilt = FuzzyIndex(folder)
    assert rebuilt.sync(store) == 199 and rebuilt.search(units[20].target, "en", 1.0)


def test_workers_share_the_semantic_index(tmp_path, shared_data):
    """Two uvicorn workers on one data folder: what one embeds, the other loads."""
    from service.memory.semantic import SemanticIndex

    store = open_store(tmp_path / "data")
    units = unpc_units(shared_data, 40)
    store.import_units(units[:30])
    first = SemanticIndex(tmp_path / "data", "use-m3")
    second = SemanticIndex(tmp_path / "data", "use-m3")
    first.load(store)
    second.load(store)
    assert first.sync(store) == 30
    assert second.sync(store) == 0 and len(second) == 30  # adopted, nothing embedded
    store.import_units(units[30:])
    assert second.sync(store) == 10
    assert first.sync(store) == 0 and len(first) == 40
    probe = first.embed_query(units[35].target)
    assert first.search(probe, "en", 1)[0][0] == 36
    first.close()
    second.close()


def test_semantic_sync_never_waits_for_another_embedding_run(tmp_path, shared_data):
    """A worker finding another embedding does not wait for it (nor hold its fuzzy index
    back); the files it saves are not served for another memory put in its place."""
    import shutil
    import time

    from service.memory.semantic import SemanticIndex, _try_lock

    store = open_store(tmp_path / "data")
    store.import_units(unpc_units(shared_data, 20))
    index = SemanticIndex(tmp_path / "data", "use-m3")
    index.load(store)
    with _try_lock(tmp_path / "data" / "semantic-embed.lock") as held:
        assert held
        began = time.perf_counter()
        assert index.sync(store) == 0 and time.perf_counter() - began < 1.0
    assert index.sync(store) == 20
    index.close()
    other = open_store(tmp_path / "other")
    other.import_units(unpc_units(shared_data, 25)[5:])
    shutil.copytree(tmp_path / "data" / "semantic", tmp_path / "other" / "semantic")
    again = SemanticIndex(tmp_path / "other", "use-m3")
    assert not again.load(other)  # another store's vectors: rebuilt, not served
    again.close()


def test_connections_of_ended_threads_are_closed(tmp_path, shared_data):
    """The server's thread pool retires idle threads and starts new ones; each thread that
    read the memory must not leave its connection (and its page cache) open behind it."""
    import threading

    import psutil

    store = open_store(tmp_path / "data")
    store.import_units(unpc_units(shared_data, 50))
    db = str(store.path)

    def open_handles() -> int:
        return sum(1 for f in psutil.Process().open_files() if f.path == db)

    def read() -> None:
        assert store.concordance("the", lang="en", limit=5)

    def read_in_threads(count: int) -> int:
        for _ in range(count):
            thread = threading.Thread(target=read)
            thread.start()
            thread.join()
        return open_handles()

    # SQLite may hold a closed connection's descriptor while another one keeps a lock, so
    # the count is compared after a few threads and after many: it must not grow.
    assert read_in_threads(40) == read_in_threads(5)
    store.close()
    assert open_handles() == 0
