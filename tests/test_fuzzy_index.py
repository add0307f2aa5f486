"""The fuzzy index finds exactly what scoring every unit would find, on real UNPC pairs."""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from aligner.models import TranslationUnit
from service.memory.factory import open_store
from service.memory.fuzzy import FuzzyIndex, SideEncoder, tokenize
from tests.test_store import unpc_units


def edited(text: str, lang: str, rng: random.Random, edits: int) -> str:
    tokens = tokenize(text, lang)
    for _ in range(edits):
        if len(tokens) < 3:
            break
        i = rng.randrange(len(tokens))
        if rng.random() < 0.4:
            del tokens[i]
        else:
            tokens[i] = rng.choice(["的", "和", "国"] if lang == "zh" else ["the", "of", "new"])
    return "".join(tokens) if lang == "zh" else " ".join(tokens)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, shared_data):
    store = open_store(tmp_path_factory.mktemp("fuzzy") / "data")
    units = unpc_units(shared_data, 3000)
    index = FuzzyIndex()
    for start in range(0, len(units), 400):  # units arriving in parts: several segments
        store.import_units(units[start : start + 400])
        index.sync(store)
        if start == 400:  # deleted, then dropped by the merges that follow
            gone = store.get([7])[7]
            store.delete([7, 300])
            index.sync(store)
    rows = {uid: (zh, en) for uid, zh, en in (r for b in store.iter_segment_batches() for r in b)}
    yield index, [(u.source, u.target) for u in units], rows, (gone.zh, gone.en), store
    store.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("threshold", [0.4, 0.6, 0.7, 0.9])
def test_search_agrees_with_scoring_every_unit(indexed, lang, threshold):
    index, units, rows, gone, _ = indexed
    assert len(index._segments[lang]) > 1
    side = 0 if lang == "zh" else 1
    encoder = SideEncoder(lang)
    encoded = {uid: encoder.encode(texts[side], grow=True) for uid, texts in rows.items()}
    rng = random.Random(threshold)
    queries = [edited(units[rng.randrange(len(units))][side], lang, rng, rng.randint(0, 4))
               for _ in range(40)]
    for _ in range(20):  # short pieces: too few q-grams to narrow the search at low thresholds
        tokens = tokenize(units[rng.randrange(len(units))][side], lang)
        start = rng.randrange(max(1, len(tokens) - 8))
        piece = tokens[start : start + rng.randint(2, 8)]
        queries.append(edited("".join(piece) if lang == "zh" else " ".join(piece), lang, rng, 1))
    queries.append(gone[side])  # a deleted unit: not found
    for query in queries:
        q = encoder.encode(query)
        expected = sorted(
            ((Levenshtein.normalized_similarity(q, s), uid) for uid, s in encoded.items()),
            key=lambda hit: (-hit[0], hit[1]),
        )
        expected = [(r, uid) for r, uid in expected if r >= threshold - 1e-9]
        got = index.search(query, lang, threshold)
        assert [uid for _, uid in got] == [uid for _, uid in expected], query
        assert [r for r, _ in got] == pytest.approx([r for r, _ in expected])
    assert any(index.search(q, lang, threshold) for q in queries)


@pytest.mark.parametrize("percent", [60, 70, 80])
def test_a_match_exactly_on_the_threshold_is_found(indexed, percent):
    """rapidfuzz alone drops scores lying exactly on its cutoff at 60 % and 80 %."""
    index, _, rows, _, _ = indexed
    uid, en = next((u, t[1]) for u, t in rows.items() if len(tokenize(t[1], "en")) == 20)
    tokens = tokenize(en, "en")
    for i in range(1, 1 + (100 - percent) // 5):  # 1 of 20 tokens replaced: 5 points less
        tokens[i] = "zzz"
    hits = {u: r for r, u in index.search(" ".join(tokens), "en", percent / 100)}
    assert hits[uid] == pytest.approx(percent / 100)


def test_an_index_of_another_format_or_store_is_rebuilt_not_served(tmp_path, shared_data):
    store = open_store(tmp_path / "data")
    store.import_units(unpc_units(shared_data, 50))
    folder = tmp_path / "data" / "fuzzy-index"
    index = FuzzyIndex(folder)
    index.sync(store)
    index.close()
    manifest = folder / "manifest.json"
    meta = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(dict(meta, version=meta["version"] - 1)))
    again = FuzzyIndex(folder)
    assert not again.load(store)  # another format: built from the store
    again.sync(store)
    again.close()
    assert json.loads(manifest.read_text())["version"] == meta["version"]
    assert FuzzyIndex(folder).load(store)
    # Another memory put in the place of this one: its files are not served for it.
    other = open_store(tmp_path / "other")
    other.import_units(unpc_units(shared_data, 60)[10:])
    assert not FuzzyIndex(folder).load(other)
    store.close()


def test_files_are_mapped_by_every_process_and_only_new_units_held_in_memory(
    tmp_path, shared_data
):
    store = open_store(tmp_path / "data")
    units = unpc_units(shared_data, 400)
    store.import_units(units[:300])
    folder = tmp_path / "data" / "fuzzy-index"
    indexer, worker = FuzzyIndex(folder), FuzzyIndex(folder)
    indexer.sync(store)
    assert indexer.is_indexer and not worker.is_indexer
    indexer.flush()  # what it holds goes to the files
    worker.sync(store)
    assert worker._memory["zh"] == [] and len(worker._disk["zh"]) == 1
    assert isinstance(worker._disk["zh"][0].rows.base, np.memmap)  # a view of the file
    store.import_units(units[300:])  # new words: each process gives them codes of its own
    store.delete([3])
    worker.sync(store)
    assert sum(map(len, worker._memory["en"])) == 100 and len(worker) == 399
    indexer.sync(store)
    indexer.flush()
    worker.sync(store)  # maps the new files; its own codes give way to the indexer's
    assert worker._memory["en"] == [] and len(worker) == 399
    for lang, side in (("en", 1), ("zh", 0)):
        for number in (0, 2, 350, 399):
            text = (units[number].source, units[number].target)[side]
            got = worker.search(text, lang, 1.0)
            assert got == ([] if number == 2 else [(1.0, number + 1)])
    # The indexer goes: another process takes its place, from its files.
    indexer.close()
    store.import_units(unpc_units(shared_data, 420)[400:])
    assert worker.sync(store) == 20 and worker.is_indexer and len(worker) == 419
    worker.close()
    store.close()


