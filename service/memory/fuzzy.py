"""Fuzzy matching as CAT tools compute it, fast on large memories: the fuzzy index.

The fuzzy match percentage is ``100 * (1 - d / max(len(a), len(b)))`` where ``d`` is the
Levenshtein distance counted in tokens for English (words and punctuation marks, as OmegaT
does) and in characters for Chinese (as translate-toolkit does); 100 means the segments are
identical token for token. Scores are floored, so only identical segments reach 100.

Lookups do not scan the memory. Each English token is mapped to one private code point, so a
segment becomes a short string and rapidfuzz's bit-parallel Levenshtein scores it. An inverted
index maps every (q-gram, occurrence number) to the segments that hold it, q-grams being
English tokens and Chinese character bigrams. A segment scoring at least ``m`` shares a known
minimum number of q-grams with the query, so it is found through the rarest posting lists
(prefix filter) and confirmed by counting in the others (count filter); only those survivors,
within the length bounds the score allows, are scored. (A query too short for q-grams to
narrow the search at its threshold scores every segment of a length that can match.)
The index lives in memory in immutable numpy segments (merged like an LSM tree as units
arrive) and catches up with the store by its generation counter. It also names the units
a concordance term can be in (``FuzzyIndex.containing``).
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from service.memory import fuzzy_files as files
from service.memory.fuzzy_files import Manifest
from service.memory.matching import fold
from service.memory.store import TMStore

LANGS = ("zh", "en")
_WORD = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]")
_OCC_BITS = 8
_MAX_OCC = (1 << _OCC_BITS) - 1
_SEGMENT_MAX = 1 << 18  # rows of a segment built in memory
_FILE_SEGMENT_MAX = 1 << 21  # rows of a segment file (merged up to it)
_FILE_BUILD = 1 << 19  # units a segment file is built from at once, when many arrive
_FLUSH = 50_000  # units in memory (or deletions) that make the indexer write files
_MEMORY_MAX = 200_000  # more new units than this: a worker waits for the indexer's files
_FEW = 256  # candidates left for rapidfuzz to settle without more counting
_TOP_CODE = 0x10FFFF
_CP_MASK = (1 << 21) - 1
_SURROGATES = range(0xD800, 0xE000)


def tokenize(text: str, lang: str) -> list[str]:
    """English: words (with inner hyphens, apostrophes, dots) and punctuation marks.
    Chinese: every character but whitespace. Both of the text folded for matching
    (``service.memory.matching.fold``: width, punctuation variants, quotes, spaces)."""
    text = fold(text)
    if lang == "zh":
        return list("".join(text.split()))
    return _WORD.findall(text)


def _code(number: int) -> str:
    """The ``number``-th private code point, skipping surrogates (folded past U+10FFFF)."""
    cp = number % (_TOP_CODE - len(_SURROGATES)) + 1
    if cp >= _SURROGATES.start:
        cp += len(_SURROGATES)
    return chr(cp)


class Vocabulary:
    """Token (English word, Chinese bigram) → one code point, shared by a side's index."""

    def __init__(self) -> None:
        self._codes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._lowered: list[str] = []  # the tokens in code order, lower-cased when first asked

    def __len__(self) -> int:
        return len(self._codes)

    def tokens_from(self, number: int) -> list[str]:
        """The tokens from the ``number``-th on, in code order."""
        return list(itertools.islice(self._codes, number, None))

    def extend(self, tokens: list[str]) -> None:
        """Take the next codes for ``tokens`` (read from the index's files)."""
        with self._lock:
            codes = self._codes
            for tok in tokens:
                codes[tok] = _code(len(codes))

    def truncate(self, number: int) -> None:
        """Forget the tokens from the ``number``-th on (codes this process gave itself)."""
        with self._lock:
            while len(self._codes) > number:
                self._codes.pop(next(reversed(self._codes)))
            del self._lowered[number:]

    def code(self, token: str) -> str | None:
        return self._codes.get(token)

    def codes_containing(self, part: str) -> list[str]:
        """Codes of the tokens that contain ``part`` (case folded), ignoring their case as the
        store does (``casefold``: "STRASSE" is in "Straße", which ``lower`` would miss)."""
        with self._lock:
            known = len(self._lowered)
            self._lowered += [t.casefold() for t in itertools.islice(self._codes, known, None)]
            lowered = self._lowered
        return [_code(number) for number, token in enumerate(lowered) if part in token]

    def encode(self, tokens: Iterable[str], *, grow: bool) -> str:
        codes = self._codes
        tokens = list(tokens)
        try:
            return "".join(map(codes.__getitem__, tokens))
        except KeyError:
            pass
        if grow:
            with self._lock:
                for tok in tokens:
                    if tok not in codes:
                        codes[tok] = _code(len(codes))
            return "".join(map(codes.__getitem__, tokens))
        # Unknown query tokens get codes from the top of the range: they match nothing.
        unknown: dict[str, str] = {}
        out = []
        for tok in tokens:
            code = codes.get(tok)
            if code is None:
                code = unknown.setdefault(tok, chr(_TOP_CODE - len(unknown)))
            out.append(code)
        return "".join(out)


