"""Document pipeline: turn pairing and sentence pairs with provenance on a pair built from
real Chinese turns of S/PV.8017 and English written for them in the UN record format."""

import dataclasses
import re
from pathlib import Path

import pytest

from aligner import pipeline
from aligner.align.embed import CachedEncoder, load_encoder
from aligner.align.sentence_align import DEFAULT_MIN_SCORE
from aligner.errors import InputError, TextLostError
from aligner.models import Bead, Document
from aligner.pipeline import align_documents, left_out
from aligner.read.ingest import read_document
from aligner.record.turn_align import align_turns, embed_turns
from aligner.record.turns import parse_turns
from aligner.tmx import pairs_to_units

DATA = Path(__file__).parent / "data"
# The English has no counterpart of Chinese turn 4 (主席: 我感谢费多托夫先生的通报。…), so
# Chinese turns 5.. pair with English turns 4..
EXPECTED_TURNS = [(i, i) for i in range(4)] + [(4, None)] + [(i, i - 1) for i in range(5, 15)]
# The sentence pairs a translator makes: Chinese sentences 14-15 are the turn missing from the
# English; Chinese sentence 46 is rendered by two English sentences.
EXPECTED_PAIRS = (
    [((i,), (i,)) for i in range(14)]
    + [((i,), (i - 2,)) for i in range(16, 46)]
    + [((46,), (44, 45))]
    + [((i,), (i - 1,)) for i in range(47, 52)]
)


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
    assert [(p.zh_indices, p.en_indices) for p in result.pairs] == EXPECTED_PAIRS
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


def test_records_of_different_meetings_are_refused(zh, encoder):
    other = read_document(DATA / "record_other_meeting.en.txt")
    pairs = pair_turns(zh, other, encoder)
    paired = [p for p in pairs if p.zh is not None and p.en is not None]
    assert sum(p.confidence >= 0.5 for p in paired) <= 3  # formulaic President lines only
    with pytest.raises(InputError, match=r"the turns of the two records do not correspond "
                       r"\(only \d+% .*same meeting\?$"):
        align_documents(zh, other, encoder=encoder)


def replaced(doc: Document, old: str, new: str) -> Document:
    """The document with ``old`` replaced by ``new`` in the one paragraph that holds it."""
    hits = [k for k, p in enumerate(doc.paragraphs) if old in p]
    assert len(hits) == 1
    paragraphs = list(doc.paragraphs)
    paragraphs[hits[0]] = paragraphs[hits[0]].replace(old, new)
    return dataclasses.replace(doc, paragraphs=paragraphs)


@pytest.mark.parametrize(
    "changes",
    [
        # a heading missed in the English: Nebenzia's speech is read into Rycroft's turn
        [("en", "Mr. Nebenzia (Russian Federation) (spoke in Russian): ", "")],
        # a heading missed in the Chinese: Haley's speech is read into Nebenzia's turn
        [("zh", "黑利夫人（美利坚合众国）（以英语发言）：", "")],
        # a speech split in two in the English: Sadykov's second paragraph under its own heading
        [("en", "I also congratulate", "Mr. Sadykov (Kazakhstan): I also congratulate")],
        # and in the Chinese, where a language note opens the second part
        [("zh", "我还祝贺并欢迎", "萨迪科夫先生（哈萨克斯坦）：（以英语发言）我还祝贺并欢迎")],
        # a heading missed on each side, so that every turn still finds a partner
        [
            ("zh", "黑利夫人（美利坚合众国）（以英语发言）：", ""),
            ("en", "Mr. Sadykov (Kazakhstan): ", ""),
        ],
    ],
)
def test_turns_cut_differently_lose_no_speech(zh, en, encoder, changes):
    for side, old, new in changes:
        if side == "en":
            en = replaced(en, old, new)
        else:
            zh = replaced(zh, old, new)
    result = align_documents(zh, en, encoder=encoder)
    assert [(p.zh_indices, p.en_indices) for p in result.pairs] == EXPECTED_PAIRS
    assert result.unmatched_zh == ["我感谢费多托夫先生的通报。", "我现在请汗先生发言。"]
    assert result.unmatched_en == []
    blocks = {link.block for link in result.turns}
    assert len(blocks) < len(result.turns)  # the turns cut differently were aligned together


