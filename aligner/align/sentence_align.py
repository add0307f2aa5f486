"""Sentence alignment: FAISS anchors, a band around them, a dynamic programme over n-m beads.

Two passes, after Bertalign (Liu & Zhu 2022):
1. every Chinese sentence looks up its nearest English sentences with FAISS; a 1-1 dynamic
   programme over those similarities finds a monotone chain of anchor pairs;
2. a band a few sentences wide around the anchors restricts a second dynamic programme that
   chooses 1-1, n-m (up to ``max_bead``), 1-0 and 0-1 beads, so the cost grows linearly with the
   length of the document.

A bead's value in the second pass is the cosine similarity of its spans (a span's vector is
the embedding of its sentences joined, which USE-m3 gives for the cost of the sentences, see
``aligner.align.use_m3``; with other encoders, the unit mean of its sentences' embeddings weighted
by length ** span power), minus a share
of the similarity to the sentences just outside it (a margin: a sentence that resembles its
neighbours as much as its counterpart is weak evidence), times a length agreement factor on
the document's own character ratio; plus a share of the lexical units matched across the bead
(numbers, also in Chinese and English words, months, section numbers and list letters,
Latin-script tokens, UN document symbols, names of states and bodies (``un_names.tsv`` and
``un_bodies.tsv`` in ``aligner/data``), CC-CEDICT glosses and
pinyin names, see ``aligner.align.lexicon``) and a penalty when its least covered sentence is
covered less than the bead; minus penalties when the English side runs on past a sentence
that closes a quotation (``'… go home.'`` ends an utterance: in MAC-Dev's gold such a
sentence ends its bead 97 % of the time, other sentences 64 %), when a line holds a sentence
end the other side does not match (a Chinese line of two sentences against one English
sentence), when one sentence holding much of the bead resembles nothing across it (an
unrelated sentence pulled into the bead), and when a heading (a line without final
punctuation) resembles nothing across and its words are not found there (a heading whose
counterpart is missing, pulled into the next bead); minus a cost per bead. Leaving a sentence
unmatched has a fixed value (``Weights.skip``).

Literary translation is free, UN translation close, and the right weights differ: the
aligner measures how literal a document's translation is (``literal``: the mean similarity
of the first pass's anchor pairs, about 0.45-0.6 on novels and the Bible, 0.7-0.75 on UN
text) and some weights move with it (``Weights.literal_*``). The shipped weights are the
choice of ``bench/tune_weights.py``, a search on MAC-Dev and unpc-docs alone, cross-validated
across their documents; the Bible is only scored (README, "Measured figures").

The reported score of a bead is a probability that it is a translation: a logistic function
of its value (Platt scaling, refitted by ``bench/align_bench.py --calibrate``), so it means the
same on every document and one threshold, ``DEFAULT_MIN_SCORE``, separates good pairs from
bad. Unmatched (1-0, 0-1) beads score 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from aligner.align.lexicon import LexicalIndex
from aligner.models import Bead

DEFAULT_MAX_BEAD = 4
DEFAULT_MIN_SCORE = 0.5

# First pass: nearest neighbours per sentence and half-width of the search band (in sentences).
TOP_K = 4
FIRST_WINDOW_MIN = 250
FIRST_WINDOW_SHARE = 0.06
# Second pass: band half-width around the anchors, value of leaving a sentence unmatched.
BAND = 8
# A sentence end inside a line, where the line holds more than one sentence: Chinese 。！？
# followed by more text (not a closing mark); English .?! (after a lower-case letter, a digit
# or a closing mark, so not "Mr." or "U.S.") followed by a space and a capital or a digit.
ZH_INNER_END = re.compile(r"[。！？](?=[^\s」』”’\"）)》〉】])")
EN_INNER_END = re.compile(r"(?:(?<=[a-z]{2})|(?<=[0-9)\]\"”’]))[.?!][\"”’)]?\s+(?=[A-Z0-9(\"“])")
LEADING_NUMBER = re.compile(r"\s*(?:\d+(?:\.\d+)*|[IVXLC]+|[A-Z])$")


def inner_end_count(text: str, lang: str) -> int:
    """Sentence ends inside ``text``; the point after a paragraph number ("31.", "IV.") that
    opens the line or follows a sentence end is not one."""
    if lang == "zh":
        return len(ZH_INNER_END.findall(text))
    count = last = 0
    for m in EN_INNER_END.finditer(text):
        if not LEADING_NUMBER.match(text, last, m.start()):
            count += 1
        last = m.end()
    return count


# A heading: a line ending in a letter, a digit, a Chinese character or a closing bracket.
HEADING_END = re.compile(r"[^\W_)）]?[\w)）]\s*$")
# An English sentence that ends a quotation: final punctuation, then a closing quote mark.
QUOTE_END = re.compile(r"[.?!…—-]['\"’”]\s*$")
# Score = logistic(SLOPE · (value - MIDPOINT)), fitted by bench/align_bench.py --calibrate.
CALIBRATION_SLOPE = 13.4
CALIBRATION_MIDPOINT = 0.299

NEG = np.float32(-1e9)
# Vectors of runs of consecutive sentences, Chinese then English: {run length: row per run}
# (``aligner.align.embed.encode_windows``).
Windows = tuple[dict[int, np.ndarray], dict[int, np.ndarray]]
LITERAL_REFERENCE = 0.5
# A sentence whose best 1-1 similarity across its bead is below this resembles nothing there.
ORPHAN_SUPPORT = 0.4


@dataclass(frozen=True)
class Weights:
    """The weights of the second pass: what bench/tune_weights.py picks on MAC-Dev and
    unpc-docs, taken as it is (README, "Measured figures"). Each
    ``literal_X`` moves weight ``X`` with the document's literalness:
    X + literal_X · (literal - LITERAL_REFERENCE)."""

    lex: float = 0.5  # times the share of lexical units matched across the bead
    literal_lex: float = 0.0
    neighbour: float = 0.3  # times the similarity to the sentences just outside the bead
    quote: float = 0.1  # English side running on past a closed quotation
    bead_cost: float = 0.1  # per bead
    skip: float = -0.2  # value of leaving one sentence unmatched (literal_skip subtracted)
    literal_skip: float = -0.5  # literal text: unmatched sentences cost less
    # Encoders without windows (aligner.align.embed.encode_windows): a span's vector is the unit
    # mean of its sentences' vectors weighted by length ** power (0: every sentence the same;
    # 1: like embedding the sentences joined). Not searched with windows: the values the
    # search chose before windows.
    span_power: float = 0.0
    literal_span_power: float = 2.0
    # Length agreement log2(1 + exp(-scale · |log length ratio|)) multiplies the similarity.
    length_scale: float = 1.0
    literal_length_scale: float = 0.0
    lex_least: float = 0.0  # times (lexical share of the least covered sentence - lex)
    literal_lex_least: float = 0.0
    inner: float = 0.1  # per sentence end inside a line not matched on the other side
    literal_inner: float = 0.0
    orphan: float = 0.1  # times the share of a bead held by a sentence nothing across resembles
    literal_orphan: float = 3.0
    stray: float = 0.05  # times the uncovered share of a sentence nothing across resembles
    literal_stray: float = 0.0


DEFAULT_WEIGHTS = Weights()


def bead_types(max_bead: int) -> list[tuple[int, int]]:
    """All (zh, en) bead shapes: 1-0, 0-1 and n-m with at most ``max_bead`` on one side and
    ``max_bead + 1`` sentences in all (max_bead 4 gives 1-1 … 1-4, 2-3, 3-2, 4-1)."""
    if max_bead < 1:
        raise ValueError("max_bead must be at least 1")
    types = [(1, 0), (0, 1)]
    for a in range(1, max_bead + 1):
        for b in range(1, max_bead + 1):
            if a + b <= max_bead + 1:
                types.append((a, b))
    return types


class Band:
    """Rows 0..n of a DP table and, for each row i, the columns lo[i]..hi[i] searched."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray):
        self.lo = lo.astype(np.int64)
        self.hi = hi.astype(np.int64)
        self.width = int((self.hi - self.lo).max()) + 1
        self.rows = len(lo)

    def dot(self, left: np.ndarray, right: np.ndarray, block: int = 64) -> np.ndarray:
        """(rows, width) array: cell (i, k) = left[i] · right[lo[i] + k]; 0 past the right end."""
        out = np.zeros((self.rows, self.width), dtype=np.float32)
        offsets = np.arange(self.width)[None, :]
        for r0 in range(0, self.rows, block):
            r1 = min(r0 + block, self.rows)
            c0 = int(self.lo[r0])
            c1 = min(int(self.hi[r1 - 1]) + 1, len(right))
            if c1 <= c0:
                continue
            dense = left[r0:r1] @ right[c0:c1].T
            idx = self.lo[r0:r1, None] - c0 + offsets
            picked = np.take_along_axis(dense, np.minimum(idx, c1 - c0 - 1), axis=1)
            out[r0:r1] = np.where(idx < c1 - c0, picked, 0.0)
        return out

    def columns(self) -> np.ndarray:
        """(rows, width) column index j of every cell (may exceed hi[i]: masked by callers)."""
        return self.lo[:, None] + np.arange(self.width)[None, :]


