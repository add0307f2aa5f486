"""Pair the speaker turns of the Chinese and English versions of one meeting record.

A monotone dynamic programme over (Chinese turn, English turn) pairs. The value of a pair is
the log-odds that the two turns are the same, from:
- speaker identity: President/主席, the country or organisation (through the table in
  ``aligner.record.speakers``), the language of
  delivery (unstated means Chinese in the Chinese record
  and English in the English one), the title (先生/Mr.), the kind of procedural line;
- the embedding similarity of the turns' texts (mean of their sentence vectors);
- the numbers both texts contain (resolution numbers, times, votes);
- agreement of length and of relative position.
A turn may stay unpaired (a correction present in one version only, a missing procedural line)
at a small cost, so one missing turn does not shift the pairs after it. A pair's confidence is
the logistic of its value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from aligner.models import Turn
from aligner.record import speakers
from aligner.record.turns import procedural_kind

SKIP = -0.5  # value of leaving one turn unpaired
SIM_WEIGHT = 10.0
SIM_CENTRE = 0.45  # cosine similarity of the turn vectors at which text is neutral evidence
MONTHS = {
    m: str(i)
    for i, m in enumerate(
        "january february march april may june july august september october november "
        "december".split(),
        start=1,
    )
}
_NUMBER = re.compile(r"\d+")
_MONTH = re.compile(r"\b(" + "|".join(MONTHS) + r")\b", re.IGNORECASE)


@dataclass
class TurnPair:
    """A Chinese turn index and an English turn index (None when unpaired), with confidence."""

    zh: int | None
    en: int | None
    confidence: float = 0.0


def turn_vectors(sentence_vectors: list[np.ndarray]) -> np.ndarray:
    """One unit vector per turn: the normalised mean of its sentence vectors (zeros if none)."""
    dim = next((v.shape[1] for v in sentence_vectors if len(v)), 1)
    rows = []
    for vecs in sentence_vectors:
        mean = vecs.mean(axis=0) if len(vecs) else np.zeros(dim, dtype=np.float32)
        norm = float(np.linalg.norm(mean))
        rows.append(mean / norm if norm else mean)
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), dim)


def identity_value(zh: Turn, en: Turn) -> float:
    """Log-odds contribution of who speaks (or which procedural line it is)."""
    if zh.kind != en.kind:
        return -3.0
    if zh.kind == "procedural":
        a = procedural_kind(zh.paragraphs[0], "zh") if zh.paragraphs else ""
        b = procedural_kind(en.paragraphs[0], "en") if en.paragraphs else ""
        if a and b:
            return 1.5 if a == b else -3.0
        return 0.0 if a == b else -1.0
    value = 0.0
    if zh.is_president and en.is_president:
        value += 0.5
    elif zh.is_president != en.is_president:
        value -= 2.0
    ra, rb = speakers.role(zh.speaker), speakers.role(en.speaker)
    if ra and rb and not (zh.is_president and en.is_president):
        value += 0.5 if ra == rb else -1.5
    a, b = speakers.entity(zh.country), speakers.entity(en.country)
    if zh.country and en.country:
        if a and b:
            value += 1.0 if a == b else -2.0
    elif zh.country or en.country:
        value -= 0.5
    lang_zh = speakers.language(zh.language) if zh.language else "Chinese"
    lang_en = speakers.language(en.language) if en.language else "English"
    if lang_zh and lang_en:
        value += 0.3 if lang_zh == lang_en else -0.7
    ta, tb = speakers.title(zh.speaker), speakers.title(en.speaker)
    if ta and tb and ta != tb:
        value -= 0.5
    return value


def numbers(text: str) -> set[str]:
    """The numbers in a text, months written out in English counted as numbers."""
    text = _MONTH.sub(lambda m: " " + MONTHS[m.group(1).lower()] + " ", text)
    return {str(int(n)) for n in _NUMBER.findall(text)}


def number_value(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 0.0
    if not a or not b:
        return -0.3
    jaccard = len(a & b) / len(a | b)
    return 2.0 * jaccard - 0.7


def pair_values(
    zh_turns: list[Turn],
    en_turns: list[Turn],
    zh_vecs: np.ndarray,
    en_vecs: np.ndarray,
) -> np.ndarray:
    """(n, m) log-odds that Chinese turn i and English turn j are the same turn."""
    n, m = len(zh_turns), len(en_turns)
    zh_text = [" ".join(t.paragraphs) for t in zh_turns]
    en_text = [" ".join(t.paragraphs) for t in en_turns]
    zh_len = np.array([len(t) for t in zh_text], dtype=np.float64)
    en_len = np.array([len(t) for t in en_text], dtype=np.float64)
    ratio = max(zh_len.sum(), 1.0) / max(en_len.sum(), 1.0)
    zh_num = [numbers(t) for t in zh_text]
    en_num = [numbers(t) for t in en_text]
    sims = zh_vecs @ en_vecs.T if n and m else np.zeros((n, m))
    values = np.zeros((n, m), dtype=np.float64)
    for i in range(n):
        for j in range(m):
            length_dev = abs(math.log((zh_len[i] + 10) / (ratio * en_len[j] + 10)))
            position_dev = abs((i + 0.5) / n - (j + 0.5) / m)
            values[i, j] = (
                SIM_WEIGHT * (float(sims[i, j]) - SIM_CENTRE)
                + identity_value(zh_turns[i], en_turns[j])
                + number_value(zh_num[i], en_num[j])
                - 1.5 * max(0.0, length_dev - 0.4)
                - 2.0 * position_dev
            )
    return values


def align_turn_values(values: np.ndarray, skip: float = SKIP) -> list[TurnPair]:
    """Best monotone pairing for a value matrix; unpaired turns cost ``skip`` each."""
    n, m = values.shape
    best = np.full((n + 1, m + 1), -np.inf)
    move = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 pair, 1 skip zh, 2 skip en
    best[0, :] = skip * np.arange(m + 1)
    best[:, 0] = skip * np.arange(n + 1)
    move[1:, 0] = 1
    move[0, 1:] = 2
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            options = (
                best[i - 1, j - 1] + values[i - 1, j - 1],
                best[i - 1, j] + skip,
                best[i, j - 1] + skip,
            )
            k = int(np.argmax(options))
            best[i, j] = options[k]
            move[i, j] = k
    pairs: list[TurnPair] = []
    i, j = n, m
    while i or j:
        k = move[i, j]
        if k == 0:
            v = float(values[i - 1, j - 1])
            pairs.append(TurnPair(i - 1, j - 1, 1.0 / (1.0 + math.exp(-v))))
            i, j = i - 1, j - 1
        elif k == 1:
            pairs.append(TurnPair(i - 1, None, 0.0))
            i -= 1
        else:
            pairs.append(TurnPair(None, j - 1, 0.0))
            j -= 1
    pairs.reverse()
    return pairs


def align_turns(
    zh_turns: list[Turn], en_turns: list[Turn], zh_vecs: np.ndarray, en_vecs: np.ndarray
) -> list[TurnPair]:
    """Pair turns in order; ``*_vecs`` are the turn vectors (see ``turn_vectors``)."""
    return align_turn_values(pair_values(zh_turns, en_turns, zh_vecs, en_vecs))


def embed_turns(turns: list[Turn], lang: str, encoder) -> np.ndarray:
    """Turn vectors of ``turns``: their sentences embedded with ``encoder``, averaged."""
    from aligner.align.segment import split_sentences

    sentences = [[s for p in t.paragraphs for s in split_sentences(p, lang)] for t in turns]
    flat = [s for group in sentences for s in group]
    vectors = encoder.encode(flat)
    groups, start = [], 0
    for group in sentences:
        groups.append(vectors[start : start + len(group)])
        start += len(group)
    return turn_vectors(groups)
