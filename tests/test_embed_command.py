"""``concordia-tm embed``: a memory embedded on a Dask cluster (resuming after a crash is the
index's sync's, tested in test_semantic_index.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aligner import cluster
from service import cli
from service.memory.factory import open_store
from service.memory.semantic import SemanticIndex, _try_lock
from tests.test_store import unpc_units

UNITS = 300


@pytest.fixture
def memory(tmp_path, shared_data):
    data = tmp_path / "data"
    store = open_store(data)
    store.import_units(unpc_units(shared_data, UNITS))
    store.close()
    return data


def _run(data, *argv, capsys) -> tuple[int, dict | str]:
    code = cli.main(["--data", str(data), "embed", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else err


def test_embedding_on_a_cluster_gives_what_the_service_would_find(memory, capsys, monkeypatch):
    monkeypatch.setenv("CONCORDIA_SEMANTIC_EXACT_BELOW", "50000")
    code, answer = _run(memory, "--workers", "2", "--chunk", "50", capsys=capsys)
    assert code == 0, answer
    assert answer["embedded"] == UNITS and answer["units"] == UNITS
    store = open_store(memory)
    index = SemanticIndex(memory, "use-m3")  # as a service starting afterwards
    try:
        assert index.load(store) and len(index) == UNITS
        assert index.sync(store) == 0  # nothing left to embed
        units = store.get(range(1, UNITS + 1))
        for unit_id in range(1, UNITS + 1, 29):
            for lang in ("zh", "en"):
                text = units[unit_id].side(lang)
                (top, score), *_ = index.search(index.embed_query(text), lang, 3)
                assert top == unit_id and score > 0.99, (unit_id, lang, top, score)
        # The cluster's vectors are the encoder's: the same as embedding here.
        here = index._encode["en"]([units[7].side("en")])[0]
        assert np.allclose(index.stored_vector(7, "en"), here, atol=2e-3)
    finally:
        index.close()
        store.close()
    code, answer = _run(memory, "--workers", "1", capsys=capsys)
    assert code == 0 and answer["embedded"] == 0  # run again: nothing to do


def test_bad_requests_are_one_line(memory, capsys, monkeypatch):
    code, err = _run(memory, "--encoder", "word2vec", capsys=capsys)
    assert code == 2 and "unknown encoder 'word2vec'" in err and len(err.splitlines()) == 1
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "2s")
    code, err = _run(memory, "--scheduler", "tcp://127.0.0.1:9", capsys=capsys)
    assert code == 2 and "cannot reach the Dask scheduler" in err
    (memory / "semantic").mkdir(exist_ok=True)
    with _try_lock(memory / "semantic-embed.lock") as held:  # a service embedding
        assert held
        code, err = _run(memory, "--workers", "1", capsys=capsys)
    assert code == 2 and "another process is embedding this memory" in err
