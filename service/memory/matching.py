"""How segments are compared, as CAT tools do it: a normal form for matching only, placeables,
and the edit operations between a query and a stored segment.

Nothing here changes what is stored; lookups and concordance compare ``fold``-ed text.

- ``fold``: Unicode NFKC (full-width Latin letters, digits and punctuation become half-width:
  ``（2017）`` matches ``(2017)``), Chinese and Latin punctuation variants and quotes made one
  (``“”„「」`` → ``"``, ``‘’『』`` → ``'``, dashes → ``-``, ``、`` kept), whitespace collapsed
  (removed between Chinese characters, where it is never meaningful);
- ``placeables``: numbers (``1.29``, ``2,370``, ``1.29亿``'s number), dates (``2 August 2017``,
  ``2017年8月2日``), UN document symbols (``S/RES/2370 (2017)``, ``A/69/L.7``) and inline
  tags; a match whose placeables differ from the query's is flagged with the tokens that
  differ, and ``adapt`` puts the query's numbers into the stored target where the target
  holds the stored source's number once (as memoQ and Trados offer);
- ``edit_operations``: rapidfuzz opcodes between the query and the stored source, in
  character offsets of the texts as given, for highlighting.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

_PUNCT_MAP = (
    {
        "“": '"', "”": '"', "„": '"', "‟": '"', "「": '"', "」": '"', "〝": '"', "〞": '"',
        "‘": "'", "’": "'", "‚": "'", "‛": "'", "『": "'", "』": "'",
        "—": "-", "–": "-", "‒": "-", "―": "-", "－": "-", "‐": "-", "‑": "-",
        "〔": "(", "〕": ")", "【": "[", "】": "]", "〈": "<", "〉": ">", "《": "<", "》": ">",
        "。": ".", "｡": ".", "﹒": ".", "…": "...", "·": "·", "・": "·",
    }
)
# A regular expression finds the few variants a segment holds: ``str.translate`` looks every
# character up (about five times slower on Chinese, and every unit is folded on import).
_PUNCT = re.compile("[" + "".join(map(re.escape, _PUNCT_MAP)) + "]")


def _one_punct(match: re.Match) -> str:
    return _PUNCT_MAP[match.group()]


# Full-width ASCII (U+FF01-FF5E: Chinese text's commas, brackets, colons) is what keeps most
# Chinese segments from being NFKC already. Those characters decompose to one ASCII
# character each, so replacing them first leaves NFKC's result as it was, and a segment then
# found normalised (a fast check) skips the full normalisation, its costliest step.
_FULL_WIDTH = re.compile("[\uff01-\uff5e]")


def _half_width(match: re.Match) -> str:
    return chr(ord(match.group()) - 0xFEE0)


def _nfkc(text: str) -> str:
    text = _FULL_WIDTH.sub(_half_width, text)
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)

_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACE_NEAR_CJK = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")


def fold(text: str) -> str:
    """The form segments are matched in (never stored): NFKC, one form per punctuation
    variant and quote, whitespace collapsed and dropped next to Chinese characters."""
    if text.isascii():  # English mostly: NFKC and the variants change nothing
        return " ".join(text.split())
    text = " ".join(_PUNCT.sub(_one_punct, _nfkc(text)).split())
    return _SPACE_NEAR_CJK.sub("", text) if " " in text else text


def fold_case(text: str) -> str:
    """``fold`` and case folded: the form concordance searches in."""
    return fold(text).casefold()


# ------------------------------------------------------------------------ placeables

_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
)
_PLACEABLE = re.compile(
    r"(?P<symbol>(?<![A-Za-z0-9])(?:[ASE]|ST|CCPR|CEDAW|CRC|CERD|DP|UNEP|TD)(?:/[A-Z0-9.]+(?:\([^)\s]*\))?)+"
    r"(?:\s?\(\d{4}\))?)"
    rf"|(?P<date>\b\d{{1,2}} (?:{_MONTHS}) \d{{4}}\b|\d{{4}}年\d{{1,2}}月\d{{1,2}}日)"
    r"|(?P<number>\d+(?:[.,]\d+)*)"
)
_TAG = re.compile(r"\{/?\d+/?\}")


@dataclass(frozen=True)
class Placeable:
    kind: str  # "number", "date", "symbol" or "tag"
    text: str  # as written in the segment
    key: str  # the form compared (folded, thousands separators gone)
    start: int
    end: int


def placeables(text: str) -> list[Placeable]:
    """Numbers, dates, document symbols and ``{n}`` tag placeholders of a segment, in order."""
    out = []
    tags = list(_TAG.finditer(text))
    for m in tags:
        out.append(Placeable("tag", m.group(0), m.group(0), m.start(), m.end()))
    bare = _TAG.sub(lambda m: " " * len(m.group(0)), text) if tags else text
    for m in _PLACEABLE.finditer(bare):
        kind = m.lastgroup or "number"
        raw = m.group(0)
        key = fold(raw)
        if kind == "number":
            key = key.replace(",", "")
        out.append(Placeable(kind, raw, key, m.start(), m.end()))
    out.sort(key=lambda p: p.start)
    return out


def placeable_differences(query: str, stored: str) -> dict[str, list[str]]:
    """Placeables the query has and the stored segment lacks (``missing``) and the reverse
    (``extra``), each as written; both empty when they agree (order ignored)."""
    q = placeables(query)
    s = placeables(stored)
    s_keys = [p.key for p in s]
    q_keys = [p.key for p in q]
    missing = _minus(q, s_keys)
    extra = _minus(s, q_keys)
    return {"missing": missing, "extra": extra}


def _minus(items: list[Placeable], other_keys: list[str]) -> list[str]:
    left = list(other_keys)
    out = []
    for p in items:
        if p.key in left:
            left.remove(p.key)
        else:
            out.append(p.text)
    return out


def adapt(query: str, stored_source: str, stored_target: str) -> str | None:
    """The stored target with the query's numbers put in, where the stored source and the
    query differ only in numbers at the same places and each replaced number appears in
    the target once as written; None when that cannot be done safely."""
    q = [p for p in placeables(query) if p.kind == "number"]
    s = [p for p in placeables(stored_source) if p.kind == "number"]
    if len(q) != len(s) or not q:
        return None
    if _without(query, q) != _without(stored_source, s):
        return None
    target = stored_target
    changed = False
    for old, new in zip(s, q, strict=True):
        if old.key == new.key:
            continue
        alone = rf"(?<![\d.,]){re.escape(old.text)}(?![\d])"
        spots = [m.start() for m in re.finditer(alone, target)]
        if len(spots) != 1:
            return None
        target = target[: spots[0]] + new.text + target[spots[0] + len(old.text) :]
        changed = True
    return target if changed else None


def _without(text: str, items: list[Placeable]) -> str:
    out, last = [], 0
    for p in items:
        out += [text[last : p.start], "\x00"]
        last = p.end
    out.append(text[last:])
    return fold("".join(out))


# ------------------------------------------------------------------------ edit operations


def edit_operations(query: str, stored: str) -> list[dict]:
    """How to turn ``query`` into ``stored``: rapidfuzz opcodes (``equal``, ``replace``,
    ``insert``, ``delete``) with character ranges ``[q_start, q_end)`` in the query and
    ``[s_start, s_end)`` in the stored segment; equal stretches included, so a client can
    mark what differs."""
    return [
        {"op": op.tag, "q": [op.src_start, op.src_end], "s": [op.dest_start, op.dest_end]}
        for op in Levenshtein.opcodes(query, stored)
    ]