def test_left_out_lists_unpaired_sentences_and_low_pairs(zh, en, encoder):
    result = align_documents(zh, en, encoder=encoder)
    report = left_out(result, min_score=0.5)
    assert report["unmatched_sentences"] == [
        {"lang": "zh", "index": 14, "turn": 4, "speaker": "主席",
         "text": "我感谢费多托夫先生的通报。"},
        {"lang": "zh", "index": 15, "turn": 4, "speaker": "主席", "text": "我现在请汗先生发言。"},
    ]
    low = [p for p in result.pairs if p.score < 0.5]
    assert report["pairs_below_threshold"] == [
        {
            "turn": p.turn, "speaker": p.speaker, "score": round(p.score, 4), "zh": p.zh,
            "en": p.en, "zh_indices": list(p.zh_indices), "en_indices": list(p.en_indices),
        }
        for p in low
    ]
    everything = left_out(result, min_score=1.01)["pairs_below_threshold"]
    assert len(everything) == len(result.pairs)
    assert everything[0]["en"] == "The meeting was called to order at 10.10 a.m."
    assert report["removed_text"] == {"zh": [], "en": []}
    assert result.sentences == {"zh": 52, "en": 51}


def test_lost_text_fails_loudly(zh, en, encoder, monkeypatch):
    real_split = pipeline.split_units

    def losing(paragraph, lang):  # a splitter that drops the last word of a paragraph
        return real_split(paragraph[:-3], lang) if len(paragraph) > 40 else real_split(
            paragraph, lang
        )

    monkeypatch.setattr(pipeline, "split_units", losing)
    with pytest.raises(TextLostError, match="record_8017_excerpt.zh.txt: cutting into sentences"):
        align_documents(zh, en, encoder=encoder)
    monkeypatch.undo()
    real_align = pipeline.align_sentences

    def dropping(zh_sents, en_sents, encoder, max_bead):  # an aligner that drops a bead
        return real_align(zh_sents, en_sents, encoder, max_bead=max_bead)[1:]

    monkeypatch.setattr(pipeline, "align_sentences", dropping)
    with pytest.raises(TextLostError, match="sentences not in exactly one bead"):
        align_documents(zh, en, encoder=encoder)
    with pytest.raises(TextLostError, match="sentences not in exactly one bead"):
        align_documents(zh, en, mode="plain", encoder=encoder)


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


@pytest.fixture(scope="module")
def pv10124(shared_data):
    un = shared_data / "un"
    return read_document(un / "S-PV-10124.part1.zh.txt"), read_document(
        un / "S-PV-10124.part1.en.txt"
    )


def in_good_pairs(result, lang: str) -> float:
    good = [p for p in result.pairs if p.score >= DEFAULT_MIN_SCORE]
    held = sum(len(p.zh_indices if lang == "zh" else p.en_indices) for p in good)
    return held / result.sentences[lang]


def test_real_record_every_turn_paired(pv10124, encoder):
    zh, en = pv10124
    result = align_documents(zh, en, encoder=encoder)
    assert result.mode == "record" and result.warnings == []
    assert [(t.zh, t.en) for t in result.turns] == [(k, k) for k in range(13)]
    assert min(t.confidence for t in result.turns) > 0.9
    assert in_good_pairs(result, "zh") >= 0.97 and in_good_pairs(result, "en") >= 0.97
    # what is left out is the cover page's notice, whose two versions say different things
    assert {u.turn for u in result.unmatched} == {0}


def test_real_record_with_a_heading_missed(pv10124, encoder):
    """The failure the issue reports: Latvia's heading not recognised in the Chinese."""
    zh, en = pv10124
    zh = replaced(zh, "帕夫乌塔-德斯兰德斯女士（拉脱维亚）（以英语发言）：", "")
    result = align_documents(zh, en, encoder=encoder)
    lone = [k for k, t in enumerate(result.turns) if t.zh is None or t.en is None]
    assert len(lone) == 1
    link = result.turns[lone[0]]
    latvia = link.en
    assert link.block == result.turns[lone[0] - 1].block  # aligned with the President's turn
    paired_en = {j for p in result.pairs if p.score >= DEFAULT_MIN_SCORE for j in p.en_indices}
    en_turns = parse_turns(en)
    first = sum(len(pipeline._sentences(t.paragraphs, "en")) for t in en_turns[:latvia])
    count = len(pipeline._sentences(en_turns[latvia].paragraphs, "en"))
    assert len(paired_en & set(range(first, first + count))) >= 0.95 * count
    assert in_good_pairs(result, "zh") >= 0.97 and in_good_pairs(result, "en") >= 0.97


