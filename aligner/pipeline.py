"""Align a Chinese document with its English version into sentence pairs with provenance.

Record mode (meeting records): cut both versions into speaker turns, pair the turns
(``aligner.record.turn_align``), then align the sentences inside each pair of turns. Where the
turns do not pair one to one (a heading missed or added on one side, a speech split in two, a
doubtful pair), the sentences of the whole run of turns, with the confident pairs on either side
of it, are aligned together, so no speech is lost for want of a counterpart turn. Plain mode:
align the sentences of the whole documents. "auto" takes record mode when both versions have
speaker headings and falls back to plain mode, with a warning, when either has none. Two records
whose turns do not correspond at all (different meetings) are refused.

Nothing is lost on the way: every letter and digit of the paragraphs read is in a heading, a
language note or exactly one sentence, and every sentence in exactly one bead (checked on every
pair; TextLostError otherwise). ``left_out`` lists what the memory will not get: unpaired
sentences, pairs below the threshold, and the page furniture the reader dropped.

Each pair's score is refitted in context (``aligner.align.confidence``: its neighbours and
its length fit) before the threshold applies. All sentences are embedded in one batch first; the
aligner's per-block calls then find their vectors in the encoder's memory cache.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np

from aligner.align.confidence import rescore
from aligner.align.segment import join_segments, split_units
from aligner.align.sentence_align import align_sentences
from aligner.errors import InputError, TextLostError
from aligner.models import (
    AlignmentResult,
    Bead,
    Document,
    SentencePair,
    Turn,
    TurnLink,
    Unmatched,
)
from aligner.record import speakers
from aligner.record.turn_align import TurnPair, align_turns, turn_vectors
from aligner.record.turns import check_turns, letters, parse_turns

MODES = ("auto", "record", "plain")
MIN_HEADINGS = 2  # speech turns each version needs for record mode
CONFIDENT = 0.5  # a turn pair below this confidence is doubtful
MIN_CORRESPONDENCE = 0.5  # share of the text in confident turn pairs below which we refuse
BALANCE_GAIN = 0.15  # how much closer (log length ratio) a lone turn must bring its neighbour


def confident_pairs(
    pairs: list[SentencePair], min_score: float
) -> tuple[list[SentencePair], list[str]]:
    """The pairs scoring at least ``min_score`` (what goes into a memory), and a warning when
    most score below it: the two texts are then probably not translations of each other."""
    kept = [p for p in pairs if p.score >= min_score]
    warnings = []
    if pairs and len(kept) < len(pairs) / 2:
        warnings.append(
            "most pairs score below the threshold: are these texts translations of each other?"
        )
    return kept, warnings


def align_documents(
    zh: Document,
    en: Document,
    *,
    mode: str = "auto",
    encoder=None,
    max_bead: int = 4,
) -> AlignmentResult:
    """Align ``zh`` with ``en``; ``mode`` is "auto", "record" or "plain".

    Raises InputError when the two are records whose turns do not correspond (different
    meetings) and TextLostError if any text was lost on the way (a bug).
    """
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if zh.lang != "zh" or en.lang != "en":
        raise InputError("the first document must be Chinese and the second English")
    if encoder is None:
        from aligner.align.embed import load_encoder

        encoder = load_encoder()
    warnings: list[str] = []
    result = None
    if mode != "plain":
        zh_turns, en_turns = parse_turns(zh), parse_turns(en)
        missing = [
            name
            for name, turns in (("Chinese", zh_turns), ("English", en_turns))
            if sum(t.kind == "speech" for t in turns) < MIN_HEADINGS
        ]
        if not missing:
            check_turns(zh, zh_turns)
            check_turns(en, en_turns)
            result = _align_record(zh, en, zh_turns, en_turns, encoder, max_bead)
        else:
            sides = " and ".join(missing)
            warnings.append(
                f"no speaker headings found in the {sides} text: aligned sentence by sentence "
                "as plain text"
            )
    if result is None:
        result = _align_plain(zh, en, encoder, max_bead)
    result.warnings[:0] = warnings
    result.removed = {"zh": list(zh.removed), "en": list(en.removed)}
    return result


def _symbol(zh: Document, en: Document) -> str:
    return zh.symbol or en.symbol


def _sentences(paragraphs: list[str], lang: str) -> list[str]:
    """The units aligned: sentences, Chinese ones also cut at ``；`` (``split_units``)."""
    return [s for p in paragraphs for s in split_units(p, lang)]


def _align_plain(zh: Document, en: Document, encoder, max_bead: int) -> AlignmentResult:
    zh_sents = _sentences(zh.paragraphs, "zh")
    en_sents = _sentences(en.paragraphs, "en")
    check_sentences(zh.source or "zh", zh.paragraphs, zh_sents)
    check_sentences(en.source or "en", en.paragraphs, en_sents)
    beads = rescore(align_sentences(zh_sents, en_sents, encoder, max_bead=max_bead), zh_sents,
                    en_sents)
    beads = absorb_clauses(beads, zh_sents, en_sents)
    check_beads(beads, len(zh_sents), len(en_sents))
    result = AlignmentResult(
        pairs=[], mode="plain", sentences={"zh": len(zh_sents), "en": len(en_sents)}
    )
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
            result.unmatched.extend(Unmatched("zh", i, zh_sents[i]) for i in bead.zh)
            result.unmatched.extend(Unmatched("en", j, en_sents[j]) for j in bead.en)
    _fill_unmatched_lists(result)
    return result


_CLAUSE_END = {"zh": ("；", "：", ":"), "en": (":",)}


def absorb_clauses(beads: list[Bead], zh: list[str], en: list[str]) -> list[Bead]:
    """Give an unpaired clause back to its sentence: a unit left alone that ends with ``；`` or
    ``：`` (a soft cut, or a line ending ``我再说一遍：``) joins the pair that starts with the
    unit after it; one that follows such a clause joins the pair that ends with it. Where the
    other version makes sentences at those marks, the aligner paired the pieces apart and
    nothing changes."""
    units = {"zh": zh, "en": en}
    out = list(beads)
    k = 0
    while k < len(out):
        bead = out[k]
        lone = [(lang, idx) for lang, idx in (("zh", bead.zh), ("en", bead.en)) if idx]
        if len(lone) != 1 or len(lone[0][1]) != 1:
            k += 1
            continue
        lang, (i,) = lone[0]
        ends = _CLAUSE_END[lang]
        side = (lambda b: b.zh) if lang == "zh" else (lambda b: b.en)
        after = out[k + 1] if k + 1 < len(out) else None
        before = out[k - 1] if k else None
        follows_clause = i > 0 and units[lang][i - 1].endswith(ends)
        if units[lang][i].endswith(ends) and _paired(after) and side(after)[0] == i + 1:
            out[k : k + 2] = [_extend(after, lang, (i, *side(after)))]
        elif follows_clause and _paired(before) and side(before)[-1] == i - 1:
            out[k - 1 : k + 1] = [_extend(before, lang, (*side(before), i))]
            k -= 1
        else:
            k += 1
    return out


def _paired(bead: Bead | None) -> bool:
    return bead is not None and bool(bead.zh) and bool(bead.en)


def _extend(bead: Bead, lang: str, indices: tuple[int, ...]) -> Bead:
    if lang == "zh":
        return Bead(indices, bead.en, bead.score)
    return Bead(bead.zh, indices, bead.score)


def _join(sentences: list[str], indices: tuple[int, ...], lang: str) -> str:
    return join_segments([sentences[i] for i in indices], lang)


def check_sentences(source: str, paragraphs: list[str], sentences: list[str]) -> None:
    """Raise TextLostError unless the sentences hold the paragraphs' letters and digits, in
    order, each exactly once."""
    read, cut = letters("".join(paragraphs)), letters("".join(sentences))
    if read == cut:
        return
    at = next((k for k, (a, b) in enumerate(zip(read, cut, strict=False)) if a != b), None)
    at = min(len(read), len(cut)) if at is None else at
    raise TextLostError(
        f"{source}: cutting into sentences changed the text at letter {at}: "
        f"read {read[max(0, at - 10) : at + 20]!r}, sentences have "
        f"{cut[max(0, at - 10) : at + 20]!r}"
    )


def check_beads(beads: list[Bead], n_zh: int, n_en: int) -> None:
    """Raise TextLostError unless every sentence index of both sides is in exactly one bead."""
    for side, n, seen in (
        ("Chinese", n_zh, Counter(i for b in beads for i in b.zh)),
        ("English", n_en, Counter(j for b in beads for j in b.en)),
    ):
        missing = [k for k in range(n) if seen[k] != 1]
        extra = [k for k in seen if not 0 <= k < n]
        if missing or extra:
            raise TextLostError(
                f"{side} sentences not in exactly one bead: {(missing + extra)[:10]}"
            )


def _turn_sentences(turns: list[Turn], lang: str) -> tuple[list[list[str]], list[int]]:
    """Sentences of each turn, and the document index of each turn's first sentence."""
    per_turn = [_sentences(t.paragraphs, lang) for t in turns]
    starts, total = [], 0
    for sents in per_turn:
        starts.append(total)
        total += len(sents)
    return per_turn, starts


