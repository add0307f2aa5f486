"""How lookups get their query embeddings: batched while waiting, cached, reused when the
query is a stored segment. Real use-m3 on real UNPC sentences; the encoder is only watched."""

from __future__ import annotations

import numpy as np
import pytest

from service.memory.factory import open_store
from service.memory.fuzzy import FuzzyIndex
from service.memory.lookup import lookup
from service.memory.semantic import SemanticIndex
from tests.test_store import unpc_units


def watch(index: SemanticIndex) -> list[list[str]]:
    """The batches of texts the index's query encoder is called with, from now on."""
    calls: list[list[str]] = []
    embedder = index._embedder
    encode = embedder._encode

    def recorded(texts):
        calls.append(list(texts))
        return encode(texts)

    embedder._encode = recorded
    return calls


@pytest.fixture
def memory(tmp_path, shared_data):
    store = open_store(tmp_path / "data")
    units = unpc_units(shared_data, 40)
    store.import_units(units)
    fuzzy = FuzzyIndex()
    fuzzy.sync(store)
    index = SemanticIndex(tmp_path / "data", "use-m3")
    index.sync(store)
    yield store, fuzzy, index, units
    index.close()
    store.close()


def test_waiting_queries_are_embedded_in_one_batch(memory, shared_data):
    _, _, index, _ = memory
    calls = watch(index)
    texts = [u.target for u in unpc_units(shared_data, 3, start=500)]
    queries = [index.query(text, "en") for text in texts]
    assert calls == []  # nothing embedded until a lookup needs a vector
    first = queries[0].vector
    assert len(calls) == 1 and sorted(calls[0]) == sorted(texts)
    vectors = [q.vector for q in queries]
    assert len(calls) == 1 and vectors[0] is first
    alone = index._encode["query"](texts)
    for got, expected in zip(vectors, alone, strict=True):
        assert float(np.dot(got, expected)) > 0.9999  # batching does not change the vectors
    again = index.query(texts[1], "zh").vector  # asked again: cached
    assert len(calls) == 1 and again is vectors[1]


def test_a_failed_batch_reaches_every_waiting_query_and_is_not_kept(memory, shared_data):
    _, _, index, _ = memory
    texts = [u.source for u in unpc_units(shared_data, 2, start=600)]
    encode = index._embedder._encode

    def broken(_texts):
        raise RuntimeError("encoder out of memory")

    index._embedder._encode = broken
    queries = [index.query(text, "zh") for text in texts]
    for query in queries:
        with pytest.raises(RuntimeError, match="out of memory"):
            query.hits(5)
    index._embedder._encode = encode
    assert index.query(texts[1], "zh").vector.shape == (512,)  # tried afresh


def test_a_stored_segment_is_not_embedded_again(memory):
    store, fuzzy, index, units = memory
    calls = watch(index)
    stored = units[5].target
    spaced = "  " + stored.replace(" ", "  ") + " "  # the same text to the encoder
    matches = lookup(store, fuzzy, spaced, "en", semantic=index.query(spaced, "en"))
    assert calls == []
    assert matches[0].unit.id == 6 and matches[0].fuzzy == 100
    assert matches[0].semantic == pytest.approx(1.0, abs=1e-5)
    fresh = index._encode["query"]([spaced])[0]
    assert float(np.dot(fresh, index.stored_vector(6, "en"))) > 0.9999

    words = stored.split()
    edited = " ".join(words[:1] + words[2:])  # one word left out
    matches = lookup(store, fuzzy, edited, "en", semantic=index.query(edited, "en"))
    assert calls == [[edited]]  # not the same text: embedded
    assert matches[0].unit.id == 6 and matches[0].fuzzy < 100
    assert 0.8 < matches[0].semantic < 1.0


def test_a_waiting_query_pushed_out_of_the_cache_is_still_answered(memory, shared_data,
                                                                   monkeypatch):
    _, _, index, _ = memory
    monkeypatch.setattr("service.memory.semantic._QUERY_CACHE", 2)
    texts = [u.target for u in unpc_units(shared_data, 4, start=700)]
    first = index.query(texts[0], "en")
    for text in texts[1:]:  # the first text leaves the cache of 2 while still waiting
        index.query(text, "en")
    again = index.query(texts[0], "en")
    assert again._future is first._future  # one embedding, which both lookups wait for
    assert float(np.dot(first.vector, again.vector)) == pytest.approx(1.0)