def test_one_version_holding_more_is_aligned_with_a_warning(zh, en, encoder):
    other = read_document(DATA / "record_other_meeting.en.txt")
    longer = dataclasses.replace(en, paragraphs=en.paragraphs + other.paragraphs * 3)
    result = align_documents(zh, longer, encoder=encoder)
    assert [(p.zh_indices, p.en_indices) for p in result.pairs] == EXPECTED_PAIRS
    assert len(result.unmatched_en) == 3 * len(pipeline._sentences(other.paragraphs, "en"))
    assert len(result.warnings) == 1
    assert re.fullmatch(
        r"only \d\d% of the English text is in turns paired with the Chinese: is the Chinese "
        r"version incomplete\?",
        result.warnings[0],
    )


def test_record_whose_english_lacks_cover_time_and_agenda(shared_data, encoder):
    """S/PV.10100 (issue 19): the English starts at the first "The President:". Every English
    turn pairs with its Chinese turn, every English sentence is in the pair read by hand, and
    the Chinese cover page, time lines and agenda come out unpaired, glued onto nothing."""
    un = shared_data / "un"
    zh, en = read_document(un / "S-PV-10100.zh.txt"), read_document(un / "S-PV-10100.en.txt")
    result = align_documents(zh, en, encoder=encoder)
    assert result.warnings == []
    zh_turns = parse_turns(zh)
    links = [(t.zh, t.en) for t in result.turns]
    assert [z for z, e in links if e is not None] == [
        k for k, t in enumerate(zh_turns)
        if t.kind == "speech" or t.paragraphs[0].startswith("进行了")
    ]
    assert sorted(e for _, e in links if e is not None) == list(range(len(parse_turns(en))))
    lines = (DATA / "S-PV-10100.pairs.tsv").read_text(encoding="utf-8")
    hand = [tuple(line.split("\t")) for line in lines.splitlines() if not line.startswith("#")]
    assert [(p.zh, p.en) for p in result.pairs] == hand
    assert all(p.score >= DEFAULT_MIN_SCORE for p in result.pairs)
    unpaired = result.unmatched_zh
    assert unpaired[0] == "无障碍文件请回收" and unpaired[-1] == "下午3时10分散会。"
    assert {"下午3时05分开会。", "通过议程", "议程通过。", "临时逐字记录"} <= set(unpaired)
    assert result.unmatched_en == []


def test_language_notes_mid_speech_are_paired_units(encoder):
    """Issue 19: a language note on its own line in the middle of a speech, and the short
    sentence beside it, come out as pairs above the threshold (procedural units for the
    memory)."""
    zh = Document(paragraphs=[
        "主席（以英语发言）：我现在请俄罗斯联邦代表发言。",
        "涅边贾先生（俄罗斯联邦）（以俄语发言）：我们必须保护平民，并确保人道主义援助能够畅通无阻地"
        "送达所有需要帮助的人。",
        "（以英语发言）",
        "够了，别再抱怨了，别再撒谎了。",
        "（以俄语发言）",
        "我们呼吁各方立即停火，回到谈判桌前，寻求持久的政治解决方案。",
    ], lang="zh")
    en = Document(paragraphs=[
        "The President: I now give the floor to the representative of the Russian Federation.",
        "Mr. Nebenzia (Russian Federation) (spoke in Russian): We must protect civilians and "
        "ensure that humanitarian assistance reaches all those in need without hindrance.",
        "(spoke in English)",
        "Enough moaning, enough lying.",
        "(spoke in Russian)",
        "We call on all parties to cease fire immediately, return to the negotiating table and "
        "seek a lasting political solution.",
    ], lang="en")
    result = align_documents(zh, en, encoder=encoder, mode="record")
    pairs = {(p.zh, p.en): p.score for p in result.pairs}
    for pair in [("（以英语发言）", "(spoke in English)"), ("（以俄语发言）", "(spoke in Russian)"),
                 ("够了，别再抱怨了，别再撒谎了。", "Enough moaning, enough lying.")]:
        assert pairs[pair] >= DEFAULT_MIN_SCORE
    assert len(result.pairs) == 6 and not result.unmatched
    kinds = {p.zh: p.kind for p in result.pairs}
    assert kinds["（以英语发言）"] == kinds["（以俄语发言）"] == "procedural"
    assert kinds["够了，别再抱怨了，别再撒谎了。"] == ""
    units = {u.source: u.props for u in pairs_to_units(result.pairs)}
    assert units["（以俄语发言）"]["x-kind"] == "procedural"
    assert "x-kind" not in units["够了，别再抱怨了，别再撒谎了。"]


