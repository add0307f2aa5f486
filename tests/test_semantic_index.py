"""The quantised semantic index and its files, on real use-m3 embeddings of real UNPC pairs.

One memory of 2,000 units is embedded once (``exact_below=1,000``, so it is IVF-PQ); each test
works on a copy of its data folder, which a new index opens without embedding anything.
"""

from __future__ import annotations

import json
import os
import shutil

import faiss
import numpy as np
import pytest

from service.memory.factory import open_store
from service.memory.semantic import QUANTISER, SemanticIndex, _kind
from tests.test_store import unpc_units

SIZE = 2_000
THRESHOLD = 1_000


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, shared_data):
    """A data folder holding SIZE units and their saved semantic index."""
    folder = tmp_path_factory.mktemp("semantic") / "data"
    store = open_store(folder)
    store.import_units(unpc_units(shared_data, SIZE))
    index = SemanticIndex(folder, "use-m3", exact_below=THRESHOLD)
    index.load(store)
    assert index.sync(store) == SIZE and index.approximate
    index.close()
    store.close()
    return folder


@pytest.fixture
def memory(embedded, tmp_path):
    """(store, index, data folder) on a copy of the embedded memory; nothing embedded."""
    folder = tmp_path / "data"
    shutil.copytree(embedded, folder)
    store = open_store(folder)
    index = SemanticIndex(folder, "use-m3", exact_below=THRESHOLD)
    assert index.load(store)
    yield store, index, folder
    index.close()
    store.close()


@pytest.fixture(scope="module")
def queries(shared_data) -> list[tuple[str, str]]:
    """Real sentences that are not in the memory, half of each language."""
    units = unpc_units(shared_data, 40, start=3_000)
    return [(u.source, "zh") if i % 2 else (u.target, "en") for i, u in enumerate(units)]


def manifest(folder) -> dict:
    return json.loads((folder / "semantic" / "manifest.json").read_text())


def exact(index: SemanticIndex, vector: np.ndarray, lang: str, k: int) -> list[int]:
    """The ``k`` best unit ids by scoring every indexed vector."""
    ids = [int(i) for i in index._files.ids if int(i) not in index._files.deleted]
    sims = np.array([float(np.dot(index.stored_vector(i, lang), vector)) for i in ids])
    return [ids[j] for j in np.argsort(-sims, kind="stable")[:k]]


def answers(index: SemanticIndex, vectors, queries) -> list[list[tuple[int, float]]]:
    return [index.search(v, lang, 10) for v, (_, lang) in zip(vectors, queries, strict=True)]


def test_quantised_search_finds_the_exact_top_hits_with_exact_cosines(memory, queries):
    _, index, _ = memory
    assert index.approximate and index.stats()["index"] == "ivfpq"
    for lang in ("zh", "en"):
        ivf = index._files.indexes[lang]
        assert _kind(ivf) == QUANTISER and ivf.code_size <= 64
        assert ivf.ntotal == SIZE and ivf.code_size + 8 <= 128  # bytes per vector in memory
    found = total = 0
    for text, lang in queries:
        vector = index.embed_query(text)
        hits = index.search(vector, lang, 10)
        truth = exact(index, vector, lang, 10)
        assert hits[0][0] == truth[0]
        for unit_id, score in hits:  # re-scored: the cosine of the stored vector itself
            assert score == pytest.approx(float(np.dot(index.stored_vector(unit_id, lang),
                                                       vector)), abs=1e-6)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
        found += len({i for i, _ in hits} & set(truth))
        total += 10
    assert found / total >= 0.95


def test_an_increment_is_appended_and_another_worker_reads_only_it(memory, shared_data,
                                                                   queries, monkeypatch):
    store, index, folder = memory
    other = SemanticIndex(folder, "use-m3", exact_below=THRESHOLD)  # a second worker
    assert other.load(store)
    before = manifest(folder)
    vectors_file = folder / "semantic" / before["files"]["en"]
    inode, head = vectors_file.stat().st_ino, vectors_file.read_bytes()
    store.import_units(unpc_units(shared_data, 30, start=SIZE))
    assert index.sync(store) == 30
    after = manifest(folder)
    assert after["files"] == before["files"] and after["rows"] == SIZE + 30  # appended to
    assert vectors_file.stat().st_ino == inode and vectors_file.read_bytes()[: len(head)] == head

    def reopened(_meta):
        raise AssertionError("the files were opened again, not extended")

    monkeypatch.setattr(other, "_open", reopened)
    assert other.sync(store) == 0 and len(other) == SIZE + 30
    monkeypatch.undo()
    restarted = SemanticIndex(folder, "use-m3", exact_below=THRESHOLD)
    assert restarted.load(store) and len(restarted) == SIZE + 30
    vectors = [index.embed_query(text) for text, _ in queries]
    expected = answers(index, vectors, queries)
    assert answers(other, vectors, queries) == expected
    assert answers(restarted, vectors, queries) == expected
    new = unpc_units(shared_data, 30, start=SIZE)[7]
    probe = restarted.embed_query(new.target)
    assert restarted.search(probe, "en", 1)[0][0] == SIZE + 8
    other.close()
    restarted.close()