def test_deleting_the_newest_unit_does_not_make_the_files_unusable(tmp_path, shared_data):
    store = open_store(tmp_path / "data")
    store.import_units(unpc_units(shared_data, 40))
    folder = tmp_path / "data" / "fuzzy-index"
    index = FuzzyIndex(folder)
    index.sync(store)
    store.delete([40])
    index.sync(store)
    index.close()
    again = FuzzyIndex(folder)
    assert again.load(store) and again.sync(store) == 0 and len(again) == 39
    again.close()
    store.close()


CONCORDANCE_TERMS = [
    ("列支敦士登", "zh"), ("安全理事会", None), ("会", "zh"), ("联合国", "zh"), ("的", None),
    ("Liechtenstein", "en"), ("security council", None), ("SECURITY", "en"), ("ecurity Coun", "en"),
    ("non-indigenous", "en"), ("indigenous", None), ("the", "en"), (", and", "en"), ("zzzq", None),
    ("per 100,000", "en"), ("U.N", "en"), ("。", "zh"),
]


@pytest.mark.parametrize(("term", "lang"), CONCORDANCE_TERMS)
def test_concordance_through_the_index_finds_what_reading_every_unit_finds(indexed, term, lang):
    index, _, rows, _, store = indexed
    everything, total = store.concordance(term, lang, limit=10_000, count=10_000)
    assert total == len(everything)
    sides = ("zh", "en") if lang is None else (lang,)
    found = [index.containing(term, side) for side in sides]
    if any(ids is None for ids in found):  # too common or too short for the index
        assert len(everything) > 0.02 * len(rows) or len(term) == 1
        return
    among = np.unique(np.concatenate(found))
    assert len(among) <= max(3 * len(everything), 50)  # it narrows the search
    for offset, limit in ((0, 10_000), (0, 3), (2, 5)):
        got, got_total = store.concordance(
            term, lang, limit=limit, offset=offset, among=among, after=index.max_id, count=10_000
        )
        assert got_total == total
        assert [u.id for u in got] == [u.id for u in everything[offset : offset + limit]]


def test_concordance_sees_units_the_index_has_not_yet(tmp_path, shared_data):
    store = open_store(tmp_path / "data")
    units = unpc_units(shared_data, 300)
    store.import_units(units[:200])
    index = FuzzyIndex()
    index.sync(store)
    store.import_units(units[200:])  # not indexed yet
    term = units[250].source[3:9]
    among = index.containing(term, "zh")
    assert among is not None and 251 not in among
    got, _ = store.concordance(term, "zh", among=among, after=index.max_id)
    assert 251 in [u.id for u in got]
    assert [u.id for u in got] == [u.id for u in store.concordance(term, "zh")[0]]
    store.close()


def test_a_longer_row_needing_fewer_bigrams_than_the_query_is_found(tmp_path):
    """At 70 % a 13-character query needs 6 shared bigrams, a 14-character row only 5
    (rounding): the row below keeps just the query's 5 commonest bigrams and is still found."""
    query = "甲乙丙丁戊己庚辛壬癸子丑寅"
    row = query[0] + "卯" + query[2:5] + "辰" + query[6:9] + "巳" + query[10:12] + "午" + query[12]
    assert Levenshtein.normalized_similarity(query, row) >= 0.7
    store = open_store(tmp_path / "data")
    fillers = [  # hold the 5 bigrams the row shares with the query, making them the commonest
        TranslationUnit(f"会议{query[2:5]}和{query[6:9]}及{query[10:12]}第{i}号", f"filler {i}")
        for i in range(40)
    ]
    store.import_units([TranslationUnit(row, "the row"), *fillers])
    index = FuzzyIndex()
    index.sync(store)
    assert [uid for _, uid in index.search(query, "zh", 0.7)] == [1]
    store.close()


def test_a_request_never_waits_behind_an_indexing_run(tmp_path, shared_data):
    """What a write request runs (``sync(wait=False, most=…)``): nothing while another sync
    runs; deletions but not a large arrival, which the background sync indexes."""
    store = open_store(tmp_path / "data")
    units = unpc_units(shared_data, 600)
    store.import_units(units[:100])
    index = FuzzyIndex()
    index.sync(store)
    store.delete([1])
    with index._sync_lock:  # a long indexing run on the background thread
        began = time.perf_counter()
        assert index.sync(store, wait=False, most=50) == 0
        assert time.perf_counter() - began < 0.2
        assert index.search(units[0].target, "en", 1.0) == [(1.0, 1)]  # not applied yet
    store.import_units(units[100:])
    assert index.sync(store, wait=False, most=50) == 0
    assert index.search(units[0].target, "en", 1.0) == []  # the deletion is applied
    assert index.search(units[300].target, "en", 1.0) == []  # 500 new: left to the background
    assert index.sync(store) == 500 and index.search(units[300].target, "en", 1.0)
    store.close()
