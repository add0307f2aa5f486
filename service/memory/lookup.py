"""A lookup: fuzzy and semantic candidates for a segment, made side by side and merged once.

The fuzzy index (:mod:`service.memory.fuzzy`) names the units within the fuzzy threshold; the
semantic index (:mod:`service.memory.semantic`), when on, gives their cosines and the units
nearest by meaning. :func:`lookup` merges the two: fuzzy matches first (ties broken by the
language variant asked for, then by meaning), then semantic-only ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aligner.markup import placeholder_text, strip_placeholders
from service.memory.fuzzy import FuzzyIndex, percent
from service.memory.matching import adapt, edit_operations, placeable_differences
from service.memory.store import StoredUnit, TMStore, lang_family, normalise_text

if TYPE_CHECKING:
    from service.memory.semantic import SemanticQuery

# Fuzzy candidates looked at, best first, to find ``limit`` that pass a document or speaker
# filter: a filter matching few units (with ``min_fuzzy`` 0) would otherwise fetch and test
# every unit of the memory (1.7 s at 100,000 units). Matches ranked below are not searched.
MAX_FILTERED_CANDIDATES = 2_000

# Lowest cosine for a semantic-only match by default: calibrated on UNPC-dev so that
# unrelated segments stay out (bench/semantic_threshold.py; docs/figures.md).
MIN_SEMANTIC = 0.68


@dataclass
class Match:
    """One lookup result; ``source`` is the unit's segment in the query's language."""

    unit: StoredUnit
    lang: str  # the query's language, "zh" or "en"
    fuzzy: int
    semantic: float | None
    kind: str
    ratio: float = 0.0
    query: str = ""  # the query as plain text

    def to_json(self) -> dict:
        """The match as the API gives it: segments with inline tags as numbered
        placeholders, the edit operations from the query to the stored source, and the
        placeables (numbers, dates, symbols, tags) that differ, with the target adapted to
        the query's numbers when that can be done safely."""
        u = self.unit
        other = "en" if self.lang == "zh" else "zh"
        same = lang_family(u.source_lang) == self.lang
        source, target = u.side(self.lang), u.side(other)
        differ = placeable_differences(self.query, source)
        flagged = bool(differ["missing"] or differ["extra"])
        return {
            "id": u.id,
            "version": u.version,
            "source": placeholder_text(u.runs(self.lang)),
            "target": placeholder_text(u.runs(other)),
            "source_plain": source,
            "target_plain": target,
            "source_lang": u.source_lang if same else u.target_lang,
            "target_lang": u.target_lang if same else u.source_lang,
            "fuzzy": self.fuzzy,
            "identical": self.query == source,
            # Cosine clipped to [0, 1]; null when semantic search is off.
            "semantic": None if self.semantic is None else round(min(1, max(0, self.semantic)), 4),
            "kind": self.kind,
            "edits": edit_operations(self.query, source),
            "placeables": {"differ": flagged, **differ},
            "adapted_target": adapt(self.query, source, target) if flagged else None,
            "document": u.document,
            "speaker": u.speaker,
            "props": u.props,
            "attrs": u.attrs,
            "creationdate": u.creationdate,
            "origin": u.origin,
        }


def same_text(a: str, b: str) -> bool:
    """Whether two segments are the same text to the encoder (which normalises them so)."""
    return a == b or normalise_text(a) == normalise_text(b)


def _passes(unit: StoredUnit, document: str | None, speaker: str | None) -> bool:
    return (document is None or unit.document == document) and (
        speaker is None or unit.speaker == speaker
    )


def _variant_rank(unit: StoredUnit, lang: str, want_source: str, want_target: str) -> int:
    """0 when the unit's languages are the variants asked for, more the fewer agree."""
    same = lang_family(unit.source_lang) == lang
    src, tgt = unit.source_lang, unit.target_lang
    if not same:
        src, tgt = tgt, src
    rank = 0
    if "-" in want_source and src.lower() != want_source.lower():
        rank += 2
    if want_target and "-" in want_target and tgt.lower() != want_target.lower():
        rank += 1
    return rank