def run_dp(
    band: Band,
    types: Sequence[tuple[int, int]],
    values: dict[tuple[int, int], np.ndarray],
    insert_value: np.ndarray,
) -> list[tuple[int, int, int]]:
    """Best monotone path from cell (0, 0) to cell (rows - 1, hi[-1]).

    ``values[(a, b)]`` is a (rows, width) array: the value of the bead that covers zh
    i-a..i-1 and en j-b..j-1 and ends at cell (i, j = lo[i] + k). ``(0, 1)`` beads are
    handled within a row by a running maximum; ``insert_value[j]`` is the value of leaving
    en sentence j-1 unmatched. Returns the beads (i, j, type index) from first to last.
    """
    lo, hi = band.lo, band.hi
    rows, width = band.rows, band.width
    cost = np.full((rows, width), NEG, dtype=np.float64)
    back = np.full((rows, width), -1, dtype=np.int16)
    ins = types.index((0, 1))
    vertical = [(t, a, b) for t, (a, b) in enumerate(types) if a > 0]
    prefix = np.concatenate([[0.0], np.cumsum(insert_value[1:], dtype=np.float64)])
    for i in range(rows):
        lo_i, hi_i = int(lo[i]), int(hi[i])
        n_i = hi_i - lo_i + 1
        best = np.full(n_i, NEG, dtype=np.float64)
        arg = np.full(n_i, -1, dtype=np.int16)
        if i == 0 and lo_i == 0:
            best[0] = 0.0
        for t, a, b in vertical:
            p = i - a
            if p < 0:
                continue
            lo_p, hi_p = int(lo[p]), int(hi[p])
            j0 = max(lo_i, lo_p + b)
            j1 = min(hi_i, hi_p + b)
            if j0 > j1:
                continue
            here = slice(j0 - lo_i, j1 - lo_i + 1)
            cand = cost[p, j0 - b - lo_p : j1 - b - lo_p + 1] + values[(a, b)][i, here]
            seg = best[here]
            better = cand > seg
            seg[better] = cand[better]
            arg[here][better] = t
        # 0-1 beads: best[k] = max over m <= k of best[m] + value of skipping en lo_i+m .. lo_i+k-1
        pre = prefix[lo_i : hi_i + 1]
        run = np.maximum.accumulate(best - pre)
        moved = (best - pre) < run
        best = np.where(moved, run + pre, best)
        arg[moved] = ins
        cost[i, :n_i] = best
        back[i, :n_i] = arg
    path = []
    i, j = rows - 1, int(hi[-1])
    while i > 0 or j > 0:
        t = int(back[i, j - lo[i]])
        if t < 0:
            raise RuntimeError("alignment path broken: the band does not reach the origin")
        path.append((i, j, t))
        a, b = types[t]
        i, j = i - a, j - b
    path.reverse()
    return path


