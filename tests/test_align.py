"""The sentence aligner on real text: coverage, order, accuracy, scores, the length baseline."""

import numpy as np
import pytest

from aligner.align.embed import encode_windows, load_encoder
from aligner.align.evaluate import parse_beads, score
from aligner.align.length import align_lengths
from aligner.align.lexicon import (
    LexicalIndex,
    en_keys,
    en_number_word,
    load_dictionary,
    shared_tokens,
    un_keys,
    zh_numeral,
    zh_units,
)
from aligner.align.sentence_align import (
    DEFAULT_MIN_SCORE,
    QUOTE_END,
    Band,
    align_embedded,
    align_sentences,
    bead_types,
    gather_evidence,
    inner_end_count,
    is_heading,
    quote_breaks,
    span_vectors,
)


def excerpt(shared_data, name: str, zh_lines: int = 60):
    """The first ``zh_lines`` Chinese lines of a MAC-Dev chapter, the English lines the gold
    pairs them with, and the gold beads of that stretch."""
    root = shared_data / "mac-dev"
    gold = []
    for bead in parse_beads((root / "gold" / f"{name}.align").read_text(encoding="utf-8")):
        if bead[0] and max(bead[0]) >= zh_lines:
            break
        gold.append(bead)
    en_lines = max(j for _, en in gold for j in en) + 1
    zh = (root / "zh" / name).read_text(encoding="utf-8").splitlines()[:zh_lines]
    en = (root / "en" / name).read_text(encoding="utf-8").splitlines()[:en_lines]
    return zh, en, gold


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("use-m3", cache=False)


@pytest.fixture(scope="module")
def stone(shared_data):
    return excerpt(shared_data, "003")  # The Story of the Stone: many 1-2 and 1-3 beads


def assert_covers(beads, n: int, m: int) -> None:
    """Every sentence exactly once, in document order; no empty bead; scores in [0, 1]."""
    zh = [i for b in beads for i in b.zh]
    en = [j for b in beads for j in b.en]
    assert zh == list(range(n))
    assert en == list(range(m))
    assert all(b.zh or b.en for b in beads)
    assert all(0.0 <= b.score <= 1.0 for b in beads)
    for bead in beads:
        assert list(bead.zh) == list(range(bead.zh[0], bead.zh[0] + len(bead.zh))) if bead.zh else 1
        assert list(bead.en) == list(range(bead.en[0], bead.en[0] + len(bead.en))) if bead.en else 1


def test_bead_shapes():
    assert bead_types(4) == [
        (1, 0), (0, 1), (1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3), (3, 1), (3, 2),
        (4, 1),
    ]
    assert bead_types(1) == [(1, 0), (0, 1), (1, 1)]
    with pytest.raises(ValueError):
        bead_types(0)


def test_real_excerpt_is_covered_and_accurate(stone, encoder):
    zh, en, gold = stone
    beads = align_sentences(zh, en, encoder)
    assert_covers(beads, len(zh), len(en))
    result = score([gold], [[(b.zh, b.en) for b in beads]])
    assert result["f1_strict"] >= 0.85
    assert result["f1_lax"] >= 0.97
    # a free literary translation: most beads that equal a gold bead pass the threshold
    gold_set = set(gold)
    right = [b.score for b in beads if (b.zh, b.en) in gold_set]
    assert np.median(right) >= DEFAULT_MIN_SCORE


def test_spans_take_window_vectors_where_given(shared_data, encoder):
    """A span of 2-4 sentences gets the encoder's window vector; without one (encoders that
    cannot pool), the unit mean of its sentences' vectors."""
    zh = (shared_data / "mac-dev" / "zh" / "002").read_text("utf-8").splitlines()[:12]
    vectors, windows = encode_windows(encoder, zh, 4)
    spans = span_vectors(vectors, 4, None, {2: windows[2]})
    np.testing.assert_allclose(spans[1][1:], vectors, atol=1e-6)
    np.testing.assert_array_equal(spans[2][2:], windows[2])
    assert not spans[2][:2].any() and not spans[3][:3].any()
    mean = vectors[:3].sum(axis=0)
    np.testing.assert_allclose(spans[3][3], mean / np.linalg.norm(mean), atol=1e-6)
    assert float(spans[3][3] @ windows[3][0]) < 0.99  # the mean is not the window's vector


