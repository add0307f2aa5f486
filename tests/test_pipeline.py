"""Document pipeline: turn pairing and sentence pairs with provenance on a pair built from
real Chinese turns of S/PV.8017 and English written for them in the UN record format."""

import dataclasses
from pathlib import Path

import pytest

from aligner.align import DEFAULT_MIN_SCORE
from aligner.embed import CachedEncoder, load_encoder
from aligner.errors import InputError
from aligner.ingest import read_document
from aligner.models import Document
from aligner.pipeline import align_documents
from aligner.turn_align import align_turns, embed_turns
from aligner.turns import parse_turns

DATA = Path(__file__).parent / "data"
# The English has no counterpart of Chinese turn 4 (主席: 我感谢费多托夫先生的通报。…), so
# Chinese turns 5.. pair with English turns 4..
EXPECTED_TURNS = [(i, i) for i in range(4)] + [(4, None)] + [(i, i - 1) for i in range(5, 15)]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


@pytest.fixture(scope="module")
def zh():
    doc = read_document(DATA / "record_8017_excerpt.zh.txt")
    doc.symbol = "S/PV.8017"
    return doc


@pytest.fixture(scope="module")
def en():
    return read_document(DATA / "record_8017_excerpt.en.txt")


def pair_turns(zh_doc, en_doc, encoder):
    zt, et = parse_turns(zh_doc), parse_turns(en_doc)
    return align_turns(zt, et, embed_turns(zt, "zh", encoder), embed_turns(et, "en", encoder))


def without(doc: Document, *starts: str) -> Document:
    """The document less the paragraphs that start with any of ``starts``."""
    kept = [p for p in doc.paragraphs if not p.startswith(starts)]
    assert len(kept) == len(doc.paragraphs) - len(starts)
    return dataclasses.replace(doc, paragraphs=kept)


def test_turns_pair_as_written(zh, en, encoder):
    pairs = pair_turns(zh, en, encoder)
    assert [(p.zh, p.en) for p in pairs] == EXPECTED_TURNS
    assert min(p.confidence for p in pairs if p.en is not None) > 0.8


@pytest.mark.parametrize(
    ("side", "starts", "expected"),
    [
        # a missing procedural line
        ("en", ("The meeting was called to order",), [(0, None)] + [
            (i, i - 1) for i in range(1, 4)] + [(4, None)] + [(i, i - 2) for i in range(5, 15)]),
        # a delegation's statement missing from the English
        ("en", ("Mr. Nebenzia",), EXPECTED_TURNS[:9] + [(9, None)] + [
            (i, i - 2) for i in range(10, 15)]),
        # a statement missing from the Chinese
        ("zh", ("黑利夫人",), EXPECTED_TURNS[:10] + [(None, 9)] + [
            (i, i) for i in range(10, 14)]),
    ],
)
def test_one_turn_missing_does_not_shift_the_rest(zh, en, encoder, side, starts, expected):
    if side == "en":
        en = without(en, *starts)
    else:
        zh = without(zh, *starts)
    pairs = pair_turns(zh, en, encoder)
    assert [(p.zh, p.en) for p in pairs] == expected
    assert min(p.confidence for p in pairs if p.zh is not None and p.en is not None) > 0.8