class SideEncoder:
    """Turns segments of one language into the strings fuzzy scores and the index work on.

    The scored string has one code point per token (English words and marks, Chinese
    characters). The index keys are its ``q``-grams: single tokens for English, character
    bigrams for Chinese, whose single characters are too common to narrow the search.
    """

    def __init__(self, lang: str):
        self.lang = lang
        self.q = 2 if lang == "zh" else 1
        self.vocab = Vocabulary() if lang == "en" else None
        self.bigrams = Vocabulary() if lang == "zh" else None

    def encode(self, text: str, *, grow: bool = False) -> str:
        if self.vocab is None:
            return "".join(fold(text).split())
        return self.vocab.encode(tokenize(text, self.lang), grow=grow)

    def grams(self, encoded: str, *, grow: bool = False) -> str:
        """The index keys of an encoded segment, one code point per q-gram."""
        if self.bigrams is None:
            return encoded
        # Bigrams of the lower-cased text (Latin inside Chinese), so that concordance can
        # ignore case; more shared bigrams only weakens the fuzzy filter, never misses.
        lowered = encoded.lower()
        if len(lowered) != len(encoded):
            lowered = encoded
        return self.bigrams.encode(map(str.__add__, lowered, lowered[1:]), grow=grow)

    def gram_codes(self, encoded: list[str], *, grow: bool) -> tuple[np.ndarray, np.ndarray]:
        """``grams`` of many segments at once: (their codes end to end, how many each).

        For Chinese the bigrams are made and looked up as numbers, each distinct one once
        (a batch of units holds a few bigrams many times), not one string at a time."""
        if self.bigrams is None:
            return _code_points(encoded), np.fromiter(map(len, encoded), np.int64, len(encoded))
        lowered = [low if len(low) == len(e) else e for e, low in zip(
            encoded, (e.lower() for e in encoded), strict=True)]
        lengths = np.fromiter(map(len, lowered), np.int64, len(lowered))
        cps = _code_points(lowered)
        if len(cps) < 2:
            return np.zeros(0, np.int64), np.zeros(len(lowered), np.int64)
        pairs = (cps[:-1] << 21) | cps[1:]
        last = np.cumsum(lengths)[lengths > 0] - 1  # a segment's last character starts none
        keep = np.ones(len(cps) - 1, dtype=bool)
        keep[last[last < len(keep)]] = False
        pairs = pairs[keep]
        # np.unique's inverse costs an argsort (several times a sort): sorted values and a
        # binary search give the same in under half the time.
        ordered = np.sort(pairs)
        unique = ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered
        inverse = np.searchsorted(unique, pairs)
        bigrams = [chr(k >> 21) + chr(k & _CP_MASK) for k in unique.tolist()]
        codes = _code_points([self.bigrams.encode(bigrams, grow=grow)])
        return codes[inverse], np.maximum(lengths - 1, 0)


def fuzzy_ratio(a: str, b: str) -> float:
    """Similarity in [0, 1] of two encoded segments (1 - distance / longer length)."""
    return Levenshtein.normalized_similarity(a, b)


def _cutoff(min_ratio: float) -> float:
    """rapidfuzz's ``score_cutoff`` for scores of at least ``min_ratio``, exact ones included.

    rapidfuzz 3.14 returns 0 for some scores lying exactly on the cutoff or within ~1e-9
    below it: at 60 % and 80 % every match scoring exactly the threshold was lost. So the
    cutoff is set 1e-6 lower and the scores are compared exactly afterwards; ratios are
    fractions of segment lengths (under 2,000 by default), so none but the threshold itself
    lies in that gap.
    """
    return max(0.0, min_ratio - 1e-6)


def percent(ratio: float) -> int:
    """CAT-style integer percentage, floored so that only identical segments give 100."""
    return int(math.floor(ratio * 100 + 1e-9))