@pytest.mark.parametrize("deleting", [0, 250], ids=["append", "compaction"])
def test_a_crash_before_the_manifest_switch_leaves_the_previous_state(memory, shared_data,
                                                                      queries, monkeypatch,
                                                                      deleting):
    """New rows (and, past a tenth deleted, new compacted files) written and flushed, then a
    crash before the manifest's rename: the previous state is what loads, and a sync then
    makes the new one, no unit twice."""
    store, index, folder = memory
    vectors = [index.embed_query(text) for text, _ in queries]
    expected = answers(index, vectors, queries)
    store.import_units(unpc_units(shared_data, 30, start=SIZE))
    store.delete(list(range(1, deleting + 1)))
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith("manifest.json"):
            raise KeyboardInterrupt("simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr("service.memory.semantic.os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        index.sync(store)
    monkeypatch.undo()
    named = {*manifest(folder)["files"].values(), "manifest.json", "manifest.json.tmp"}
    unnamed = {path.name for path in (folder / "semantic").iterdir()} - named
    assert bool(unnamed) == bool(deleting)  # the compacted files, written but not in use
    again = SemanticIndex(folder, "use-m3", exact_below=THRESHOLD)
    assert again.load(store) and len(again) == SIZE
    assert answers(again, vectors, queries) == expected
    assert again.sync(store) == 30 and len(again) == SIZE + 30 - deleting
    hits = again.search(vectors[0], queries[0][1], SIZE + 30)
    ids = [i for i, _ in hits]
    assert len(ids) == len(set(ids)) and not set(ids) & set(range(1, deleting + 1))
    again.close()


def test_deletions_survive_save_and_load_as_tombstones_then_compaction(memory, queries):
    store, index, folder = memory
    vector = index.embed_query(queries[0][0])
    lang = queries[0][1]
    top = [i for i, _ in index.search(vector, lang, 10)]
    store.delete(top[:3])
    index.sync(store)
    saved = manifest(folder)
    assert saved["tombstones"] == 3 and saved["rows"] == SIZE  # recorded, nothing rewritten
    again = SemanticIndex(folder, "use-m3", exact_below=THRESHOLD)
    assert again.load(store) and len(again) == SIZE - 3
    assert [i for i, _ in again.search(vector, lang, 7)] == top[3:10]
    assert again.stored_vector(top[0], lang) is None
    again.close()
    store.delete(list(range(1, 301)))  # past a tenth: the files are written without them
    index.sync(store)
    compacted = manifest(folder)
    assert compacted["tombstones"] == 0 and compacted["rows"] == len(index)
    assert compacted["files"]["ids"] != saved["files"]["ids"]
    assert not (folder / "semantic" / saved["files"]["ids"]).exists()
    gone = set(top[:3]) | set(range(1, 301))
    assert len(index) == SIZE - len(gone)
    restarted = SemanticIndex(folder, "use-m3", exact_below=THRESHOLD)
    assert restarted.load(store) and len(restarted) == SIZE - len(gone)
    hits = restarted.search(vector, lang, 10)
    assert [i for i, _ in hits] == [i for i, _ in index.search(vector, lang, 10)]
    assert not {i for i, _ in hits} & gone
    restarted.close()


def test_files_of_the_earlier_format_are_converted_without_embedding(memory, queries):
    """An HNSW index per side in semantic/gen-1 (the format before this one) is read into
    the new files: nothing is embedded again, and searches find what they found."""
    store, index, folder = memory
    vectors = [index.embed_query(text) for text, _ in queries]
    meta = {**manifest(folder), "deleted": [5]}
    semantic = folder / "semantic"
    old = semantic / "gen-1"
    old.mkdir()
    for lang in ("zh", "en"):
        ids = np.asarray(index._files.ids)
        hnsw = faiss.IndexIDMap2(faiss.IndexHNSWFlat(index.dim, 32, faiss.METRIC_INNER_PRODUCT))
        hnsw.add_with_ids(np.stack([index.stored_vector(i, lang) for i in ids]), ids)
        faiss.write_index(hnsw, str(old / f"{lang}.faiss"))
    (old / "meta.json").write_text(json.dumps(meta))
    (semantic / "CURRENT").write_text("gen-1")
    for path in semantic.iterdir():
        if path.is_file() and path.name != "CURRENT":
            path.unlink()
    converted = SemanticIndex(folder, "use-m3", exact_below=THRESHOLD)

    def no_embedding(texts):
        raise AssertionError("embedded again")

    converted._encode = dict.fromkeys(("zh", "en"), no_embedding)
    assert converted.load(store) and converted.approximate and len(converted) == SIZE - 1
    assert not old.exists() and not (semantic / "CURRENT").exists()
    kept = [int(i) for i in index._files.ids if i != 5]
    assert np.asarray(converted._files.ids).tolist() == kept
    for lang in ("zh", "en"):  # the same vectors (to float16 rounding)
        for unit_id in kept[::50]:
            assert np.abs(converted.stored_vector(unit_id, lang)
                          - index.stored_vector(unit_id, lang)).max() < 1e-3
    found = total = 0
    for vector, (_, lang) in zip(vectors, queries, strict=True):
        truth = exact(converted, vector, lang, 10)
        found += len({i for i, _ in converted.search(vector, lang, 10)} & set(truth))
        total += 10
    assert found / total >= 0.95
    converted.close()


def test_files_with_a_quantiser_of_the_other_kind_are_read_then_trained_again(
        memory, shared_data, queries, monkeypatch):
    """Files saved with 8-bit IVF-PQ codes (before fast-scan codes) are searched as they are,
    nothing encoded or embedded again; the next sync that adds rows trains the new kind."""
    store, index, folder = memory
    monkeypatch.setattr("service.memory.semantic.QUANTISER", "PQ64")
    index._quantise()
    index.save()
    monkeypatch.undo()
    vectors = [index.embed_query(text) for text, _ in queries]
    before = answers(index, vectors, queries)
    old = SemanticIndex(folder, "use-m3", exact_below=THRESHOLD)
    assert old.load(store) and _kind(old._files.indexes["en"]) == "PQ64"
    assert answers(old, vectors, queries) == before
    store.import_units(unpc_units(shared_data, 30, start=SIZE))
    assert old.sync(store) == 30
    assert all(_kind(old._files.indexes[lang]) == QUANTISER for lang in ("zh", "en"))
    restarted = SemanticIndex(folder, "use-m3", exact_below=THRESHOLD)
    assert restarted.load(store) and _kind(restarted._files.indexes["zh"]) == QUANTISER
    found = total = 0
    for vector, (_, lang) in zip(vectors, queries, strict=True):
        truth = exact(restarted, vector, lang, 10)
        found += len({i for i, _ in restarted.search(vector, lang, 10)} & set(truth))
        total += 10
    assert found / total >= 0.95
    new = unpc_units(shared_data, 30, start=SIZE)[7]
    assert restarted.search(restarted.embed_query(new.target), "en", 1)[0][0] == SIZE + 8
    old.close()
    restarted.close()


def test_a_long_embedding_run_resumes_after_a_crash(tmp_path, shared_data, monkeypatch):
    """Saves every few batches: a first build that dies keeps what it saved, the next run
    embeds only the rest, and forgets a unit deleted after it was embedded."""
    store = open_store(tmp_path / "data")
    store.import_units(unpc_units(shared_data, 100))
    index = SemanticIndex(tmp_path / "data", "use-m3", exact_below=THRESHOLD)
    assert not index.load(store)
    monkeypatch.setattr("service.memory.semantic._CHECKPOINT", 40)

    def dying(chunks):  # the chunks embedded here, as the sync's own embedder does
        for n, (rows, vectors) in enumerate(index._embed_here(chunks)):
            if n == 3:
                raise KeyboardInterrupt("killed")
            yield rows, vectors

    with pytest.raises(KeyboardInterrupt):
        index.sync(store, batch=20, embed=dying)
    index.close()
    store.delete([5])  # embedded, then deleted while nobody was embedding
    again = SemanticIndex(tmp_path / "data", "use-m3", exact_below=THRESHOLD)
    assert again.load(store) and len(again) == 40  # two batches saved, the third lost
    assert again.sync(store) == 60 and len(again) == 99
    assert again.stored_vector(5, "en") is None
    assert again.stored_vector(100, "en") is not None
    again.close()
    store.close()