def turn_blocks(
    pairs: list[TurnPair], apart: Callable[[TurnPair], bool] = lambda pair: False
) -> list[list[TurnPair]]:
    """Group turn pairs into the blocks whose sentences are aligned together, before
    ``_merge_blocks``: a confidently paired turn is a block on its own, so is a turn kept
    ``apart`` (a procedural part one version lacks), and each run of other turns that are
    unpaired or doubtfully paired is one block."""
    blocks: list[list[TurnPair]] = []
    for pair in pairs:
        alone = _firm(pair) or apart(pair)
        if alone or not blocks or _firm(blocks[-1][-1]) or apart(blocks[-1][-1]):
            blocks.append([pair])
        else:
            blocks[-1].append(pair)
    return blocks


def _firm(pair: TurnPair) -> bool:
    return pair.zh is not None and pair.en is not None and pair.confidence >= CONFIDENT


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
    check_sentences(zh.source or "zh", [p for t in zh_turns for p in t.paragraphs], zh_flat)
    check_sentences(en.source or "en", [p for t in en_turns for p in t.paragraphs], en_flat)
    vectors = encoder.encode(zh_flat + en_flat)  # one batch; later calls hit the cache
    zh_vecs = _split_rows(vectors[: len(zh_flat)], zh_sents)
    en_vecs = _split_rows(vectors[len(zh_flat) :], en_sents)
    turn_pairs = align_turns(zh_turns, en_turns, turn_vectors(zh_vecs), turn_vectors(en_vecs))

    def apart(pair: TurnPair) -> bool:
        """A procedural turn (cover page, time line, agenda, vote) the other version lacks:
        its sentences stay unpaired, never glued onto a neighbouring speech."""
        turn = zh_turns[pair.zh] if pair.en is None else en_turns[pair.en]
        return (pair.zh is None or pair.en is None) and turn.kind == "procedural"

    shares = _correspondence(turn_pairs, zh_sents, en_sents, apart)
    if max(shares.values()) < MIN_CORRESPONDENCE:
        raise InputError(
            f"{zh.source or 'Chinese'} and {en.source or 'English'}: the turns of the two "
            f"records do not correspond (only {shares['zh']:.0%} of the Chinese and "
            f"{shares['en']:.0%} of the English text are in confidently paired turns): are "
            "they records of the same meeting?"
        )
    result = AlignmentResult(
        pairs=[], mode="record", sentences={"zh": len(zh_flat), "en": len(en_flat)}
    )
    for lang, share in shares.items():
        if share < MIN_CORRESPONDENCE:
            name, other = ("Chinese", "English") if lang == "zh" else ("English", "Chinese")
            result.warnings.append(
                f"only {share:.0%} of the {name} text is in turns paired with the {other}: "
                f"is the {other} version incomplete?"
            )
    doubtful = [
        p
        for p in turn_pairs
        if p.zh is not None and p.en is not None and p.confidence < CONFIDENT
    ]
    if doubtful:
        result.warnings.append(
            f"{len(doubtful)} turn pair(s) have low confidence: Chinese turns "
            + ", ".join(str(p.zh) for p in doubtful)
        )
    zh_turn_of = [k for k, sents in enumerate(zh_sents) for _ in sents]
    en_turn_of = [k for k, sents in enumerate(en_sents) for _ in sents]
    symbol = _symbol(zh, en)

    def align_block(block: list[TurnPair]) -> list[Bead]:
        """The block's beads, in document sentence indices, scores capped by its pairs."""
        zh_index = [zh_starts[p.zh] + i for p in block if p.zh is not None
                    for i in range(len(zh_sents[p.zh]))]
        en_index = [en_starts[p.en] + j for p in block if p.en is not None
                    for j in range(len(en_sents[p.en]))]
        if not (zh_index and en_index):
            return [Bead((i,), ()) for i in zh_index] + [Bead((), (j,)) for j in en_index]
        paired = [p.confidence for p in block if p.zh is not None and p.en is not None]
        cap = 1.0 if any(c >= CONFIDENT for c in paired) else max(paired, default=0.0)
        zh_block = [zh_flat[i] for i in zh_index]
        en_block = [en_flat[j] for j in en_index]
        beads = align_sentences(zh_block, en_block, encoder, max_bead=max_bead)
        beads = absorb_clauses(rescore(beads, zh_block, en_block), zh_block, en_block)
        return [
            Bead(
                tuple(zh_index[i] for i in bead.zh),
                tuple(en_index[j] for j in bead.en),
                min(bead.score, cap),
            )
            for bead in beads
        ]

    zh_chars = [sum(len(s) for s in sents) for sents in zh_sents]
    en_chars = [sum(len(s) for s in sents) for sents in en_sents]
    ratio = max(sum(zh_chars), 1) / max(sum(en_chars), 1)

    def imbalance(block: list[TurnPair]) -> float:
        """How far the block's two sides are from the document's length ratio (log)."""
        zl = sum(zh_chars[p.zh] for p in block if p.zh is not None)
        el = sum(en_chars[p.en] for p in block if p.en is not None)
        return abs(math.log((zl + 20) / (ratio * el + 20)))

    blocks = _merge_blocks(turn_blocks(turn_pairs, apart), align_block, imbalance, apart)
    all_beads: list[Bead] = []
    for number, (block, beads) in enumerate(blocks):
        result.turns.extend(TurnLink(p.zh, p.en, p.confidence, number) for p in block)
        for bead in beads:
            zi, ej = bead.zh, bead.en
            all_beads.append(bead)
            if not (zi and ej):
                result.unmatched.extend(
                    Unmatched("zh", i, zh_flat[i], zh_turn_of[i], zh_turns[zh_turn_of[i]].speaker)
                    for i in zi
                )
                result.unmatched.extend(
                    Unmatched("en", j, en_flat[j], en_turn_of[j], en_turns[en_turn_of[j]].speaker)
                    for j in ej
                )
                continue
            zt, et = zh_turns[zh_turn_of[zi[0]]], en_turns[en_turn_of[ej[0]]]
            result.pairs.append(
                SentencePair(
                    zh=join_segments([zh_flat[i] for i in zi], "zh"),
                    en=join_segments([en_flat[j] for j in ej], "en"),
                    score=bead.score,
                    zh_indices=zi,
                    en_indices=ej,
                    document=symbol,
                    turn=zh_turn_of[zi[0]],
                    speaker=et.speaker or zt.speaker,
                    country=speakers.entity(et.country) or et.country or zt.country,
                    language=_delivery_language(zt, et),
                    kind=_pair_kind(zt, et, [zh_flat[i] for i in zi], [en_flat[j] for j in ej]),
                )
            )
    check_beads(all_beads, len(zh_flat), len(en_flat))
    result.pairs.sort(key=lambda p: (p.zh_indices[0], p.en_indices[0]))
    result.unmatched.sort(key=lambda u: (u.lang != "zh", u.index))
    _fill_unmatched_lists(result)
    return result