def _code_points(strings: list[str]) -> np.ndarray:
    return np.frombuffer("".join(strings).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


def _keys(strings: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted unique keys, offsets, posting rows): the inverted index of ``strings``."""
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    return _postings(_code_points(strings), lengths, np.arange(len(strings)))


def _postings(cps: np.ndarray, lengths: np.ndarray, rows_of: np.ndarray):
    """(sorted unique keys, offsets, posting rows) of segments whose q-gram codes are
    ``cps`` end to end, ``lengths`` each, segment i being row ``rows_of[i]``.

    A key is ``code_point << 8 | occurrence``: the k-th occurrence of a token in a segment is
    its own key, so counting shared keys counts shared tokens with multiplicity.
    """
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int32)
    rows = np.repeat(np.asarray(rows_of, dtype=np.int64), lengths)
    # Sorted by (code, row), a q-gram's occurrences in a segment lie together: numbered
    # there, the (key, row) order differs only where a segment holds a q-gram twice, which
    # a stable sort (timsort, on its runs) puts right in much less than a sort anew.
    packed = (cps << 32) | rows
    packed.sort()
    run_start = np.ones(total, dtype=bool)
    run_start[1:] = packed[1:] != packed[:-1]
    starts = np.flatnonzero(run_start)
    occ = np.arange(total) - np.repeat(starts, np.diff(np.append(starts, total)))
    rows = packed & 0xFFFFFFFF
    packed >>= 32
    packed <<= _OCC_BITS
    packed |= np.minimum(occ, _MAX_OCC)
    packed <<= 32
    packed |= rows
    packed.sort(kind="stable")
    return _csr(packed >> 32, (packed & 0xFFFFFFFF).astype(np.int32))


def _csr(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Postings sorted by (key, row) → (unique keys, offsets, rows)."""
    if not len(keys):
        return np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int32)
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[first], np.append(first, len(keys)).astype(np.int64), rows


def _unique_counts(rows: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``rows`` (all < ``size``) and how often each occurs."""
    if not len(rows):
        return rows, np.zeros(0, np.int64)
    if len(rows) * 3 < size:
        # The rows come as sorted posting lists laid end to end: a stable sort (timsort)
        # merges those runs, several times faster than quicksort or counting all ``size``.
        rows = np.sort(rows, kind="stable")
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        return rows[starts], np.diff(np.r_[starts, len(rows)])
    counts = np.bincount(rows, minlength=size)
    found = np.flatnonzero(counts)
    return found, counts[found]


def _pack(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(code points of all ``strings`` laid end to end, where each starts): two bytes a code
    point when they all fit (Chinese text, English tokens below the 63,488th), else four."""
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    starts = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    text = np.frombuffer("".join(strings).encode("utf-32-le"), dtype=np.uint32)
    if not len(text) or int(text.max()) < 0x10000:  # no surrogates: they are never codes
        text = text.astype(np.uint16)
    return text, starts


def _gather(text: np.ndarray, starts: np.ndarray, rows: np.ndarray):
    """The code points of ``rows`` laid end to end, and their new starts."""
    lengths = starts[rows + 1] - starts[rows]
    new_starts = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_starts[1:])
    at = np.repeat(starts[rows] - new_starts[:-1], lengths) + np.arange(new_starts[-1])
    return text[at], new_starts


def _narrow(array: np.ndarray) -> np.ndarray:
    """int32 when the values allow (ids, text positions), to halve what is mapped."""
    if isinstance(array, np.memmap) or array.dtype == np.int32:
        return array
    if not len(array) or (int(array.min()) >= 0 and int(array.max()) < 1 << 31):
        return array.astype(np.int32)
    return array


