"""What each view of the memory shows, as plain data: the JSON routes and the pages both call
these and differ only in how they render the answer."""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aligner.markup import placeholder_text, strip_placeholders
from service.errors import ServiceError
from service.memory.fuzzy import LANGS
from service.memory.lookup import MIN_SEMANTIC, lookup
from service.memory.matching import fold_case
from service.memory.store import StoredUnit, lang_family
from service.memory.tm import Memory

_WORD = re.compile(r"\w")
COUNT_CAP = 10_000  # concordance totals are exact up to this many units, then "more than"


@dataclass(frozen=True)
class LookupQuery:
    """A segment to look up and how (the API's ``LookupRequest`` without its schema)."""

    text: str
    source_lang: str
    target_lang: str | None = None
    limit: int = 5
    min_fuzzy: int = 70
    semantic: bool = True
    min_semantic: float = MIN_SEMANTIC
    document: str | None = None
    speaker: str | None = None


def check_segment(text: str, max_chars: int) -> None:
    if len(text) > max_chars:
        raise ServiceError(
            422, "segment_too_long", f"segment of {len(text)} characters; the limit is {max_chars}"
        )


def lookup_view(memory: Memory, q: LookupQuery, max_chars: int) -> Callable[[], dict]:
    """Check ``q`` and register its semantic side now, so that the lookups queued meanwhile
    are embedded in one batch; the function returned finds ``{"matches": [...]}``, best
    first (blocking: run it off the event loop)."""
    check_segment(q.text, max_chars)
    plain = strip_placeholders(q.text).strip()
    if not plain:
        raise ServiceError(422, "invalid_request", "text: the segment is blank")
    sem = memory.semantic
    query = None
    if q.semantic and sem is not None and len(sem):
        query = sem.query(plain, lang_family(q.source_lang))

    def run() -> dict:
        matches = lookup(
            memory.store,
            memory.fuzzy,
            q.text,
            q.source_lang,
            limit=q.limit,
            min_fuzzy=q.min_fuzzy,
            semantic=query,
            min_semantic=q.min_semantic,
            document=q.document,
            speaker=q.speaker,
            target_lang=q.target_lang or "",
        )
        return {"matches": [m.to_json() for m in matches]}

    return run


@functools.lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    return fold_case(ch) or ch


def _char_fold(text: str, lang: str) -> tuple[str, list[int]]:
    """``text`` folded character by character (width, punctuation, case; whitespace collapsed,
    dropped in Chinese) with, for each folded character, the index it came from."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch.isspace():
            if lang == "zh" or (out and out[-1] == " "):
                continue
            piece = " "
        else:
            piece = _fold_char(ch)
        out.append(piece)
        where.extend([i] * len(piece))
    return "".join(out), where


def find_hits(text: str, term: str, lang: str, whole_word: bool = False) -> list[list[int]]:
    """Where ``term`` occurs in ``text``, width and case ignored, as [start, end) spans of
    ``text``; ``whole_word``: only where it is not part of a longer word (English)."""
    needle, _ = _char_fold(term.strip(), lang)
    if not needle:
        return []
    hay, where = _char_fold(text, lang)
    spans, start = [], hay.find(needle)
    while start >= 0:
        end = start + len(needle)
        if not whole_word or lang != "en" or (
            (start == 0 or not _WORD.match(hay[start - 1]))
            and (end == len(hay) or not _WORD.match(hay[end]))
        ):
            spans.append([where[start], where[end - 1] + 1])
        start = hay.find(needle, start + 1 if whole_word else end)
    return spans


def _marked(text: str, spans: list[list[int]]) -> str:
    out, last = [], 0
    for start, end in spans:
        if start < last:
            continue
        out += [html.escape(text[last:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


def concordance_data(
    memory: Memory,
    term: str,
    lang: str | None,
    limit: int,
    offset: int,
    *,
    whole_word: bool = False,
    document: str | None = None,
    speaker: str | None = None,
    with_total: bool = False,
) -> dict:
    """Units whose source or target holds ``term`` (width and case ignored; ``whole_word``:
    English words only whole), one page of them with the hits as spans and marked HTML;
    ``with_total``: and how many there are in all (``total``, exact up to ``COUNT_CAP``,
    ``total_capped`` when there are more), which means reading every matching unit."""
    # The fuzzy index names the few units a rare term can be in; without it, finding
    # that it is in none meant reading every unit (0.9 s at 1,000,000 units).
    indexed = memory.fuzzy.max_id
    found = [memory.fuzzy.containing(term, side) for side in ((lang,) if lang else LANGS)]
    among = None
    if all(ids is not None for ids in found):
        among = functools.reduce(np.union1d, found)
        among = among[among <= indexed]

    match = None
    if whole_word:  # the store finds the term inside words too; English needs it whole
        word = re.compile(rf"(?<!\w){re.escape(fold_case(term.strip()))}(?!\w)")

        def match(text: str, side: str) -> bool:
            folded = fold_case(text)
            return bool(word.search(folded)) if side == "en" else fold_case(term) in folded

    units, total = memory.store.concordance(
        term, lang, limit=limit, offset=offset, among=among, after=indexed,
        match=match, document=document, speaker=speaker, count=COUNT_CAP if with_total else 0,
    )
    out = []
    for unit in units:
        entry = {"id": unit.id, "source_lang": unit.source_lang, "target_lang": unit.target_lang}
        for role, code in (("source", unit.source_lang), ("target", unit.target_lang)):
            side = lang_family(code)
            text = unit.side(side)
            spans = find_hits(text, term, side, whole_word) if lang in (None, side) else []
            entry[role] = text
            entry[f"{role}_hits"] = spans
            entry[f"{role}_marked"] = _marked(text, spans)
        entry.update(document=unit.document, speaker=unit.speaker, props=unit.props)
        out.append(entry)
    answer = {"term": term, "offset": offset, "limit": limit, "units": out}
    if with_total:
        answer.update(total=min(total, COUNT_CAP), total_capped=total > COUNT_CAP)
    return answer


def unit_data(unit: StoredUnit) -> dict:
    """A unit as the API shows it: segments as placeholder text and as runs, its version."""
    return {
        "id": unit.id,
        "version": unit.version,
        "zh": placeholder_text(unit.runs("zh")),
        "en": placeholder_text(unit.runs("en")),
        "zh_plain": unit.zh,
        "en_plain": unit.en,
        "source_lang": unit.source_lang,
        "target_lang": unit.target_lang,
        "props": unit.props,
        "attrs": unit.attrs,
        "tuid": unit.tuid,
        "document": unit.document,
        "speaker": unit.speaker,
        "creationdate": unit.creationdate,
        "creationid": unit.creationid,
        "created_at": unit.created_at,
        "origin": unit.origin,
        "import_id": unit.import_id,
    }


def stats_data(memory: Memory) -> dict:
    """Size of the memory and the state of its indexes."""
    stats = memory.store.stats()
    stats["fuzzy_index"] = {"units": len(memory.fuzzy)}
    stats["semantic_index"] = memory.semantic.stats() if memory.semantic is not None else None
    return stats