def _merge_blocks(
    blocks: list[list[TurnPair]],
    align_block: Callable[[list[TurnPair]], list[Bead]],
    imbalance: Callable[[list[TurnPair]], float],
    apart: Callable[[TurnPair], bool] = lambda pair: False,
) -> list[tuple[list[TurnPair], list[Bead]]]:
    """Align each block; join neighbours whose text the two versions seem to have cut
    differently, and align them again together.

    That is the mark of a heading missed on one side (Latvia's statement read into the
    President's turn) or a speech split in two: a block holding a turn with no counterpart
    next to one that left sentences of the opposite side unmatched, or two neighbours whose
    lengths each disagree and agree much better together (also when a heading was missed on
    each side, so that every turn found a partner). A turn that is simply absent from the other
    version stays alone, its sentences unmatched; so does a block kept ``apart``.
    """
    aligned = [(block, align_block(block)) for block in blocks]
    # Decide every join from the blocks aligned alone, then align each joined run once: at
    # most two alignments per sentence, however many turns were cut differently.
    runs = [[aligned[0]]] if aligned else []
    for (a, a_beads), (b, b_beads) in zip(aligned, aligned[1:], strict=False):
        if any(apart(p) for p in a + b):
            runs.append([(b, b_beads)])
        elif (
            _leftover(a_beads, _lone_sides(b))
            or _leftover(b_beads, _lone_sides(a))
            or imbalance(a + b) + BALANCE_GAIN < min(imbalance(a), imbalance(b))
        ):
            runs[-1].append((b, b_beads))
        else:
            runs.append([(b, b_beads)])
    out = []
    for run in runs:
        if len(run) == 1:
            out.append(run[0])
        else:
            joined = [pair for block, _ in run for pair in block]
            out.append((joined, align_block(joined)))
    return out