class _Segment:
    """An immutable slice of the index: unit ids, their scored strings, postings of q-grams.

    The strings are code points laid end to end (``text``, ``starts``), so that a segment is
    a handful of flat arrays: built in memory, or mapped from the files an indexer wrote
    (:mod:`service.memory.fuzzy_files`), shared by every process through the page cache.
    Rows are numbered in order of length, so the rows of the lengths a query can match form
    one range and a posting list is cut to them by comparing row numbers.
    """

    ARRAYS = ("ids", "lengths", "starts", "text", "keys", "offsets", "rows")

    def __init__(self, ids, lengths, starts, text, keys, offsets, rows):
        # Built ones narrowed to the dtypes the files keep (keys: 21-bit code, 8-bit count).
        ids, starts, offsets = _narrow(ids), _narrow(starts), _narrow(offsets)
        keys = keys if isinstance(keys, np.memmap) else keys.astype(np.int32, copy=False)
        # Mapped arrays kept as plain views of the same pages: every slice of a np.memmap is
        # a memmap made in Python (``__array_finalize__``), several times the slice's cost,
        # and a lookup slices thousands of times.
        ids, lengths, starts, text, keys, offsets, rows = (
            a.view(np.ndarray) if isinstance(a, np.memmap) else a
            for a in (ids, lengths, starts, text, keys, offsets, rows)
        )
        self.ids, self.lengths, self.starts, self.text = ids, lengths, starts, text
        self.keys, self.offsets, self.rows = keys, offsets, rows
        self._codec = "utf-16-le" if text.dtype == np.uint16 else "utf-32-le"

    @classmethod
    def build(cls, ids: np.ndarray, strings: list[str], grams: np.ndarray,
              gram_lengths: np.ndarray) -> _Segment:
        """From the scored strings and q-gram codes (``SideEncoder.gram_codes``) of units."""
        lengths = np.fromiter(map(len, strings), np.int64, len(strings))
        order = np.argsort(lengths, kind="stable")
        rows_of = np.empty(len(order), dtype=np.int64)
        rows_of[order] = np.arange(len(order))
        text, starts = _pack([strings[i] for i in order.tolist()])
        return cls(
            ids[order].astype(np.int64), lengths[order].astype(np.uint16), starts, text,
            *_postings(grams, gram_lengths, rows_of),
        )

    @classmethod
    def merge(cls, a: _Segment, b: _Segment, deleted: np.ndarray) -> _Segment:
        """One segment holding both, without ``deleted`` ids; postings merged, not rebuilt."""
        ids = np.concatenate([a.ids, b.ids]).astype(np.int64)
        kept = np.arange(len(ids))
        if len(deleted):
            kept = np.flatnonzero(~np.isin(ids, deleted))
        lengths = np.concatenate([a.lengths, b.lengths])
        order = kept[np.argsort(lengths[kept], kind="stable")]
        new_row = np.full(len(ids), -1, dtype=np.int64)
        new_row[order] = np.arange(len(order))
        keys = np.concatenate(
            [np.repeat(a.keys, np.diff(a.offsets)), np.repeat(b.keys, np.diff(b.offsets))]
        ).astype(np.int64)
        rows = new_row[np.concatenate([a.rows, b.rows.astype(np.int64) + len(a)])]
        del new_row
        if len(order) < len(ids):  # postings of deleted rows go
            live = rows >= 0
            keys, rows = keys[live], rows[live]
        wide = np.uint16 if a.text.dtype == b.text.dtype == np.uint16 else np.uint32
        text, starts = _gather(
            np.concatenate([a.text.astype(wide), b.text.astype(wide)]),
            np.concatenate([a.starts[:-1], int(a.starts[-1]) + np.asarray(b.starts, np.int64)]),
            order,
        )
        keys <<= 32  # (key, row) packed and sorted in place: these arrays are the peak
        keys |= rows
        del rows
        # Two sorted runs (a's postings, then b's: the new row numbers keep each segment's
        # order): a stable sort (timsort) merges them in one pass instead of sorting anew.
        keys.sort(kind="stable")
        rows = (keys & 0xFFFFFFFF).astype(np.int32)
        keys >>= 32
        return cls(ids[order], lengths[order], starts, text, *_csr(keys, rows))

    def __len__(self) -> int:
        return len(self.ids)

    def strings(self, rows: np.ndarray) -> list[str]:
        """The scored strings of ``rows``: gathered and decoded at once, then cut (one code
        point an element either way: uint16 text holds no surrogates)."""
        text, starts = _gather(self.text, self.starts, np.asarray(rows, np.int64))
        joined = text.tobytes().decode(self._codec)
        bounds = starts.tolist()
        return [joined[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def postings(self, codes: list[str]) -> list[np.ndarray]:
        """The posting lists (rows) of these q-gram codes, absent ones left out."""
        keys = np.array([ord(c) << _OCC_BITS for c in codes], dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        return [
            self.rows[self.offsets[p] : self.offsets[p + 1]]
            for p, k in zip(pos.tolist(), keys.tolist(), strict=True)
            if len(self.keys) and self.keys[p] == k
        ]

    def candidates(self, qkeys: np.ndarray, n: int, m: float, q: int) -> np.ndarray:
        """Rows that can score at least ``m`` against a query of ``n`` tokens.

        A row of length ``L`` within ``m`` has at most ``d = (1 - m) * max(n, L)`` edits,
        and each edit spoils at most ``q`` q-grams, so it shares at least
        ``need(L) = max(n, L) - q + 1 - q * d`` of them with the query (lengths outside
        [m·n, n/m] cannot reach ``m`` at all). With ``need_min`` the least of these, one of
        the ``len(qkeys) - need_min + 1`` rarest posting lists holds it (prefix filter); the
        rows found there are then checked against the longer lists, rarest first, dropping
        each as soon as it can no longer reach its ``need`` (count filter), until few are
        left for rapidfuzz. When ``need_min`` < 1 q-grams cannot narrow the search, and
        every row of a possible length is a candidate.
        """
        lo = math.ceil(m * n - 1e-9)
        hi = min(math.floor(n / m + 1e-9), int(self.lengths[-1]) if len(self) else 0)
        first, last = np.searchsorted(self.lengths, [lo, hi + 1]).tolist()  # rows [first, last)
        if first >= last:
            return np.zeros(0, np.int64)
        slack = max(0, n - q + 1) - len(qkeys)  # q-grams merged by the occurrence cap
        table = np.zeros(hi + 1, dtype=np.int64)  # q-grams each length needs
        longest = np.maximum(n, np.arange(lo, hi + 1))
        table[lo:] = longest - q + 1 - q * np.floor((1 - m) * longest + 1e-9) - slack
        # need(L) is not monotonic in L: rounding can let a longer row need fewer q-grams.
        need_min = int(table[lo:].min())
        if need_min < 1:
            return np.arange(first, last)
        if not len(self.keys):
            return np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(self.keys, qkeys), len(self.keys) - 1)
        present = self.keys[pos] == qkeys
        starts = np.where(present, self.offsets[pos], 0).tolist()
        ends = np.where(present, self.offsets[pos + 1], 0).tolist()  # absent: empty list
        df = np.subtract(ends, starts)
        order = np.argsort(df, kind="stable").tolist()
        head = len(qkeys) - need_min + 1
        if not df[order[:head]].any():
            return np.zeros(0, np.int64)
        lists = [self.rows[starts[i] : ends[i]] for i in order]
        # Lengths outside [lo, hi] can never make it: a posting list is sorted by row, and
        # rows by length, so each is cut to rows [first, last) before counting, which sorts.
        found = np.concatenate([
            posting[bounds[0] : bounds[1]]
            for posting in lists[:head]
            for bounds in [np.searchsorted(posting, (first, last)).tolist()]
        ])
        rows, count = _unique_counts(found, len(self))
        tail = lists[head:]
        wanted = table[self.lengths[rows]]
        keep = np.flatnonzero(count + len(tail) >= wanted)
        rows, count, wanted = rows[keep], count[keep], wanted[keep]
        for left, posting in zip(range(len(tail) - 1, -1, -1), tail, strict=True):
            if len(rows) <= _FEW:
                break
            at = np.minimum(np.searchsorted(posting, rows), len(posting) - 1)
            count = count + (posting[at] == rows)
            alive = count + left >= wanted
            rows, count, wanted = rows[alive], count[alive], wanted[alive]
        return rows


class FuzzyIndex:
    """The n-gram (token) index of both sides of the memory.

    Without a folder it lives in this process's memory. With one, it is the folder's
    on-disk index (:mod:`service.memory.fuzzy_files`): the process holding the folder's lock
    (the indexer) writes new units into segment files in large batches and publishes them;
    every process maps those files and keeps only the units newer than them (a few
    thousand) in memory, indexed from the store. Index work happens in ``sync``, which the
    service runs on a background thread; a request calls it with ``wait=False, most=…``
    so that it never waits behind a long indexing run.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.encoders = {lang: SideEncoder(lang) for lang in LANGS}
        self._disk: dict[str, list[_Segment]] = {lang: [] for lang in LANGS}
        self._memory: dict[str, list[_Segment]] = {lang: [] for lang in LANGS}
        self._segments: dict[str, list[_Segment]] = {lang: [] for lang in LANGS}
        self._deleted: set[int] = set()
        self._deleted_array = np.zeros(0, np.int64)
        self.generation = -1  # the store's generation this index is caught up with
        self._deletions_at = -1  # tombstones up to this generation are applied
        self.max_id = 0
        self._live = 0  # units indexed and not deleted
        self._sync_lock = threading.Lock()
        self._manifest: Manifest | None = None
        self._deleted_on_disk = 0  # ids in the manifest's file of deletions
        self._lock = files.IndexerLock(folder) if folder is not None else None

    def __len__(self) -> int:
        return self._live

    @property
    def is_indexer(self) -> bool:
        return self._lock is not None and self._lock.held

    def _vocab(self, lang: str) -> Vocabulary:
        enc = self.encoders[lang]
        return enc.vocab if enc.vocab is not None else enc.bigrams

    def _show(self) -> None:
        """Readers see the mapped and in-memory segments, swapped in whole."""
        self._segments = {lang: self._disk[lang] + self._memory[lang] for lang in LANGS}

    # -- the files ---------------------------------------------------------------------
    def load(self, store: TMStore) -> bool:
        """Map the folder's index if it belongs to ``store``; ``sync`` then brings it up to
        date. False (nothing mapped) when there is none, it is damaged or another store's."""
        if self.folder is None:
            return False
        with self._sync_lock:
            return self._adopt(store, fresh=True)

    def _usable(self, manifest: Manifest | None, store: TMStore) -> bool:
        return (
            manifest is not None
            and manifest.identity == store.identity
            and manifest.seq <= store.last_id()
            and 0 <= manifest.generation <= store.generation
        )

    def _adopt(self, store: TMStore, *, fresh: bool = False) -> bool:
        """Map the newest manifest's files if they are not those mapped; the units in
        memory give way to them (read again from the store by the next ``sync``)."""
        for _ in range(5):  # an indexer may remove files between reading and mapping
            manifest = files.read_manifest(self.folder)
            if not self._usable(manifest, store):
                return False
            fresh = fresh or self._manifest is None
            if not fresh and manifest.serial == self._manifest.serial:
                return True
            try:
                disk = {
                    lang: [
                        _Segment(**files.map_arrays(self.folder, name, _Segment.ARRAYS))
                        for name in manifest.segments[lang]
                    ]
                    for lang in LANGS
                }
                deleted = files.read_deleted(self.folder, manifest.deleted)
                known = self._manifest if not fresh else None
                tokens = {
                    lang: files.read_vocab(
                        self.folder, lang, known.vocab_bytes[lang] if known else 0,
                        manifest.vocab_bytes[lang],
                    )
                    for lang in LANGS
                }
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError, EOFError):
                return False  # damaged: the indexer rebuilds it
            break
        else:
            return False
        before = {lang: known.vocab[lang] if known else 0 for lang in LANGS}
        if any(before[lang] + len(tokens[lang]) != manifest.vocab[lang] for lang in LANGS):
            return False  # a vocabulary file that does not say what the manifest does
        for lang in LANGS:
            vocab = self._vocab(lang)
            vocab.truncate(before[lang])  # codes this process gave itself go
            vocab.extend(tokens[lang])
        self._disk = disk
        self._memory = {lang: [] for lang in LANGS}
        if fresh:
            self._deleted = set()
            self._deletions_at = manifest.generation
        self._deleted.update(deleted.tolist())
        self._deletions_at = min(self._deletions_at, manifest.generation)
        self._deleted_array = np.fromiter(sorted(self._deleted), dtype=np.int64)
        # Units the files hold that this process knows were deleted since they were written.
        later = np.fromiter((i for i in self._deleted if i <= manifest.seq), np.int64)
        self._live = manifest.live - int(np.isin(later, deleted, invert=True).sum())
        self._deleted_on_disk = len(deleted)
        self.max_id = manifest.seq
        self.generation = -1
        self._manifest = manifest
        self._show()
        return True

    def _take_role(self, store: TMStore) -> None:
        """Become the indexer when none is (starting from its newest files)."""
        if self._lock is None or self._lock.held or not self._lock.try_acquire():
            return
        if not self._adopt(store, fresh=True):
            files.clear(self.folder)
            self.encoders = {lang: SideEncoder(lang) for lang in LANGS}
            self._disk = {lang: [] for lang in LANGS}
            self._memory = {lang: [] for lang in LANGS}
            self._deleted, self._deleted_array = set(), np.zeros(0, np.int64)
            self._deletions_at = self.generation = -1
            self.max_id = self._live = 0
            self._manifest = files.Manifest(identity=store.identity)
            self._deleted_on_disk = 0
            self._show()

    def _publish(self, seq: int, new: dict[str, list[_Segment]], drop: dict[str, int]) -> None:
        """Write ``new`` segments after the mapped ones (less the last ``drop[lang]``), the
        vocabularies and the deletions, then the manifest; map what was written."""
        old = self._manifest
        serial = old.serial + 1
        names = {}
        for lang in LANGS:
            kept = old.segments[lang][: len(old.segments[lang]) - drop[lang]]
            for number, seg in enumerate(new[lang]):
                name = f"seg-{lang}-{serial}-{number}"
                files.write_arrays(
                    self.folder, name, {k: getattr(seg, k) for k in _Segment.ARRAYS}
                )
                kept.append(name)
            names[lang] = kept
        vocab, vocab_bytes = {}, {}
        for lang in LANGS:
            tokens = self._vocab(lang).tokens_from(old.vocab[lang])
            vocab_bytes[lang] = files.append_vocab(
                self.folder, lang, old.vocab_bytes[lang], tokens
            )
            vocab[lang] = old.vocab[lang] + len(tokens)
        deleted = old.deleted
        if len(self._deleted) != self._deleted_on_disk:
            deleted = f"deleted-{serial}.npy"
            files.write_deleted(self.folder, deleted, self._deleted_array)
            self._deleted_on_disk = len(self._deleted)
        live = self._live - self._memory_live()
        manifest = files.Manifest(
            identity=old.identity, seq=seq, generation=max(self._deletions_at, 0), live=live,
            serial=serial, segments=names, vocab=vocab, vocab_bytes=vocab_bytes,
            deleted=deleted,
        )
        files.write_manifest(self.folder, manifest)
        self._disk = {
            lang: [
                _Segment(**files.map_arrays(self.folder, name, _Segment.ARRAYS))
                for name in names[lang]
            ]
            for lang in LANGS
        }
        self._manifest = manifest

    def _memory_live(self) -> int:
        ids = [seg.ids for seg in self._memory["zh"]]
        if not ids:
            return 0
        ids = np.concatenate(ids)
        return len(ids) - int(np.isin(ids, self._deleted_array).sum())

    def flush(self) -> None:
        """The indexer writes the units it holds in memory to the files (and merges the
        newest files while they are small next to the one before)."""
        if not self.is_indexer:
            return
        memory = self._memory
        if memory["zh"] or len(self._deleted) != self._deleted_on_disk:
            self._memory = {lang: [] for lang in LANGS}  # what it holds goes to the files
            self._publish(self.max_id, memory, dict.fromkeys(LANGS, 0))
            self._show()
        self._merge_files()

    def _merge_files(self) -> None:
        while True:
            segs = self._disk["zh"]
            if not (
                len(segs) > 1
                and len(segs[-2]) <= 2 * len(segs[-1])
                and len(segs[-2]) + len(segs[-1]) <= _FILE_SEGMENT_MAX
            ):
                return
            merged = {
                lang: [_Segment.merge(self._disk[lang][-2], self._disk[lang][-1],
                                      self._deleted_array)]
                for lang in LANGS
            }
            self._publish(self._manifest.seq, merged, dict.fromkeys(LANGS, 2))
            self._show()

    def close(self) -> None:
        """Write what the indexer holds in memory, and let another process index."""
        if self._lock is None:
            return
        with self._sync_lock:
            if self.is_indexer:
                self.flush()
            self._lock.release()

    # -- keeping up with the store ------------------------------------------------------
    def sync(
        self, store: TMStore, batch: int = 100_000, *, wait: bool = True, most: int | None = None
    ) -> int:
        """Catch up with ``store``: index new units, forget deleted ones. Returns units added.

        ``wait=False``: return at once when another sync is running. ``most``: index new
        units only when there are at most that many (deletions are always applied). A
        process that is not the indexer leaves large arrivals to it and maps its files.
        """
        if not self._sync_lock.acquire(blocking=wait):
            return 0
        try:
            if self.folder is not None:
                self._take_role(store)
                if not self.is_indexer:
                    self._adopt(store)
            generation = store.generation
            if generation == self.generation:
                return 0
            if self._deletions_at >= 0:
                self._forget(store.deleted_since(self._deletions_at))
            self._deletions_at = generation
            pending = store.last_id() - self.max_id
            if most is not None and pending > most:
                return 0
            if self.folder is not None and not self.is_indexer and pending > _MEMORY_MAX:
                return 0  # the indexer writes them; they are mapped when it has
            added = 0
            if self.is_indexer and pending >= _FLUSH:
                added += self._index_to_files(store)
            for chunk in store.iter_segment_batches(after_id=self.max_id, batch=batch):
                added += self._add(chunk)
            self.generation = generation
            if self.is_indexer and (
                sum(map(len, self._memory["zh"])) >= _FLUSH
                or len(self._deleted) - self._deleted_on_disk >= _FLUSH
            ):
                self.flush()
            return added
        finally:
            self._sync_lock.release()

    def _forget(self, gone: list[int]) -> None:
        gone = [i for i in gone if i not in self._deleted]
        if gone:
            self._live -= sum(1 for i in gone if i <= self.max_id)
            self._deleted.update(gone)
            self._deleted_array = np.fromiter(sorted(self._deleted), dtype=np.int64)

    def _index_to_files(self, store: TMStore) -> int:
        """Index a large arrival straight into files, ``_FILE_BUILD`` units a segment."""
        self.flush()
        added = 0
        rows: list[tuple[int, str, str]] = []
        for chunk in store.iter_segment_batches(after_id=self.max_id, batch=50_000):
            rows += chunk
            if len(rows) >= _FILE_BUILD:
                added += self._write_segment(rows)
                rows = []
        if len(rows) >= _FLUSH:
            added += self._write_segment(rows)
        elif rows:
            added += self._add(rows)
        return added

    def _write_segment(self, rows: list[tuple[int, str, str]]) -> int:
        built = {lang: [self._build(rows, lang)] for lang in LANGS}
        self._live += len(rows)
        self.max_id = int(rows[-1][0])
        self._publish(self.max_id, built, dict.fromkeys(LANGS, 0))
        self._show()
        self._merge_files()
        return len(rows)

    def _build(self, rows: list[tuple[int, str, str]], lang: str) -> _Segment:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        side = 1 if lang == "zh" else 2
        enc = self.encoders[lang]
        strings = [enc.encode(r[side], grow=True) for r in rows]
        return _Segment.build(ids, strings, *enc.gram_codes(strings, grow=True))

    def _add(self, rows: list[tuple[int, str, str]]) -> int:
        """Index ``rows`` in memory: a new segment, merged with the ones before while they
        are not much larger (an LSM tree), swapped in whole."""
        for lang in LANGS:
            segments = list(self._memory[lang])
            segments.append(self._build(rows, lang))
            while (
                len(segments) > 1
                and len(segments[-2]) <= 2 * len(segments[-1])
                and len(segments[-2]) + len(segments[-1]) <= _SEGMENT_MAX
            ):
                last, before = segments.pop(), segments.pop()
                segments.append(_Segment.merge(before, last, self._deleted_array))
            self._memory[lang] = segments
        self._show()
        self.max_id = int(rows[-1][0])
        self._live += len(rows)
        return len(rows)

    def search(
        self, text: str, lang: str, min_ratio: float, limit: int | None = None
    ) -> list[tuple[float, int]]:
        """(ratio, unit id) with ratio ≥ ``min_ratio``, best first (ties: lower id); the
        first ``limit`` of them, or all."""
        enc = self.encoders[lang]
        query = enc.encode(text)
        n = len(query)
        if n == 0:
            return []
        m = max(min_ratio, 1e-6)
        qkeys = _keys([enc.grams(query)])[0]
        choices: list[str] = []  # the candidates of every segment, scored in one call
        choice_ids: list[np.ndarray] = []
        for segment in self._segments[lang]:
            rows = segment.candidates(qkeys, n, m, enc.q)
            if len(rows):
                choices.extend(segment.strings(rows))
                choice_ids.append(segment.ids[rows])
        if not choices:
            return []
        scores = process.cdist(
            [query], choices, scorer=Levenshtein.normalized_similarity,
            score_cutoff=_cutoff(min_ratio), dtype=np.float64,
        )[0]
        ids = np.concatenate(choice_ids)
        keep = scores >= min_ratio - 1e-9
        if self._deleted:
            keep &= ~np.isin(ids, self._deleted_array)
        scores, ids = scores[keep], ids[keep]
        order = np.lexsort((ids, -scores))[:limit]
        return [(float(scores[i]), int(ids[i])) for i in order]

    def containing(self, term: str, lang: str, most: float = 0.02) -> np.ndarray | None:
        """Ids of indexed units whose ``lang`` side may contain ``term``, in id order: every
        unit that does, and a few more. None where the index would not narrow the search
        (a one-character Chinese term, or q-grams held by over ``most`` of the units).

        Chinese: units holding every character bigram of the case-folded term that lower-cased
        text holds alike (the bigrams are of lower-cased text, the store matches case-folded
        text: a bigram with "s" could miss "ß" against "ss"). English, case folded: units holding,
        for each token of the term, a token that contains it (a term's token always lies
        within one token of a text containing the term).
        """
        enc = self.encoders[lang]
        if lang == "zh":
            chars = "".join(fold(term).split()).casefold()
            groups = [[enc.bigrams.code(a + b)] for a, b in zip(chars, chars[1:], strict=False)
                      if _same_lowered(a) and _same_lowered(b)]
            groups = [g if g[0] is not None else [] for g in groups]
        else:
            groups = [enc.vocab.codes_containing(t.casefold())
                      for t in set(tokenize(term, "en"))]
        if not groups:
            return None
        if not all(groups):  # a q-gram no unit holds
            return np.zeros(0, np.int64)
        found = []
        for segment in self._segments[lang]:
            lists = sorted(
                (np.concatenate(segment.postings(g) or [np.zeros(0, np.int32)]) for g in groups),
                key=len,
            )
            if len(lists[0]) > most * len(segment):
                return None
            rows = np.unique(lists[0])
            for more in lists[1:]:
                if len(more) > most * len(segment) or not len(rows):
                    break
                rows = rows[np.isin(rows, more)]
            found.append(segment.ids[rows])
        ids = np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64)
        if self._deleted:
            ids = ids[~np.isin(ids, self._deleted_array)]
        return ids

    def score(self, text: str, lang: str, others: Iterable[str]) -> list[float]:
        """Fuzzy ratio of ``text`` against each of ``others`` (for semantic-only hits)."""
        enc = self.encoders[lang]
        query = enc.encode(text)
        return [fuzzy_ratio(query, enc.encode(o)) for o in others]


# ASCII letters that case folding makes of other characters than lower-casing does: ß → ss,
# ẖ → h, ǰ → j, ẗ → t, ẘ → w, ẙ → y (after NFKC, which ``fold`` applies).
_FOLDED_FROM_OTHERS = frozenset("hjstwy")


def _same_lowered(char: str) -> bool:
    """Whether a character of case-folded text stands where lower-cased text has it too:
    characters without case (Chinese, digits, punctuation) and ASCII letters but those that
    case folding also makes of other characters."""
    if char.lower() == char.upper():
        return True
    return char.isascii() and char not in _FOLDED_FROM_OTHERS