def test_precomputed_embeddings_give_the_same_alignment(stone, encoder):
    zh, en, _ = stone
    once = align_sentences(zh, en, encoder)
    (zv, zw), (ev, ew) = encode_windows(encoder, zh, 4), encode_windows(encoder, en, 4)
    again = align_embedded(zh, en, zv, ev, windows=(zw, ew))
    assert [(b.zh, b.en) for b in once] == [(b.zh, b.en) for b in again]
    with pytest.raises(ValueError):
        align_embedded(zh, en, encoder.encode(zh[:-1]), encoder.encode(en))


def test_bead_size_limit_is_kept(stone, encoder):
    zh, en, _ = stone
    for max_bead in (1, 2):
        beads = align_sentences(zh, en, encoder, max_bead=max_bead)
        assert_covers(beads, len(zh), len(en))
        assert all(len(b.zh) <= max_bead and len(b.en) <= max_bead for b in beads)


def test_unrelated_texts_score_low(shared_data, stone, encoder):
    zh, _, _ = stone
    _, other_en, _ = excerpt(shared_data, "006")  # The Three-Body Problem
    beads = align_sentences(zh, other_en, encoder)
    assert_covers(beads, len(zh), len(other_en))
    scores = np.array([b.score for b in beads if b.zh and b.en])
    assert scores.size and np.mean(scores < DEFAULT_MIN_SCORE) >= 0.95
    assert np.median(scores) < 0.1


def test_quote_breaks_mark_beads_running_past_a_closed_quotation():
    en = ["'Don't fight.'", "He walked off,", "whistling.", "'Well, I never!' she said.",
          "'But I—'"]
    assert [bool(QUOTE_END.search(s)) for s in en] == [True, False, False, False, True]
    band = Band(np.zeros(2, dtype=np.int64), np.full(2, len(en)))
    breaks = quote_breaks(band, [(1, 1), (1, 2), (1, 3)], en)
    # row 1, column j: the bead's English side is en[j - b .. j - 1]
    assert breaks[(1, 1)][1].tolist() == [0, 0, 0, 0, 0, 0]
    assert breaks[(1, 2)][1, 2:].tolist() == [1, 0, 0, 0]  # only en[0] + en[1] runs past
    assert breaks[(1, 3)][1, 3:].tolist() == [1, 0, 0]  # en[0..2] runs past en[0]


def test_dialogue_beads_end_with_the_quotation(shared_data, encoder):
    """The Deer and the Cauldron: dialogue in short quoted sentences, where similarity alone
    joins the end of one utterance to the next speaker's bead."""
    zh, en, gold = excerpt(shared_data, "002")
    beads = [(b.zh, b.en) for b in align_sentences(zh, en, encoder)]
    assert not any(QUOTE_END.search(en[j]) for _, e in beads for j in e[:-1])
    assert not any(QUOTE_END.search(en[j]) for _, e in gold for j in e[:-1])
    assert score([gold], [beads])["f1_strict"] >= 0.9