def _lone_sides(block: list[TurnPair]) -> set[str]:
    """The sides ("zh", "en") on which ``block`` holds a turn with no counterpart."""
    return {"zh" for p in block if p.en is None} | {"en" for p in block if p.zh is None}


def _leftover(beads: list[Bead], lone: set[str]) -> bool:
    """Whether ``beads`` left unmatched a sentence of the side opposite a lone turn."""
    return ("zh" in lone and any(b.en and not b.zh for b in beads)) or (
        "en" in lone and any(b.zh and not b.en for b in beads)
    )


def _fill_unmatched_lists(result: AlignmentResult) -> None:
    result.unmatched_zh = [u.text for u in result.unmatched if u.lang == "zh"]
    result.unmatched_en = [u.text for u in result.unmatched if u.lang == "en"]


def left_out(result: AlignmentResult, min_score: float) -> dict[str, object]:
    """What a memory built from ``result`` at ``min_score`` will not hold, for reports: every
    unpaired sentence, every pair below the threshold (with turn, speaker, text and score), and
    the page furniture the reader removed."""
    return {
        "unmatched_sentences": [
            {"lang": u.lang, "index": u.index, "turn": u.turn, "speaker": u.speaker,
             "text": u.text}
            for u in result.unmatched
        ],
        "pairs_below_threshold": [
            {
                "turn": p.turn,
                "speaker": p.speaker,
                "score": round(p.score, 4),
                "zh": p.zh,
                "en": p.en,
                "zh_indices": list(p.zh_indices),
                "en_indices": list(p.en_indices),
            }
            for p in result.pairs
            if p.score < min_score
        ],
        "removed_text": {lang: list(texts) for lang, texts in result.removed.items()},
    }