def _fuzzy_candidates(
    store: TMStore, fuzzy: FuzzyIndex, text: str, lang: str, min_fuzzy: int, limit: int,
    document: str | None, speaker: str | None,
) -> list[tuple[StoredUnit, float]]:
    """(unit, ratio) of the units at or above ``min_fuzzy`` that pass the filters, best first:
    unfiltered, a few more than asked for, so that meaning and variants can break ties."""
    filtered = document is not None or speaker is not None
    most = MAX_FILTERED_CANDIDATES if filtered else limit * 4
    ranked = fuzzy.search(text, lang, min_fuzzy / 100, most)
    found: list[tuple[StoredUnit, float]] = []
    step = max(limit * 4, 20)
    for pos in range(0, len(ranked), step):
        part = ranked[pos : pos + step]
        units = store.get(i for _, i in part)
        found += [
            (units[uid], ratio)
            for ratio, uid in part
            if uid in units and _passes(units[uid], document, speaker)
        ]
        if not filtered or len(found) >= limit:
            break
    return found


def _semantic_candidates(
    semantic: SemanticQuery, store: TMStore, text: str, lang: str,
    fuzzy_hits: list[tuple[StoredUnit, float]], k: int, min_semantic: float,
    document: str | None, speaker: str | None,
) -> tuple[dict[int, float], list[tuple[StoredUnit, float]]]:
    """The cosines of the fuzzy hits, and (unit, cosine) of the ``k`` nearest units by
    meaning that are not among them, above ``min_semantic`` and passing the filters."""
    for unit, ratio in fuzzy_hits:
        if ratio >= 1.0 and same_text(unit.side(lang), text):
            semantic.same_as(unit.id)  # its stored vector spares embedding the query
            break
    sims = semantic.similarities([u.id for u, _ in fuzzy_hits]) if fuzzy_hits else {}
    if k <= 0:
        return sims, []
    seen = {u.id for u, _ in fuzzy_hits}
    wanted = [(u, sim) for u, sim in semantic.hits(k) if u not in seen and sim >= min_semantic]
    units = store.get(uid for uid, _ in wanted)
    near = [(units[uid], sim) for uid, sim in wanted if uid in units]
    return sims, [(u, s) for u, s in near if _passes(u, document, speaker)]


def lookup(
    store: TMStore,
    fuzzy: FuzzyIndex,
    text: str,
    lang: str,
    *,
    limit: int = 5,
    min_fuzzy: int = 70,
    semantic: SemanticQuery | None = None,
    min_semantic: float = 0.0,
    document: str | None = None,
    speaker: str | None = None,
    target_lang: str = "",
) -> list[Match]:
    """Best matches for ``text``: fuzzy ones (≥ ``min_fuzzy``) first, then semantic-only ones.

    ``lang`` is the query's language, a primary subtag (``zh``) or a variant (``en-GB``):
    matches come from units holding that language, and among equal scores those in the
    variant asked for (and in ``target_lang``'s variant) come first. Numbered placeholders
    in the query (``{1}``) are ignored, as the stored segments' tags are.
    ``semantic`` (None when semantic search is off) gives the cosine of fuzzy hits and the
    nearest units by meaning. Filters by document and speaker apply to both kinds.
    """
    want = lang
    lang = lang_family(lang)
    text = strip_placeholders(text).strip()
    by_form = _fuzzy_candidates(store, fuzzy, text, lang, min_fuzzy, limit, document, speaker)
    sims: dict[int, float] = {}
    by_meaning: list[tuple[StoredUnit, float]] = []
    if semantic is not None:
        filtered = document is not None or speaker is not None
        wanted = 0 if len(by_form) >= limit else limit * (20 if filtered else 4)
        sims, by_meaning = _semantic_candidates(
            semantic, store, text, lang, by_form, wanted, min_semantic, document, speaker
        )
    # The merge. Among equal fuzzy ratios: the variant asked for, then the closer meaning.
    by_form.sort(
        key=lambda hit: (
            -hit[1],
            _variant_rank(hit[0], lang, want, target_lang),
            -sims.get(hit[0].id, 0.0),
            hit[0].id,
        )
    )
    matches = [
        Match(unit, lang, percent(ratio), sims.get(unit.id), "fuzzy", ratio, text)
        for unit, ratio in by_form[:limit]
    ]
    extra = by_meaning[: limit - len(matches)]
    ratios = fuzzy.score(text, lang, [u.side(lang) for u, _ in extra])
    for (unit, sim), ratio in zip(extra, ratios, strict=True):
        matches.append(Match(unit, lang, percent(ratio), sim, "semantic", ratio, text))
    return matches