def test_un_sentences_pair_one_to_one(shared_data, encoder):
    zh = (shared_data / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()[:40]
    en = (shared_data / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()[:40]
    beads = align_sentences(zh, en, encoder)
    assert_covers(beads, 40, 40)
    diagonal = [b for b in beads if b.zh == b.en and len(b.zh) == 1]
    assert len(diagonal) >= 36
    assert np.mean([b.score >= DEFAULT_MIN_SCORE for b in diagonal]) >= 0.9


def test_empty_sides(encoder):
    en = ["One sentence.", "Another one."]
    beads = align_sentences([], en, encoder)
    assert [(b.zh, b.en, b.score) for b in beads] == [((), (0,), 0.0), ((), (1,), 0.0)]
    assert [(b.zh, b.en) for b in align_sentences(["一句话。"], [], encoder)] == [((0,), ())]
    assert align_sentences([], [], encoder) == []


def test_tiny_documents_are_covered(encoder):
    rng = np.random.default_rng(7)
    for n, m in [(1, 1), (1, 9), (7, 1), (3, 12), (12, 3)]:
        zh_vecs = rng.normal(size=(n, 16)).astype(np.float32)
        en_vecs = rng.normal(size=(m, 16)).astype(np.float32)
        zh_vecs /= np.linalg.norm(zh_vecs, axis=1, keepdims=True)
        en_vecs /= np.linalg.norm(en_vecs, axis=1, keepdims=True)
        beads = align_embedded(["中"] * n, ["x"] * m, zh_vecs, en_vecs)
        assert_covers(beads, n, m)


def test_length_baseline(stone, encoder):
    zh, en, gold = stone
    beads = align_lengths(zh, en)
    assert_covers(beads, len(zh), len(en))
    assert all(len(b.zh) <= 2 and len(b.en) <= 2 for b in beads)
    baseline = score([gold], [[(b.zh, b.en) for b in beads]])["f1_strict"]
    ours = score([gold], [[(b.zh, b.en) for b in align_sentences(zh, en, encoder)]])["f1_strict"]
    assert 0.3 <= baseline <= 0.75 and ours >= baseline + 0.2
    # a long Chinese sentence against two English halves of matching length: a 1-2 bead
    zh = ["短句。", "这是一个相当长的句子，它的英文译文被分成了两个部分。", "短句。"]
    en = ["Short.", "This is a rather long sentence,", "whose translation is in two parts.",
          "Short."]
    assert [(b.zh, b.en) for b in align_lengths(zh, en)] == [
        ((0,), (0,)), ((1,), (1, 2)), ((2,), (3,))
    ]
    assert align_lengths([], ["a"]) and not align_lengths([], [])


def test_lexical_keys():
    dictionary = load_dictionary()
    units = zh_units("陈清扬把我拽住，以伟大友谊的名义叫我留下来。", dictionary)
    assert any("chenqingyang" in unit for unit in units)  # a name, by its pinyin
    assert any("friendship" in unit for unit in units)  # 友谊, by CC-CEDICT
    keys = en_keys("Chen Qingyang caught me and asked me to stay.")
    assert {"chenqingyang", "qingyang", "ask", "stay"} <= set(keys)
    assert {"S/2017/659", "2370"} <= shared_tokens("安理会第2370(2017)号决议（S/2017/659）")


def test_pair_counts_match_set_arithmetic(stone):
    zh, en, _ = stone
    zh, en = zh[:12], en[:15]
    index = LexicalIndex(zh, en)
    plo = np.maximum(np.arange(len(zh)) - 2, 0)
    phi = np.minimum(np.arange(len(zh)) + 4, len(en) - 1)
    zh_hit, en_hit = index.pair_counts(plo, phi)
    dictionary = load_dictionary()
    for r in range(len(zh)):
        units = zh_units(zh[r], dictionary)
        union = frozenset().union(*units)
        for c in range(plo[r], phi[r] + 1):
            keys = en_keys(en[c])
            assert zh_hit[r, c - plo[r]] == sum(1 for u in units if u & set(keys))
            assert en_hit[r, c - plo[r]] == sum(1 for k in keys if k in union)


def unpc_document(shared_data, name: str):
    root = shared_data / "unpc-docs"
    zh = (root / "zh" / name).read_text(encoding="utf-8").splitlines()
    en = (root / "en" / name).read_text(encoding="utf-8").splitlines()
    return zh, en, parse_beads((root / "gold" / f"{name}.align").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["002", "007"])
def test_un_documents_are_aligned_exactly(shared_data, encoder, name):
    """Two whole unpc-docs documents (UN sentences with 2-1 and 1-2 merges, headings and
    sentences missing on one side): 0.971 and 0.961 strict F1 with the weights chosen on
    MAC-Dev alone, which pulled unmatched headings into a neighbouring bead and cut lines
    that hold two sentences apart."""
    zh, en, gold = unpc_document(shared_data, name)
    beads = align_sentences(zh, en, encoder)
    assert_covers(beads, len(zh), len(en))
    assert score([gold], [[(b.zh, b.en) for b in beads]])["f1_strict"] >= 0.99
    pairs = {(b.zh, b.en) for b in beads}
    if name == "002":
        # "29. …（…）。24. 小武器（…）。" is one line: one bead with its two English sentences
        assert ((131,), (134, 135)) in pairs
        # "Early 2014", a heading missing in Chinese, stays alone
        assert ((), (112,)) in pairs and ((110,), (113,)) in pairs


def test_headings_are_lines_without_final_punctuation():
    lines = ["Women and peace and security", "临时议程*项目6", "Belarus* (2016), Poland (2017)",
             "国际法委员会", "He went home.", "运载火箭：", "The Commission for Western Asia,",
             "他说：“好。”", "'All right.'"]
    assert is_heading(lines).tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(("name", "expected"), [
    # "Strategic objectives and measures to be taken" has no Chinese: not in the next bead
    ("001", [((), (64,)), ((61,), (65,))]),
    # "B.主旨发言者" has no English, the line before holds two English sentences
    ("003", [((87,), ()), ((85, 86), (79,))]),
])
def test_unmatched_headings_stay_alone(shared_data, encoder, name, expected):
    """Headings whose counterpart is missing, which a bead with the next sentence once took in
    (short, so the length-weighted ``orphan`` barely noticed). The ``stray`` penalty was added
    for them; the weights the search picks now set it to 0 and keep them alone by leaving a
    sentence unmatched cheaper on literal text."""
    zh, en, _ = unpc_document(shared_data, name)
    pairs = {(b.zh, b.en) for b in align_sentences(zh, en, encoder)}
    assert set(expected) <= pairs


def test_literalness_tells_un_text_from_novels(shared_data, stone, encoder):
    zh, en, _ = unpc_document(shared_data, "001")
    un = gather_evidence(zh, en, encoder.encode(zh), encoder.encode(en))
    zh, en, _ = stone
    novel = gather_evidence(zh, en, encoder.encode(zh), encoder.encode(en))
    assert novel.literal < 0.6 < 0.68 < un.literal


def test_inner_sentence_ends():
    assert inner_end_count("西欧及其他国家成员二名。553. 拟编列经费10 600美元。", "zh") == 1
    assert inner_end_count("“你去吧。”他说。", "zh") == 0  # a closing quote ends nothing
    assert inner_end_count("553. An amount of $10,600 is proposed.", "en") == 0
    assert inner_end_count("IV. Mr. Smith met Ms. Jones in the U.S. Army.", "en") == 0
    assert inner_end_count("The Treaty has contributed to security. Note by the "
                           "Secretariat", "en") == 1
    assert inner_end_count("Adopted in 2014. 11. Adoption of the agenda.", "en") == 1


def test_un_lexical_keys():
    dictionary = load_dictionary()

    def zh_keys(text: str) -> set[str]:
        return set().union(*zh_units(text, dictionary))

    assert zh_numeral("六十九") == 69 and zh_numeral("二") == 2 and zh_numeral("十五") == 15
    assert zh_numeral("一百零五") == 105 and zh_numeral("第") is None
    assert en_number_word("Sixty-ninth") == 69 and en_number_word("twentieth") == 20
    assert en_number_word("two") == 2 and en_number_word("session") is None
    assert {"69"} <= zh_keys("第六十九届会议") and "69" in en_keys("Sixty-ninth session")
    assert "2" in zh_keys("西欧及其他国家成员二名。") and "2" in en_keys("Two members")
    assert "1" not in zh_keys("一些国家统一了立场")  # 一 inside ordinary words
    assert "5" in zh_keys("2015年5月18日") and "5" in en_keys("18 May 2015")
    assert "6" in zh_keys("六.与会者") and "6" in en_keys("VI. Participants")
    assert "(a)" in zh_keys("(a) 加强合作") and "(a)" in en_keys("(a) Strengthen cooperation")
    assert "b" in zh_keys("B.全球森林目标") and "b" in en_keys("B. Global objectives")
    assert un_keys("大会和安理会欢迎欧盟的决定", "zh") == [
        "un:General Assembly", "un:Security Council", "un:European Union"]
    assert un_keys("The General Assembly and the Security Council welcome the decision of "
                   "the EU and of Chad", "en") == [
        "un:General Assembly", "un:Security Council", "un:Chad"]
    # bodies of un_bodies.tsv; the longest name wins, so 缔约方大会 is not the General Assembly
    assert un_keys("缔约方大会请联检组和西亚经社会", "zh") == [
        "un:Conference of the Parties", "un:Joint Inspection Unit",
        "un:Economic and Social Commission for Western Asia"]
    assert un_keys("The Conference of the Parties asked the JIU and the Economic and Social "
                   "Commission for Western Asia", "en") == [
        "un:Conference of the Parties", "un:Joint Inspection Unit",
        "un:Economic and Social Commission for Western Asia"]