def _split_rows(vectors: np.ndarray, groups: list[list[str]]) -> list[np.ndarray]:
    out, start = [], 0
    for group in groups:
        out.append(vectors[start : start + len(group)])
        start += len(group)
    return out


def _correspondence(
    pairs: list[TurnPair],
    zh_sents: list[list[str]],
    en_sents: list[list[str]],
    apart: Callable[[TurnPair], bool] = lambda pair: False,
) -> dict[str, float]:
    """Share of each version's text (characters) that lies in turn pairs of at least
    CONFIDENT confidence; procedural turns one version lacks (``apart``: a cover page, time
    lines) are left out of the count."""
    shares = {}
    for lang, sents in (("zh", zh_sents), ("en", en_sents)):
        lengths = [sum(len(s) for s in turn) for turn in sents]
        for p in pairs:
            if apart(p) and (p.zh if lang == "zh" else p.en) is not None:
                lengths[p.zh if lang == "zh" else p.en] = 0
        good = sum(
            lengths[p.zh if lang == "zh" else p.en]
            for p in pairs
            if p.zh is not None and p.en is not None and p.confidence >= CONFIDENT
        )
        shares[lang] = good / sum(lengths) if sum(lengths) else 0.0
    return shares


def _pair_kind(zt: Turn, et: Turn, zh: list[str], en: list[str]) -> str:
    """"procedural" for a pair of procedural turns' lines or of language notes, else ""."""
    if zt.kind == et.kind == "procedural":
        return "procedural"
    if all(speakers.is_language_note(s) for s in zh + en):
        return "procedural"
    return ""


def _delivery_language(zh: Turn, en: Turn) -> str:
    """Language of delivery in English ("English", "Arabic"), from whichever version states it."""
    return speakers.language(en.language) or speakers.language(zh.language) or (
        en.language or zh.language
    )