SEMI_ZH = "首先，必须立即实现全面停火；第二，必须释放所有被拘留者；第三，必须恢复人道主义准入。"
FRAME_ZH = ["我们必须保护平民，并确保人道主义援助能够畅通无阻地送达所有需要帮助的人。",
            "我们呼吁各方立即停火，回到谈判桌前，寻求持久的政治解决方案。"]
FRAME_EN = ["We must protect civilians and ensure that humanitarian assistance reaches all those "
            "in need without hindrance.",
            "We call on all parties to cease fire immediately, return to the negotiating table "
            "and seek a lasting political solution."]


THREE_EN = ["First, there must be an immediate and comprehensive ceasefire.",
            "Second, all detainees must be released.",
            "Third, humanitarian access must be restored."]
ONE_EN = ("First, there must be an immediate and comprehensive ceasefire; second, all detainees "
          "must be released; and third, humanitarian access must be restored.")


@pytest.mark.parametrize(
    ("english", "expected"),
    [
        (THREE_EN, list(zip(["首先，必须立即实现全面停火；", "第二，必须释放所有被拘留者；",
                             "第三，必须恢复人道主义准入。"], THREE_EN, strict=True))),
        ([ONE_EN], [(SEMI_ZH, ONE_EN)]),
    ],
)
def test_semicolon_ends_a_sentence_where_the_english_does(encoder, english, expected):
    """Issue 19: ``首先，…；第二，…；第三，…。`` against three English sentences gives three
    pairs, against one English sentence one pair holding the whole Chinese sentence."""
    zh = Document([FRAME_ZH[0], SEMI_ZH, FRAME_ZH[1]], "zh")
    en = Document([" ".join([FRAME_EN[0], *english, FRAME_EN[1]])], "en")
    result = align_documents(zh, en, mode="plain", encoder=encoder)
    frame = list(zip(FRAME_ZH, FRAME_EN, strict=True))
    assert [(p.zh, p.en) for p in result.pairs] == [frame[0], *expected, frame[1]]
    assert not result.unmatched and min(p.score for p in result.pairs) >= DEFAULT_MIN_SCORE


def test_a_clause_left_alone_rejoins_its_sentence():
    """A unit ending with ``：`` or ``；`` that the aligner left unpaired joins the pair of the
    unit after it; the unit after a ``；`` piece joins the pair before it."""
    zh = ["我再说一遍：", "俄罗斯需要183年。", "首先，停火；", "第二，谈判。", "另一句。"]
    en = ["I repeat: Russia needs 183 years.", "First, a ceasefire and, second, talks.",
          "Another."]
    beads = [Bead((0,), ()), Bead((1,), (0,), 0.9), Bead((2,), (1,), 0.8), Bead((3,), ()),
             Bead((4,), (2,), 0.9)]
    assert pipeline.absorb_clauses(beads, zh, en) == [
        Bead((0, 1), (0,), 0.9), Bead((2, 3), (1,), 0.8), Bead((4,), (2,), 0.9)
    ]
    alone = [Bead((0,), (0,), 0.9), Bead((1,), ()), Bead((2,), (1,), 0.9)]
    assert pipeline.absorb_clauses(alone, ["甲。", "乙。", "丙。"], ["A.", "C."]) == alone
