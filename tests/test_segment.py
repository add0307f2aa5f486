"""Sentence splitting on real UN text (UNPC dev set, the Chinese record of S/PV.8017)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aligner.align.segment import split_paragraphs, split_sentences
from aligner.errors import InputError


def _lines(shared_data: Path, name: str) -> list[str]:
    return (shared_data / name).read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def unpc(shared_data: Path) -> dict[str, list[str]]:
    return {lang: _lines(shared_data, f"unpc-dev/{lang}.txt") for lang in ("en", "zh")}


def _with(lines: list[str], needle: str) -> str:
    """The one real line that contains needle."""
    found = [line.strip() for line in lines if needle in line]
    assert found, f"no line contains {needle!r}"
    return found[0]


# Real English sentences, each with an abbreviation, a decimal, a time or a resolution number.
EN_NEEDLES = [
    "Act No. 18561.",  # "190. Complaints ..." numbered paragraph, "No." before a number
    "(paras. 27-32).",
    "at 12.40 p.m.",
    "U.S. nor have we",
    "Ms. Dinić, Mr. Hunte",
    "(pp. 34-35)",
    "increased by 4.5 points",
    "(ibid., paras. 4 and 5).",
    "H.E. Mr. Abel",
    "St. Croix",
    "No. 14704-6",
    "Act No. 18246 (2007)",
    "as annex I.",
    "resolution 1325 (2000)",
    "average age, etc. but not",
    "Ms. Yoon had",
]
ZH_NEEDLES = [
    "第2118(2013)号决议",  # quoted clause with straight quotes, ends in 。"
    "8.7亿人",  # ends in a closing bracket after 。-less clause
    "高达16.3%，到2013年降至5.3%。",
    '"婴儿工厂"。',
    "30. 委员会满意地注意到",  # numbered paragraph
    "三.结论和建议",  # section heading, no full stop
]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_real_lines_are_not_split(unpc: dict[str, list[str]], lang: str) -> None:
    # Every UNPC line is one sentence (the corpus is sentence-aligned); plain sentencex cuts
    # about 850 of the 4,000 lines per language, mostly after list markers such as "51.".
    parts = [split_sentences(line, lang) for line in unpc[lang]]
    assert [p for p in parts if len(p) > 1] == []


def test_joined_english_sentences_come_back_exactly(unpc: dict[str, list[str]]) -> None:
    sentences = [_with(unpc["en"], needle) for needle in EN_NEEDLES]
    assert split_sentences(" ".join(sentences), "en") == sentences


def test_joined_chinese_sentences_come_back_exactly(unpc: dict[str, list[str]]) -> None:
    sentences = [_with(unpc["zh"], needle) for needle in ZH_NEEDLES]
    assert split_sentences("".join(sentences), "zh") == sentences


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_runs_of_real_sentences_are_recovered(unpc: dict[str, list[str]], lang: str) -> None:
    # Consecutive lines that end in sentence-final punctuation, five to a paragraph.
    final = re.compile(r"[.!?][\"”’)]*$" if lang == "en" else r"[。！？][”’」』）]*$")
    lines = [line.strip() for line in unpc[lang] if final.search(line.strip())]
    groups = [lines[i : i + 5] for i in range(0, len(lines) - 4, 5)]
    joiner = " " if lang == "en" else ""
    exact = sum(split_sentences(joiner.join(g), lang) == g for g in groups)
    # Misses left: table footnotes that start in lower case ("a Represents ...") and one
    # Chinese line that starts with "，"; plain sentencex gets 197 / 576 and 142 / 567.
    assert exact >= 0.98 * len(groups)


def test_nothing_is_lost_or_reordered(unpc: dict[str, list[str]]) -> None:
    for lang, joiner in (("en", " "), ("zh", "")):
        text = joiner.join(unpc[lang][:800])
        sentences = split_sentences(text, lang)
        assert all(s and s == s.strip() for s in sentences)
        assert re.sub(r"\s+", "", "".join(sentences)) == re.sub(r"\s+", "", text)


def test_chinese_record_keeps_numbers_and_symbols_whole(shared_data: Path) -> None:
    # The PDF text of S/PV.8017, one printed line per line: joined without any reflowing.
    text = "".join(line.strip() for line in _lines(shared_data, "un/S-PV-8017.zh.txt"))
    sentences = split_sentences(text, "zh")
    assert len(sentences) > 500
    assert all(re.search(r"[。！？][”’」』）)]*$", s) for s in sentences)
    assert not [s for s in sentences if re.match(r"[/）)”」』，、：]", s)]
    assert "安理会成员面前摆着文件S/2017/659，其中载有埃及提交的一项决议草案的案文。" in sentences
    assert "决议草案获得一致通过，成为第2370（2017）号决议。" in sentences
    assert any(s.endswith("。”（A/60/825，第46段）。") for s in sentences)
    assert any(s.startswith("安全理事会主席声明S/PRST/2015/24授权的") for s in sentences)
    # The PDF text has odd spaces inside numbers: "第1540\u2004 (2004)号".
    assert any(re.search(r"第1540\s+\(2004\)号和第2325\(2016\)号决议", s) for s in sentences)


@pytest.mark.parametrize(
    "text",
    [
        # Written in the style of the English record of S/PV.8017 (not available here).
        "Members of the Council have before them document S/2017/659, which contains the text "
        "of a draft resolution submitted by Egypt.",
        "The draft resolution has been adopted unanimously as resolution 2370 (2017).",
        "I refer to the presidential statement S/PRST/2015/24 and to resolution A/RES/70/291.",
        "The report of the Secretary-General (A/71/858) is before the Council.",
        "The record of the meeting is contained in document S/PV.8017.",
        "The meeting was called to order at 10.10 a.m.",
        "Mr. Fedotov, Mrs. Haley, Ms. Sison and Dr. Lee spoke, cf. para. 5 of doc. No. 3.",
        "Stocks fell by 3.5 per cent, i.e. less than expected, e.g. in the U.S. market.",
        "See Art. 5 of Vol. II, pp. 3-4, and paras. 7 and 8 of the letter of 15 Jan. 2017.",
        "The Committee met on 3 Feb. 2017 at 3 p.m. and again... on the next day.",
        "He then paused … and continued.",
        "12. The Council decides to remain seized of the matter.",
        "III. Conclusions and recommendations",
    ],
)
def test_english_exceptions_do_not_split(text: str) -> None:
    assert split_sentences(text, "en") == [text]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (
            "He said: “We agree.” Then he left.",
            ["He said: “We agree.”", "Then he left."],
        ),
        (
            'They called it "a turning point." It was.',
            ['They called it "a turning point."', "It was."],
        ),
        ("(See annex I.) The list follows.", ["(See annex I.)", "The list follows."]),
        (
            "The meeting rose at 12.15 p.m. The next meeting will be announced.",
            ["The meeting rose at 12.15 p.m.", "The next meeting will be announced."],
        ),
        (
            "It is set out in annex I. Likewise, annex II lists the members.",
            ["It is set out in annex I.", "Likewise, annex II lists the members."],
        ),
        (
            'It warned: "Controls must be tightened." (A/60/825, para. 46). We agree.',
            ['It warned: "Controls must be tightened." (A/60/825, para. 46).', "We agree."],
        ),
        (
            "Adopted at 10 a.m. 6. The Council agreed.",
            ["Adopted at 10 a.m.", "6. The Council agreed."],
        ),
        ("Is that so?! Yes.", ["Is that so?!", "Yes."]),
    ],
)
def test_english_sentence_ends(text: str, want: list[str]) -> None:
    assert split_sentences(text, "en") == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("他说：“我们同意。”然后离开了。", ["他说：“我们同意。”", "然后离开了。"]),
        ("他说：「好。」然后走了。", ["他说：「好。」", "然后走了。"]),
        ("『对！』他又说。", ["『对！』", "他又说。"]),
        ("（见附件。）下一句。", ["（见附件。）", "下一句。"]),
        (
            "安理会通过了决议(S/2017/659)。30. 委员会注意到。",
            ["安理会通过了决议(S/2017/659)。", "30. 委员会注意到。"],
        ),
        ("这是真的吗？！是的。", ["这是真的吗？！", "是的。"]),
        # An ellipsis ending a sentence takes no 。 (GB/T 15834), except before 等 or at a start.
        ("局势令人担忧……我们必须行动。", ["局势令人担忧……", "我们必须行动。"]),
        ("他说：“我们等着……”然后他走了。", ["他说：“我们等着……”", "然后他走了。"]),
        ("包括武器、弹药……等。", ["包括武器、弹药……等。"]),
        ("“……决定继续处理此案。”", ["“……决定继续处理此案。”"]),
        ("讨论会与独立专家A. de Zayas先生进行。", ["讨论会与独立专家A. de Zayas先生进行。"]),
        ("二．维护国际和平与安全", ["二．维护国际和平与安全"]),
    ],
)
def test_chinese_sentence_ends(text: str, want: list[str]) -> None:
    assert split_sentences(text, "zh") == want


def test_line_breaks_blank_text_and_whitespace() -> None:
    assert split_sentences("", "en") == []
    assert split_sentences("  \n\t \n", "zh") == []
    assert split_sentences("  First line\nsecond line.  Third one.  ", "en") == [
        "First line",
        "second line.",
        "Third one.",
    ]


def test_unknown_language_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unsupported language 'fr'"):
        split_sentences("Bonjour.", "fr")


def test_split_paragraphs_keeps_paragraph_indices() -> None:
    paragraphs = ["我们欢迎第2370（2017）号决议。它很重要。", "", "谢谢。"]
    assert split_paragraphs(paragraphs, "zh") == [
        (0, "我们欢迎第2370（2017）号决议。"),
        (0, "它很重要。"),
        (2, "谢谢。"),
    ]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_200000_character_line(unpc: dict[str, list[str]], lang: str) -> None:
    text = (" " if lang == "en" else "").join(unpc[lang])[:200_000]
    sentences = split_sentences(text, lang)
    assert len(sentences) > (800 if lang == "en" else 2500)
    assert re.sub(r"\s+", "", "".join(sentences)) == re.sub(r"\s+", "", text)


def test_a_long_line_of_short_sentences_is_split_everywhere() -> None:
    # sentencex gets long lines in chunks; no cut may be lost or added at a chunk edge.
    assert split_sentences("谢谢。" * 40_000, "zh") == ["谢谢。"] * 40_000
    assert split_sentences("Thank you. " * 20_000, "en") == ["Thank you."] * 20_000


def test_bundled_sample_pair_splits_as_written() -> None:
    samples = Path(__file__).resolve().parents[1] / "aligner" / "samples"
    counts = {}
    for lang in ("en", "zh"):
        paragraphs = (samples / f"sample.{lang}.txt").read_text(encoding="utf-8").splitlines()
        pairs = split_paragraphs(paragraphs, lang)
        counts[lang] = [sum(i == p for i, _ in pairs) for p in range(len(paragraphs))]
    # Paragraph 4: "We are ready to share ..., and we encourage ..." is two Chinese sentences.
    assert counts == {"en": [3, 4, 3, 3, 4], "zh": [3, 4, 3, 4, 4]}


def test_units_cut_chinese_sentences_at_semicolons_outside_quotations():
    from aligner.align.segment import split_units

    text = "首先，停火；第二，谈判；第三，和平。他说：“甲；乙。”一；二；三；四。"
    assert split_units(text, "zh") == [
        "首先，停火；", "第二，谈判；", "第三，和平。", "他说：“甲；乙。”", "一；二；三；四。"
    ]
    assert split_units("First; second. Third.", "en") == ["First; second.", "Third."]