def test_sentence_pairs_with_provenance(zh, en, encoder):
    result = align_documents(zh, en, encoder=encoder)
    assert result.mode == "record" and result.warnings == []
    # Chinese sentences 14-15 are the turn missing from the English; Chinese sentence 46 is
    # rendered by two English sentences.
    expected = (
        [((i,), (i,)) for i in range(14)]
        + [((i,), (i - 2,)) for i in range(16, 46)]
        + [((46,), (44, 45))]
        + [((i,), (i - 1,)) for i in range(47, 52)]
    )
    assert [(p.zh_indices, p.en_indices) for p in result.pairs] == expected
    assert result.unmatched_zh == ["我感谢费多托夫先生的通报。", "我现在请汗先生发言。"]
    assert result.unmatched_en == []
    assert {p.document for p in result.pairs} == {"S/PV.8017"}

    by_zh = {p.zh: p for p in result.pairs}
    # The paragraph the English splits in two.
    first = by_zh["我现在谨以埃及代表的身份发言。"]
    assert first.en == "I shall now make a statement in my capacity as the representative of Egypt."
    second = next(p for p in result.pairs if p.zh.startswith("首先，我要向所有以建设性"))
    assert second.en.startswith("At the outset, I would like to thank all those")
    assert (first.turn, first.speaker, first.country, first.language) == (
        7, "The President", "", "Arabic"
    )
    uk = by_zh["没有比恐怖主义这一无情祸害更大的挑战了。"]
    assert uk.en == "There is no greater challenge than the merciless scourge of terrorism."
    assert (uk.turn, uk.speaker, uk.country, uk.language) == (
        8, "Mr. Rycroft", "United Kingdom of Great Britain and Northern Ireland", "English"
    )
    china = by_zh["中方将与你通力合作。"]
    assert (china.turn, china.speaker, china.country, china.language) == (
        12, "Mr. Liu Jieyi", "China", "Chinese"
    )
    opening = result.pairs[0]
    assert (opening.turn, opening.speaker, opening.en) == (
        0, "", "The meeting was called to order at 10.10 a.m."
    )


class CountingEncoder:
    """The real model, counting how many times it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.calls: list[int] = []

    def encode(self, texts):
        self.calls.append(len(texts))
        return self.inner.encode(texts)


def test_all_sentences_embedded_in_one_batch(zh, en, encoder):
    counting = CountingEncoder(encoder.inner)
    result = align_documents(zh, en, encoder=CachedEncoder(counting))
    assert counting.calls == [52 + 51]  # every sentence once; the per-turn calls hit the cache
    assert len(result.pairs) == 50


def test_records_of_different_meetings_are_reported(zh, encoder):
    other = read_document(DATA / "record_other_meeting.en.txt")
    pairs = pair_turns(zh, other, encoder)
    paired = [p for p in pairs if p.zh is not None and p.en is not None]
    assert sum(p.confidence >= 0.5 for p in paired) <= 3  # formulaic President lines only
    result = align_documents(zh, other, encoder=encoder)
    assert any("do not correspond" in w for w in result.warnings)
    assert result.pairs and all(p.score < DEFAULT_MIN_SCORE for p in result.pairs)


def test_plain_text_falls_back_with_a_warning(shared_data, encoder):
    zh_lines = (shared_data / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()
    en_lines = (shared_data / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()
    zh = Document(paragraphs=zh_lines[:30], lang="zh")
    en = Document(paragraphs=en_lines[:30], lang="en")
    result = align_documents(zh, en, encoder=encoder)
    assert result.mode == "plain"
    assert result.warnings == [
        "no speaker headings found in the Chinese and English text: aligned sentence by "
        "sentence as plain text"
    ]
    assert len(result.pairs) >= 25 and all(p.turn is None for p in result.pairs)


def test_headings_on_one_side_only(zh, encoder):
    en = Document(paragraphs=["The Security Council adopted resolution 2370 (2017)."], lang="en")
    result = align_documents(zh, en, mode="record", encoder=encoder)
    assert result.mode == "plain"
    assert "no speaker headings found in the English text" in result.warnings[0]


def test_plain_mode_on_a_record(zh, en, encoder):
    result = align_documents(zh, en, mode="plain", encoder=encoder)
    assert result.mode == "plain" and result.warnings == []
    assert all(p.turn is None and p.speaker == "" for p in result.pairs)
    assert result.pairs[0].document == "S/PV.8017"


def test_bad_arguments(zh, en, encoder):
    with pytest.raises(InputError, match="unknown mode 'turns'"):
        align_documents(zh, en, mode="turns", encoder=encoder)
    with pytest.raises(InputError, match="first document must be Chinese"):
        align_documents(en, zh, encoder=encoder)
