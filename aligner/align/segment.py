"""Sentence splitting for Chinese and English UN text.

sentencex proposes the cuts (plus a few it misses, such as "。30. 委员会"); a UN exception list
then drops the false ones: abbreviations and initials ("Mr.", "para. 5", "A. de Zayas"), list
markers ("51.", "III.", "三."), English ellipses, citations after a quotation, and any cut that
does not follow sentence-final punctuation. Closing quotes and brackets stay with the sentence
they end (“…。”, "…?)"). Each check looks at a bounded window around a cut and sentencex gets
long lines in chunks, so time grows linearly with the text. A line break is always a boundary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import accumulate

from sentencex import segment

from aligner.errors import InputError

LANGS = ("zh", "en")

_QUOTES = "\"'“”‘’「」『』（）()[]【】《》〔〕«»"
# sentencex never cuts between paired quotes or brackets, so one stray quote in a long record
# hides every cut after it; it also cuts before "(a)" and "2014)". It gets them as spaces
# (same length, so offsets hold) and the cuts are then settled around them.
_MASK = str.maketrans(dict.fromkeys(_QUOTES, " "))
# sentencex's time grows with the square of the number of sentences it gets at once (Chinese
# text of very short sentences), so a long line goes to it in chunks of about this length.
_CHUNK = 5000
_CHUNK_END = re.compile(r"[\s。！？]")
_CLOSERS = frozenset("\"'”’」』）)]】》〕»")
_WINDOW = 60  # characters of context each side of a cut
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_ZH_WORD_BEFORE_ELLIPSIS = re.compile(r"[\u3400-\u9fff\w]…+$")
# Cuts sentencex misses (each is then vetted like its own):
_EXTRA = {
    "zh": re.compile(r"[。！？]|…+"),  # "。30. 委员会"; an ellipsis with no 。 ends a sentence
    "en": re.compile(
        r"[.!?][\"”’)\]]*(?=\s+(?:\d{1,4}|[IVX]{1,5})\.\s+[A-Z])"  # "at 10 a.m. 6. In-session"
        r"|(?<=[\"”’)\]])[.!?](?=\s)"  # "under agenda item 26 (b). The"
        r"|\s[IVX]{1,5}\.(?=\s+[A-Z])"  # "shown in annex I. Likewise"
    ),
}
_FOOTNOTE = re.compile(r"\s?\[\d{1,3}\]")  # "planning.[23]" keeps its footnote reference
# A citation that follows a quotation belongs to its sentence: ”（A/60/825，第46段）。
_CITATION = re.compile(r"[(（][^()（）]{1,50}[)）][.。]")
_LIST_START = re.compile(r"(?:\d{1,4}|[IVX]{1,5})\.\s")

_FINAL = {"en": re.compile(r"(?:[.!?]|…)$"), "zh": re.compile(r"(?:[。！？!?]|…)$")}
# A piece that is only a list or section marker: "51.", "III.", "B.", "(a)", "二.", "第五节．".
_MARKER = re.compile(
    r"\s*[(（]?(?:\d{1,4}(?:\.\d{1,3})*|[IVXLCivxlc]{1,6}|[A-Za-z]"
    r"|第?[一二三四五六七八九十百]{1,4}[章节条部分]?)[.．)）]\s*"
)

# Never end an English sentence: titles before a name, Latin abbreviations.
_ALWAYS = frozenset(
    "mr mrs ms messrs mmes dr prof h.e st gen col lt capt sr amb hon doc e.g i.e cf viz vs "
    "approx incl resp al".split()
)
# Do not end a sentence when a number, a roman numeral or a document symbol follows.
_BEFORE_NUMBER = frozenset(
    "no nos para paras art arts vol vols p pp ch chap chaps sect sec secs fig figs op ibid "
    "suppl add corr rev ref tel ext reg regs sched "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
_NUMBER_START = re.compile(r"\d|[IVXLC]+\b|[A-Z]{1,6}/|\(")
# Words that start a sentence after an ambiguous "U.S." or "p.m." or an initial.
_STARTERS = frozenset(
    "the this these that those it its in on at as for he she they we i there however a an "
    "such our his her their if when while since after before although moreover furthermore "
    "accordingly finally also all each no one some".split()
)
_LAST_TOKEN = re.compile(r"([^\s/\-–—]*)\.$")
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")
_FIRST_WORD = re.compile(r"[A-Za-z]+")


def split_sentences(text: str, lang: str) -> list[str]:
    """Split text into stripped, non-empty sentences; every line break is a boundary."""
    if lang not in LANGS:
        raise InputError(f"unsupported language {lang!r}: expected one of {', '.join(LANGS)}")
    sentences: list[str] = []
    for line in text.splitlines():
        if line.strip():
            sentences.extend(_split_line(line, lang))
    return sentences


# Where a Chinese sentence may end when the English makes sentences there: after a ；
# outside quotation marks and brackets. The aligner decides: pieces it pairs with one English
# sentence are joined again (``join_segments``), pieces it pairs apart stay apart.
_SOFT_END = {"zh": "；"}
_OPENERS, _CLOSERS_OF = "“‘（(《「『【〔", "”’）)》」』】〕"
MAX_PIECES = 3  # a sentence with more soft ends is not cut (a bead holds at most 4 units)


def split_units(text: str, lang: str) -> list[str]:
    """The units the aligner pairs: the sentences of ``split_sentences``, a Chinese one also
    cut after each ``；`` outside quotation marks and brackets (when that gives at most
    ``MAX_PIECES`` pieces)."""
    units: list[str] = []
    for sentence in split_sentences(text, lang):
        units.extend(_soft_pieces(sentence, _SOFT_END.get(lang, "")))
    return units


def _soft_pieces(sentence: str, ends: str) -> list[str]:
    if not ends:
        return [sentence]
    cuts, depth = [], 0
    for k, ch in enumerate(sentence):
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS_OF:
            depth = max(0, depth - 1)
        elif ch in ends and depth == 0 and sentence[k + 1 :].strip():
            cuts.append(k + 1)
    if not cuts or len(cuts) >= MAX_PIECES:
        return [sentence]
    bounds = [0, *cuts, len(sentence)]
    pieces = [sentence[a:b].strip() for a, b in zip(bounds, bounds[1:], strict=False)]
    return [p for p in pieces if p]


def split_paragraphs(paragraphs: Iterable[str], lang: str) -> list[tuple[int, str]]:
    """Split each paragraph into sentences: (paragraph index, sentence) in document order."""
    return [(i, s) for i, p in enumerate(paragraphs) for s in split_sentences(p, lang)]


def _split_line(line: str, lang: str) -> list[str]:
    cuts = set(_sentencex_cuts(line.translate(_MASK), lang))
    cuts.update(m.end() for m in _EXTRA[lang].finditer(line))
    # Straight quotes open and close alike: their count since the sentence start tells which.
    quotes = list(accumulate((ch == '"' for ch in line), initial=0))

    sentences: list[str] = []
    start, last = 0, len(line.rstrip())
    for candidate in sorted(cuts):
        end, cut = _settle(line, start, candidate, quotes)
        if start < cut < last and _is_boundary(line, start, end, cut, lang):
            sentences.append(line[start:cut])
            start = cut
    sentences.append(line[start:])
    return [s for s in (s.strip() for s in sentences) if s]


def _sentencex_cuts(masked: str, lang: str) -> Iterable[int]:
    start = 0
    while start < len(masked):
        limit = min(len(masked), start + 2 * _CHUNK)
        found = _CHUNK_END.search(masked, start + _CHUNK, limit)
        end = found.end() if found else limit
        pos = start
        for piece in segment(lang, masked[start:end]):
            pos += len(piece)
            yield pos
        start = end


def _settle(line: str, start: int, cut: int, quotes: list[int]) -> tuple[int, int]:
    """Back to the punctuation a cut follows (end), then forward over the closers after it."""
    end = cut
    while end > start and (line[end - 1].isspace() or line[end - 1] in _QUOTES):
        end -= 1
    cut = end
    while cut < len(line) and line[cut] in _CLOSERS:
        if line[cut] == '"' and (quotes[cut] - quotes[start]) % 2 == 0:
            break  # an opening quote
        cut += 1
    footnote = _FOOTNOTE.match(line, cut)
    return end, footnote.end() if footnote else cut


def _is_boundary(line: str, start: int, end: int, cut: int, lang: str) -> bool:
    left = line[max(start, end - _WINDOW) : end]
    right = line[cut : cut + _WINDOW].lstrip()
    if not _FINAL[lang].search(left) or right[:1] in ",;:，、；：。！？!?…":
        return False
    if _MARKER.fullmatch(line, start, end) or _CITATION.match(right):
        return False
    if lang == "zh":
        if left.endswith("…"):  # "担忧……我们", but not "武器……等" or "“……决定"
            return bool(_ZH_WORD_BEFORE_ELLIPSIS.search(left)) and right[:1] != "等"
        # An ASCII full stop ends a Chinese sentence only in a passage without Chinese.
        return not left.endswith((".", "．")) or not _CJK.search(left)
    return _english_boundary(left, right)


def _english_boundary(left: str, right: str) -> bool:
    if left.endswith(("...", "…")) or right[:1].islower():
        return False
    if not left.endswith("."):
        return True
    match = _LAST_TOKEN.search(left)
    word = match.group(1).lstrip("\"'“‘([") if match else ""
    token = word.lower()
    if token in _ALWAYS:
        return False
    if token in _BEFORE_NUMBER and _NUMBER_START.match(right):
        return False
    first = _FIRST_WORD.match(right)
    starter = bool(_LIST_START.match(right)) or bool(first and first.group().lower() in _STARTERS)
    if len(word) == 1 and word.isupper() and word not in "IVX":
        return starter  # an initial: "A. de Zayas", "John F. Kennedy"
    if token in ("a.m", "p.m"):
        return True  # "The meeting rose at 12.15 p.m." (a lower-case word was handled above)
    if _DOTTED.fullmatch(token):
        return starter  # "the U.S. Government", but "from the U.S. The"
    return True


def join_segments(sentences: Sequence[str], lang: str) -> str:
    """Join the sentences of a 1–n bead the way the language writes them.

    Chinese sentences follow each other with no space; English (and other languages written
    with spaces) get exactly one space between sentences. ``lang`` may be a code like "zh-CN".
    """
    parts = [s.strip() for s in sentences if s and s.strip()]
    primary = lang.lower().replace("_", "-").split("-")[0]
    return ("" if primary == "zh" else " ").join(parts)