def knn(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Inner-product top-k of every query row among ``base`` rows (FAISS flat index)."""
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(base)))


def find_anchors(zh_vecs: np.ndarray, en_vecs: np.ndarray) -> list[tuple[int, int]]:
    """1-1 anchor cells (i, j): zh i-1 ↔ en j-1, a monotone chain through FAISS neighbours."""
    n, m = len(zh_vecs), len(en_vecs)
    win = max(FIRST_WINDOW_MIN, int(max(n, m) * FIRST_WINDOW_SHARE))
    centre = (np.arange(n + 1) * m / n).astype(np.int64)
    band = Band(np.maximum(centre - win, 0), np.minimum(centre + win, m))
    sims, idx = knn(zh_vecs, en_vecs, TOP_K)
    value = np.zeros((band.rows, band.width), dtype=np.float32)
    rows = np.repeat(np.arange(1, n + 1), idx.shape[1])
    cols = idx.reshape(-1) + 1
    offs = cols - band.lo[rows]
    ok = (offs >= 0) & (cols <= band.hi[rows])
    value[rows[ok], offs[ok]] = np.maximum(sims.reshape(-1)[ok], 0)
    types = [(1, 0), (0, 1), (1, 1)]
    values = {(1, 0): np.zeros_like(value), (1, 1): value}
    path = run_dp(band, types, values, np.zeros(m + 1, dtype=np.float32))
    return [(i, j) for i, j, t in path if types[t] == (1, 1)]


def second_band(anchors: list[tuple[int, int]], n: int, m: int, w: int) -> Band:
    """Rows between two anchors search from the earlier anchor's column - w to the later's + w
    (n >= 1). Both bounds grow with the row, as ``Band.dot`` and ``run_dp`` expect."""
    points = [p for p in anchors if p[0] < n and p[1] < m] + [(n, m)]
    lo = np.zeros(n + 1, dtype=np.int64)
    hi = np.zeros(n + 1, dtype=np.int64)
    prev_i, prev_j = 0, 0
    for i, j in points:
        lo[prev_i + 1 : i + 1] = max(0, prev_j - w)
        hi[prev_i + 1 : i + 1] = min(m, j + w)
        prev_i, prev_j = i, j
    lo[0], hi[0] = 0, hi[1]
    return Band(lo, hi)


def span_vectors(
    vecs: np.ndarray,
    max_len: int,
    weights: np.ndarray | None = None,
    windows: dict[int, np.ndarray] | None = None,
) -> list[np.ndarray]:
    """spans[a][i] = the vector of vecs[i-a:i] (rows i < a are zero), a = 1..max_len:
    ``windows[a][i-a]`` where given, else the unit mean of the rows weighted by ``weights``."""
    windows = windows or {}
    n, dim = vecs.shape
    if weights is not None:
        vecs = vecs * weights[:, None].astype(np.float32)
    spans = [np.zeros((0, dim), dtype=np.float32)]
    total = np.zeros((n + 1, dim), dtype=np.float32)
    for a in range(1, max_len + 1):
        if a <= n:
            total[a:] += vecs[: n + 1 - a]  # now the sum of vecs[i-a:i] for rows i >= a
            total[a - 1] = 0.0
        else:
            total[:] = 0.0
        out = total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-9)
        out = out.astype(np.float32)
        if a in windows and a <= n:
            out[a:] = windows[a]
        spans.append(out)
    return spans


def span_lengths(lengths: np.ndarray, max_len: int) -> list[np.ndarray]:
    """lens[a][i] = sum of lengths[i-a:i] (0 for i < a)."""
    total = np.concatenate([[0], np.cumsum(lengths)]).astype(np.float64)
    out = [np.zeros(0)]
    for a in range(1, max_len + 1):
        s = np.zeros(len(total))
        if a < len(total):
            s[a:] = total[a:] - total[:-a]
        out.append(s)
    return out


def shifted(vecs: np.ndarray, shift: int) -> np.ndarray:
    """out[i] = vecs[i - shift] where that index exists, else zeros; len(vecs)+1 rows."""
    out = np.zeros((len(vecs) + 1, vecs.shape[1]), dtype=np.float32)
    lo = max(shift, 0)
    hi = min(len(vecs) + shift, len(vecs) + 1)
    if lo < hi:
        out[lo:hi] = vecs[lo - shift : hi - shift]
    return out


def text_length(text: str) -> int:
    return sum(1 for c in text if not c.isspace())


def bead_features(
    band: Band,
    types: Sequence[tuple[int, int]],
    zh_vecs: np.ndarray,
    en_vecs: np.ndarray,
    zh_spans: list[np.ndarray],
    en_spans: list[np.ndarray],
    zh_lens: list[np.ndarray],
    en_lens: list[np.ndarray],
) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """Per n-m bead shape, (rows, width) arrays: cosine ``sim``, neighbour similarity ``nb``
    (mean similarity of each span to the sentences just before and after its counterpart),
    and ``ratio`` = log(zh length / (en length · document ratio))."""
    n, m = len(zh_vecs), len(en_vecs)
    doc_ratio = max(zh_lens[1].sum(), 1.0) / max(en_lens[1].sum(), 1.0)
    cols = np.minimum(band.columns(), m)
    rows = np.arange(band.rows)[:, None]
    en_next = shifted(en_vecs, 0)
    zh_next = shifted(zh_vecs, 0)
    has_en_next = (cols < m).astype(np.float32)
    has_zh_next = np.broadcast_to((rows < n).astype(np.float32), cols.shape)
    right_en = {a: band.dot(zh_spans[a], en_next) for a in {a for a, b in types if a and b}}
    right_zh = {b: band.dot(zh_next, en_spans[b]) for b in {b for a, b in types if a and b}}
    out = {}
    for a, b in types:
        if a == 0 or b == 0:
            continue
        sim = band.dot(zh_spans[a], en_spans[b])
        left_en = band.dot(zh_spans[a], shifted(en_vecs, b + 1))
        left_zh = band.dot(shifted(zh_vecs, a + 1), en_spans[b])
        has_en_left = (cols - b - 1 >= 0).astype(np.float32)
        has_zh_left = np.broadcast_to((rows - a - 1 >= 0).astype(np.float32), cols.shape)
        nb_en = (right_en[a] * has_en_next + left_en * has_en_left) / np.maximum(
            has_en_next + has_en_left, 1
        )
        nb_zh = (right_zh[b] * has_zh_next + left_zh * has_zh_left) / np.maximum(
            has_zh_next + has_zh_left, 1
        )
        zl = zh_lens[a][np.minimum(rows, n)]
        el = en_lens[b][cols] * doc_ratio
        ratio = np.log((zl + 1.0) / (el + 1.0))
        out[(a, b)] = {
            "sim": sim,
            "nb": (nb_en + nb_zh) / 2,
            "ratio": ratio.astype(np.float32),
        }
    return out


def lexical_features(
    band: Band, types: Sequence[tuple[int, int]], index: LexicalIndex, max_bead: int
) -> dict[tuple[int, int], np.ndarray]:
    """Per n-m bead shape, the share of lexical units matched across the bead (harmonic mean
    of the Chinese units found in the English and the English words found in the Chinese)."""
    n, m = index.n, index.m
    lo, hi = band.lo, band.hi
    # pair band: zh sentence r meets en sentences plo[r] .. plo[r] + pw - 1
    r_idx = np.arange(n)
    plo = np.maximum(lo[r_idx + 1] - max_bead, 0)
    phi = np.minimum(hi[np.minimum(r_idx + max_bead, n)], m) - 1
    zh_hit, en_hit = index.pair_counts(plo, phi)
    pw = zh_hit.shape[1]
    cols = band.columns()
    rows = np.broadcast_to(np.arange(band.rows)[:, None], cols.shape)

    def gather(table: np.ndarray, dr: int, dc: int) -> np.ndarray:
        r = rows - 1 - dr
        c = cols - 1 - dc
        rr = np.clip(r, 0, n - 1)
        k = c - plo[rr]
        ok = (r >= 0) & (k >= 0) & (k < pw) & (c < m)
        return np.where(ok, table[rr, np.clip(k, 0, pw - 1)], 0.0)

    zh_count, en_count = index.zh_count, index.en_count
    zh_total = span_lengths(zh_count, max_bead)
    en_total = span_lengths(en_count, max_bead)
    shifts = {}
    out, least_out, cover = {}, {}, {}
    for a, b in types:
        if a == 0 or b == 0:
            continue
        zs = [np.zeros(cols.shape, dtype=np.float32) for _ in range(a)]
        es = [np.zeros(cols.shape, dtype=np.float32) for _ in range(b)]
        for dr in range(a):
            for dc in range(b):
                if (dr, dc) not in shifts:
                    shifts[(dr, dc)] = (gather(zh_hit, dr, dc), gather(en_hit, dr, dc))
                zs[dr] += shifts[(dr, dc)][0]
                es[dc] += shifts[(dr, dc)][1]
        z, e = sum(zs), sum(es)
        zn = zh_total[a][np.minimum(rows, n)]
        en_ = en_total[b][np.minimum(cols, m)]
        zc = np.minimum(z / np.maximum(zn, 1), 1)
        ec = np.minimum(e / np.maximum(en_, 1), 1)
        share = (2 * zc * ec / np.maximum(zc + ec, 1e-9)).astype(np.float32)
        least = share
        if a + b > 2:  # the least covered sentence: a bead should not carry an unrelated one
            zc_each = [np.minimum(np.where(count > 0, hits / np.maximum(count, 1), 1), 1)
                       for hits, count in ((h, zh_count[np.clip(rows - 1 - dr, 0, n - 1)])
                                           for dr, h in enumerate(zs))]
            ec_each = [np.minimum(np.where(count > 0, hits / np.maximum(count, 1), 1), 1)
                       for hits, count in ((h, en_count[np.clip(cols - 1 - dc, 0, m - 1)])
                                           for dc, h in enumerate(es))]
            least = np.minimum.reduce(zc_each + ec_each).astype(np.float32)
            cover[(a, b)] = (zc_each, ec_each)
        out[(a, b)] = share
        least_out[(a, b)] = least.astype(np.float32)
    return out, least_out, cover


def inner_ends(
    band: Band, types: Sequence[tuple[int, int]], zh: Sequence[str], en: Sequence[str],
    max_bead: int,
) -> dict[tuple[int, int], np.ndarray]:
    """Per n-m bead shape, (rows, width) arrays: sentence ends inside the lines of one side
    that the other side does not match with separate sentences (a Chinese line holding two
    sentences against one English sentence): max(0, zh inner ends - (b - 1)) + the same for
    the English side."""
    zh_inner = span_lengths(np.array([inner_end_count(s, "zh") for s in zh]), max_bead)
    en_inner = span_lengths(np.array([inner_end_count(s, "en") for s in en]), max_bead)
    cols = np.minimum(band.columns(), len(en))
    rows = np.arange(band.rows)[:, None]
    out = {}
    for a, b in types:
        if a and b:
            z = zh_inner[a][np.minimum(rows, len(zh))]
            e = en_inner[b][cols]
            out[(a, b)] = (np.maximum(z - (b - 1), 0) + np.maximum(e - (a - 1), 0)).astype(
                np.float32)
    return out


def is_heading(sentences: Sequence[str]) -> np.ndarray:
    """1.0 for a line that ends without punctuation (a heading, a title, a name list)"""
    return np.array([float(bool(HEADING_END.search(s))) for s in sentences])


def orphans(
    band: Band, types: Sequence[tuple[int, int]], pair_sim: np.ndarray, zh_len: np.ndarray,
    en_len: np.ndarray, cover: dict[tuple[int, int], tuple[list, list]],
    zh_head: np.ndarray, en_head: np.ndarray,
) -> tuple[dict[tuple[int, int], np.ndarray], dict[tuple[int, int], np.ndarray]]:
    """Per n-m bead shape, two (rows, width) arrays. ``orphan``: the largest share of its
    side's length that one sentence of the bead holds while no sentence across resembles it
    (its best 1-1 similarity ``support`` below ORPHAN_SUPPORT scaled to (ORPHAN_SUPPORT -
    support) / ORPHAN_SUPPORT). A long unrelated sentence pulled into a bead scores high; a
    short heading or a fragment that only completes its neighbour scores little. ``stray``:
    the same unlikeness times the share of the sentence's lexical units not found across
    (``cover``, from ``lexical_features``), whatever its length: a heading whose words are
    nowhere across ("Women and peace and security" pulled into a bead) scores high, a heading
    the other side spells out (运载火箭：↔ "Launch vehicle:") nothing.

    ``pair_sim`` is the 1-1 similarity in band cells: pair_sim[i, j - lo[i]] = zh i-1 · en j-1.
    """
    n, m = len(zh_len), len(en_len)
    cols = band.columns()
    rows = np.broadcast_to(np.arange(band.rows)[:, None], cols.shape)

    def sim_at(dr: int, dc: int) -> np.ndarray:
        """zh i-1-dr · en j-1-dc for every cell (i, j); -1 outside the band."""
        r, c = rows - dr, cols - dc
        rr = np.clip(r, 0, band.rows - 1)
        k = c - band.lo[rr]
        ok = (r >= 1) & (c >= 1) & (k >= 0) & (c <= band.hi[rr])
        return np.where(ok, pair_sim[rr, np.clip(k, 0, band.width - 1)], -1.0)

    longest = max(max(a, b) for a, b in types)
    zh_total = span_lengths(zh_len, longest)
    en_total = span_lengths(en_len, longest)
    sims: dict[tuple[int, int], np.ndarray] = {}
    out, stray = {}, {}
    for a, b in types:
        if not (a and b) or a + b == 2:
            if a and b:
                out[(a, b)] = stray[(a, b)] = np.zeros(cols.shape, dtype=np.float32)
            continue
        zh_cover, en_cover = cover[(a, b)]
        lost = np.zeros(cols.shape)
        grid = [[sims.setdefault((dr, dc), sim_at(dr, dc)) for dc in range(b)]
                for dr in range(a)]
        worst = np.zeros(cols.shape)
        if a > 1:
            total = zh_total[a][np.minimum(rows, n)]
            for dr in range(a):
                support = np.max([grid[dr][dc] for dc in range(b)], axis=0)
                share = zh_len[np.clip(rows - 1 - dr, 0, n - 1)] / np.maximum(total, 1)
                unlike = np.clip(1 - support / ORPHAN_SUPPORT, 0, 1)
                worst = np.maximum(worst, share * unlike)
                head = zh_head[np.clip(rows - 1 - dr, 0, n - 1)]
                lost = np.maximum(lost, head * (1 - zh_cover[dr]) * unlike)
        if b > 1:
            total = en_total[b][np.minimum(cols, m)]
            for dc in range(b):
                support = np.max([grid[dr][dc] for dr in range(a)], axis=0)
                share = en_len[np.clip(cols - 1 - dc, 0, m - 1)] / np.maximum(total, 1)
                unlike = np.clip(1 - support / ORPHAN_SUPPORT, 0, 1)
                worst = np.maximum(worst, share * unlike)
                head = en_head[np.clip(cols - 1 - dc, 0, m - 1)]
                lost = np.maximum(lost, head * (1 - en_cover[dc]) * unlike)
        out[(a, b)] = worst.astype(np.float32)
        stray[(a, b)] = lost.astype(np.float32)
    return out, stray


def quote_breaks(
    band: Band, types: Sequence[tuple[int, int]], en: Sequence[str]
) -> dict[tuple[int, int], np.ndarray]:
    """Per n-m bead shape, (rows, width) arrays: 1 where the bead's English side goes on past
    a sentence that closes a quotation (any of its sentences but the last), else 0."""
    closes = np.array([bool(QUOTE_END.search(s)) for s in en], dtype=np.int64)
    before = np.concatenate([[0], np.cumsum(closes)])  # before[j]: closing sentences among 0..j-1
    cols = np.minimum(band.columns(), len(en))
    out = {}
    for a, b in types:
        if a and b:
            inner = before[np.maximum(cols - 1, 0)] - before[np.maximum(cols - b, 0)]
            out[(a, b)] = (inner > 0).astype(np.float32)
    return out


def at_literal(weights: Weights, name: str, literal: float) -> float:
    """Weight ``name`` for a document of this literalness, never below 0 (a penalty that
    extrapolation would turn into a reward, on text freer than any seen, is 0)."""
    value = getattr(weights, name) + getattr(weights, f"literal_{name}") * (
        literal - LITERAL_REFERENCE
    )
    return max(value, 0.0)


def bead_value(f: dict[str, np.ndarray], weights: Weights, literal: float) -> np.ndarray:
    """DP value of an n-m bead: margin similarity times length agreement, plus lexical share,
    minus the penalties and the cost of a bead."""
    scale = at_literal(weights, "length_scale", literal)
    length = np.log2(1.0 + np.exp(-scale * np.abs(f["ratio"])))
    value = (f["sim"] - weights.neighbour * f["nb"]) * length
    value += at_literal(weights, "lex", literal) * f["lex"]
    value += at_literal(weights, "lex_least", literal) * (f["lex_least"] - f["lex"])
    value -= at_literal(weights, "inner", literal) * f["inner"]
    value -= at_literal(weights, "orphan", literal) * f["orphan"]
    value -= at_literal(weights, "stray", literal) * f["stray"]
    value -= weights.quote * f["quote"] + weights.bead_cost
    return value.astype(np.float32)


def bead_score(value: float) -> float:
    """Calibrated probability that a bead with this DP value is a translation pair."""
    return float(1.0 / (1.0 + np.exp(-CALIBRATION_SLOPE * (value - CALIBRATION_MIDPOINT))))


@dataclass
class Evidence:
    """What the second pass knows about every bead in the band, before any weight is applied:
    per n-m shape, (rows, width) feature arrays (see ``bead_features``, ``lexical_features``,
    ``quote_breaks``), and ``literal``, the mean similarity of the anchor pairs (how close the
    translation is)."""

    band: Band
    types: list[tuple[int, int]]
    features: dict[tuple[int, int], dict[str, np.ndarray]]
    literal: float
    n: int
    m: int


def gather_evidence(
    zh: Sequence[str],
    en: Sequence[str],
    zh_vecs: np.ndarray,
    en_vecs: np.ndarray,
    max_bead: int = DEFAULT_MAX_BEAD,
    weights: Weights = DEFAULT_WEIGHTS,
    windows: Windows = ({}, {}),
) -> Evidence:
    """First pass (anchors, band) and the features of every bead the second pass may pick;
    ``zh`` and ``en`` must both be non-empty. Of ``weights`` only the span power is used, for
    spans whose vectors ``windows`` lacks."""
    n, m = len(zh), len(en)
    types = bead_types(max_bead)
    anchors = find_anchors(zh_vecs, en_vecs)
    pairs = np.array(anchors, dtype=np.int64).reshape(-1, 2) - 1
    literal = float(np.einsum("ij,ij->i", zh_vecs[pairs[:, 0]], en_vecs[pairs[:, 1]]).mean()
                    if len(pairs) else 0.0)
    band = second_band(anchors, n, m, BAND)
    power = at_literal(weights, "span_power", literal)
    zh_len = np.array([text_length(s) for s in zh], dtype=np.float64) + 1
    en_len = np.array([text_length(s) for s in en], dtype=np.float64) + 1
    zh_lens = span_lengths(zh_len - 1, max_bead)
    en_lens = span_lengths(en_len - 1, max_bead)
    feats = bead_features(
        band, types, zh_vecs, en_vecs,
        span_vectors(zh_vecs, max_bead, zh_len ** power, windows[0]),
        span_vectors(en_vecs, max_bead, en_len ** power, windows[1]), zh_lens, en_lens,
    )
    lex, least, cover = lexical_features(band, types, LexicalIndex(list(zh), list(en)),
                                         max_bead)
    quote = quote_breaks(band, types, en)
    inner = inner_ends(band, types, zh, en, max_bead)
    orphan, stray = orphans(band, types, feats[(1, 1)]["sim"], zh_len, en_len, cover,
                            is_heading(zh), is_heading(en))
    for t, f in feats.items():
        f["inner"] = inner[t]
        f["orphan"] = orphan[t]
        f["stray"] = stray[t]
        f["lex"] = lex[t]
        f["lex_least"] = least[t]
        f["quote"] = quote[t]
    return Evidence(band, types, feats, literal, n, m)


def decode(
    evidence: Evidence, weights: Weights = DEFAULT_WEIGHTS
) -> list[tuple[tuple[int, ...], tuple[int, ...], float]]:
    """Second pass: the best path through the band under ``weights``; beads (zh indices, en
    indices, uncalibrated DP value)."""
    band, types = evidence.band, evidence.types
    values = {t: bead_value(f, weights, evidence.literal) for t, f in evidence.features.items()}
    skip = min(weights.skip - weights.literal_skip * (evidence.literal - LITERAL_REFERENCE), 0.0)
    values[(1, 0)] = np.full((band.rows, band.width), skip, dtype=np.float32)
    path = run_dp(band, types, values, np.full(evidence.m + 1, skip, dtype=np.float32))
    beads = []
    for i, j, t in path:
        a, b = types[t]
        value = float(values[(a, b)][i, j - band.lo[i]]) if a and b else skip
        beads.append((tuple(range(i - a, i)), tuple(range(j - b, j)), value))
    return beads


def align_embedded(
    zh: Sequence[str],
    en: Sequence[str],
    zh_vecs: np.ndarray,
    en_vecs: np.ndarray,
    *,
    max_bead: int = DEFAULT_MAX_BEAD,
    windows: Windows = ({}, {}),
) -> list[Bead]:
    """Align sentences whose embeddings (unit rows, one per sentence, and the ``windows`` the
    encoder could give) are already known."""
    return [
        Bead(zh_idx, en_idx, bead_score(value) if zh_idx and en_idx else 0.0)
        for zh_idx, en_idx, value in align_values(
            zh, en, zh_vecs, en_vecs, max_bead=max_bead, windows=windows
        )
    ]


def align_values(
    zh: Sequence[str],
    en: Sequence[str],
    zh_vecs: np.ndarray,
    en_vecs: np.ndarray,
    *,
    max_bead: int = DEFAULT_MAX_BEAD,
    weights: Weights = DEFAULT_WEIGHTS,
    windows: Windows = ({}, {}),
) -> list[tuple[tuple[int, ...], tuple[int, ...], float]]:
    """The beads (zh indices, en indices, uncalibrated DP value) of the best alignment."""
    n, m = len(zh), len(en)
    bead_types(max_bead)
    if len(zh_vecs) != n or len(en_vecs) != m:
        raise ValueError("one embedding row per sentence is needed on each side")
    if n == 0 or m == 0:
        return [((i,), (), weights.skip) for i in range(n)] + [
            ((), (j,), weights.skip) for j in range(m)
        ]
    # Many small products: BLAS threads only add synchronisation (10x slower on a busy machine).
    with threadpool_limits(1, user_api="blas"):
        return decode(
            gather_evidence(zh, en, zh_vecs, en_vecs, max_bead, weights, windows), weights
        )


def align_sentences(
    zh: list[str], en: list[str], encoder=None, *, max_bead: int = DEFAULT_MAX_BEAD
) -> list[Bead]:
    """Align two lists of sentences; beads in document order cover every sentence once.

    ``encoder``: anything with ``encode(list[str]) -> unit rows`` (``aligner.align.embed``);
    None loads the default (USE-m3, cached). Scores are calibrated probabilities: keep the
    pairs scoring at least ``DEFAULT_MIN_SCORE``.
    """
    if not zh or not en:
        return align_embedded(zh, en, np.zeros((len(zh), 1)), np.zeros((len(en), 1)),
                              max_bead=max_bead)
    from aligner.align.embed import encode_windows, load_encoder

    if encoder is None:
        encoder = load_encoder()
    zh_vecs, zh_windows = encode_windows(encoder, zh, max_bead)
    en_vecs, en_windows = encode_windows(encoder, en, max_bead)
    return align_embedded(zh, en, zh_vecs, en_vecs, max_bead=max_bead,
                          windows=(zh_windows, en_windows))

