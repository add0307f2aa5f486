"""Align a Chinese document with its English version into sentence pairs with provenance.

Record mode (meeting records): cut both versions into speaker turns, pair the turns
(``aligner.turn_align``), then align the sentences inside each pair of turns. Plain mode: align
the sentences of the whole documents. "auto" takes record mode when both versions have speaker
headings and falls back to plain mode, with a warning, when either has none.

All sentences are embedded in one batch first; the aligner's per-turn calls then find their
vectors in the encoder's memory cache.
"""

from __future__ import annotations

import numpy as np

from aligner import speakers
from aligner.align import align_sentences
from aligner.errors import InputError
from aligner.models import AlignmentResult, Document, SentencePair, Turn
from aligner.segment import join_segments, split_sentences
from aligner.turn_align import TurnPair, align_turns, turn_vectors
from aligner.turns import parse_turns

MODES = ("auto", "record", "plain")
MIN_HEADINGS = 2  # speech turns each version needs for record mode
CONFIDENT = 0.5  # a turn pair below this confidence is doubtful
MIN_CORRESPONDENCE = 0.5  # share of the text in confident turn pairs below which we warn


def align_documents(
    zh: Document,
    en: Document,
    *,
    mode: str = "auto",
    encoder=None,
    max_bead: int = 4,
) -> AlignmentResult:
    """Align ``zh`` with ``en``; ``mode`` is "auto", "record" or "plain"."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if zh.lang != "zh" or en.lang != "en":
        raise InputError("the first document must be Chinese and the second English")
    if encoder is None:
        from aligner.embed import load_encoder

        encoder = load_encoder()
    warnings: list[str] = []
    if mode != "plain":
        zh_turns, en_turns = parse_turns(zh), parse_turns(en)
        missing = [
            name
            for name, turns in (("Chinese", zh_turns), ("English", en_turns))
            if sum(t.kind == "speech" for t in turns) < MIN_HEADINGS
        ]
        if not missing:
            return _align_record(zh, en, zh_turns, en_turns, encoder, max_bead)
        sides = " and ".join(missing)
        warnings.append(
            f"no speaker headings found in the {sides} text: aligned sentence by sentence "
            "as plain text"
        )
    result = _align_plain(zh, en, encoder, max_bead)
    result.warnings[:0] = warnings
    return result


def _symbol(zh: Document, en: Document) -> str:
    return zh.symbol or en.symbol


def _align_plain(zh: Document, en: Document, encoder, max_bead: int) -> AlignmentResult:
    zh_sents = [s for p in zh.paragraphs for s in split_sentences(p, "zh")]
    en_sents = [s for p in en.paragraphs for s in split_sentences(p, "en")]
    beads = align_sentences(zh_sents, en_sents, encoder, max_bead=max_bead)
    result = AlignmentResult(pairs=[], mode="plain")
    symbol = _symbol(zh, en)
    for bead in beads:
        if bead.zh and bead.en:
            result.pairs.append(
                SentencePair(
                    zh=_join(zh_sents, bead.zh, "zh"),
                    en=_join(en_sents, bead.en, "en"),
                    score=bead.score,
                    zh_indices=bead.zh,
                    en_indices=bead.en,
                    document=symbol,
                )
            )
        else:
            result.unmatched_zh.extend(zh_sents[i] for i in bead.zh)
            result.unmatched_en.extend(en_sents[j] for j in bead.en)
    return result


def _join(sentences: list[str], indices: tuple[int, ...], lang: str) -> str:
    return join_segments([sentences[i] for i in indices], lang)


def _turn_sentences(turns: list[Turn], lang: str) -> tuple[list[list[str]], list[int]]:
    """Sentences of each turn, and the document index of each turn's first sentence."""
    per_turn = [[s for p in t.paragraphs for s in split_sentences(p, lang)] for t in turns]
    starts, total = [], 0
    for sents in per_turn:
        starts.append(total)
        total += len(sents)
    return per_turn, starts


def _align_record(
    zh: Document,
    en: Document,
    zh_turns: list[Turn],
    en_turns: list[Turn],
    encoder,
    max_bead: int,
) -> AlignmentResult:
    zh_sents, zh_starts = _turn_sentences(zh_turns, "zh")
    en_sents, en_starts = _turn_sentences(en_turns, "en")
    zh_flat = [s for sents in zh_sents for s in sents]
    en_flat = [s for sents in en_sents for s in sents]
    vectors = encoder.encode(zh_flat + en_flat)  # one batch; later calls hit the cache
    zh_vecs = _split_rows(vectors[: len(zh_flat)], zh_sents)
    en_vecs = _split_rows(vectors[len(zh_flat) :], en_sents)
    turn_pairs = align_turns(zh_turns, en_turns, turn_vectors(zh_vecs), turn_vectors(en_vecs))

    result = AlignmentResult(pairs=[], mode="record")
    correspondence = _correspondence(turn_pairs, zh_sents, en_sents)
    if correspondence < MIN_CORRESPONDENCE:
        result.warnings.append(
            f"the turns of the two versions do not correspond (only {correspondence:.0%} of "
            "the text is in confidently paired turns): they may be records of different "
            "meetings; pair scores are capped accordingly"
        )
    doubtful = [p for p in turn_pairs if p.zh is not None and p.en is not None]
    doubtful = [p for p in doubtful if p.confidence < CONFIDENT]
    if doubtful and correspondence >= MIN_CORRESPONDENCE:
        result.warnings.append(
            f"{len(doubtful)} turn pair(s) have low confidence: Chinese turns "
            + ", ".join(str(p.zh) for p in doubtful)
        )
    symbol = _symbol(zh, en)
    for pair in turn_pairs:
        if pair.zh is None or pair.en is None:
            if pair.zh is not None:
                result.unmatched_zh.extend(zh_sents[pair.zh])
            if pair.en is not None:
                result.unmatched_en.extend(en_sents[pair.en])
            continue
        cap = min(pair.confidence, correspondence) if (
            pair.confidence < CONFIDENT or correspondence < MIN_CORRESPONDENCE
        ) else 1.0
        zt, et = zh_turns[pair.zh], en_turns[pair.en]
        zs, es = zh_sents[pair.zh], en_sents[pair.en]
        zo, eo = zh_starts[pair.zh], en_starts[pair.en]
        for bead in align_sentences(zs, es, encoder, max_bead=max_bead):
            if not (bead.zh and bead.en):
                result.unmatched_zh.extend(zs[i] for i in bead.zh)
                result.unmatched_en.extend(es[j] for j in bead.en)
                continue
            result.pairs.append(
                SentencePair(
                    zh=_join(zs, bead.zh, "zh"),
                    en=_join(es, bead.en, "en"),
                    score=min(bead.score, cap),
                    zh_indices=tuple(zo + i for i in bead.zh),
                    en_indices=tuple(eo + j for j in bead.en),
                    document=symbol,
                    turn=pair.zh,
                    speaker=et.speaker or zt.speaker,
                    country=speakers.entity(et.country) or et.country or zt.country,
                    language=_delivery_language(zt, et),
                )
            )
    return result


def _split_rows(vectors: np.ndarray, groups: list[list[str]]) -> list[np.ndarray]:
    out, start = [], 0
    for group in groups:
        out.append(vectors[start : start + len(group)])
        start += len(group)
    return out


def _correspondence(
    pairs: list[TurnPair], zh_sents: list[list[str]], en_sents: list[list[str]]
) -> float:
    """Share of all text (characters, both versions, English weighted to Chinese) that lies in
    turn pairs of at least CONFIDENT confidence."""
    zh_len = [sum(len(s) for s in sents) for sents in zh_sents]
    en_len = [sum(len(s) for s in sents) for sents in en_sents]
    ratio = max(sum(zh_len), 1) / max(sum(en_len), 1)
    total = sum(zh_len) + ratio * sum(en_len)
    good = sum(
        zh_len[p.zh] + ratio * en_len[p.en]
        for p in pairs
        if p.zh is not None and p.en is not None and p.confidence >= CONFIDENT
    )
    return good / total if total else 0.0


def _delivery_language(zh: Turn, en: Turn) -> str:
    """Language of delivery in English ("English", "Arabic"), from whichever version states it."""
    return speakers.language(en.language) or speakers.language(zh.language) or (
        en.language or zh.language
    )
