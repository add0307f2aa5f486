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
import json
import math
import os
import re
import shutil
import threading
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from service.memory.matching import fold
from service.memory.store import (
    TMStore,
    fsync_folder,
    process_lock,
)

LANGS = ("zh", "en")
_WORD = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]")
_OCC_BITS = 8
_MAX_OCC = (1 << _OCC_BITS) - 1
_SEGMENT_MAX = 1 << 18
_FORMAT = 3  # 2: rows in order of length; 3: segments folded for matching
_FEW = 256  # candidates left for rapidfuzz to settle without more counting
_TOP_CODE = 0x10FFFF
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

    def tokens(self) -> list[str]:
        """Every token, in code order (what ``restore`` takes back)."""
        return list(self._codes)

    def restore(self, tokens: list[str]) -> None:
        self._codes = {tok: _code(number) for number, tok in enumerate(tokens)}
        self._lowered = []

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


def _keys(strings: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted unique keys, offsets, posting rows): the inverted index of ``strings``.

    A key is ``code_point << 8 | occurrence``: the k-th occurrence of a token in a segment is
    its own key, so counting shared keys counts shared tokens with multiplicity.
    """
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int32)
    cps = np.frombuffer("".join(strings).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    rows = np.repeat(np.arange(len(strings), dtype=np.int64), lengths)
    packed = np.sort((rows << 21) | cps)
    rows, cps = packed >> 21, packed & ((1 << 21) - 1)
    run_start = np.ones(total, dtype=bool)
    run_start[1:] = packed[1:] != packed[:-1]
    starts = np.flatnonzero(run_start)
    occ = np.arange(total) - np.repeat(starts, np.diff(np.append(starts, total)))
    keys = (cps << _OCC_BITS) | np.minimum(occ, _MAX_OCC)
    packed = np.sort((keys << 32) | rows)
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


class _Segment:
    """An immutable slice of the index: unit ids, their scored strings, postings of q-grams.

    Rows are numbered in order of length, so the rows of the lengths a query can match form
    one range and a posting list is cut to them by comparing row numbers.
    """

    def __init__(self, ids: np.ndarray, strings: list[str], keys, offsets, rows):
        self.ids = ids
        self.strings = strings
        self.lengths = np.fromiter(map(len, strings), dtype=np.int32, count=len(strings))
        self.keys, self.offsets, self.rows = keys, offsets, rows

    @classmethod
    def build(cls, ids: np.ndarray, strings: list[str], grams: list[str]) -> _Segment:
        order = np.argsort(np.fromiter(map(len, strings), np.int64, len(strings)), kind="stable")
        pick = order.tolist()
        return cls(ids[order], [strings[i] for i in pick], *_keys([grams[i] for i in pick]))

    @classmethod
    def merge(cls, a: _Segment, b: _Segment, deleted: np.ndarray) -> _Segment:
        """One segment holding both, without ``deleted`` ids; postings merged, not rebuilt."""
        ids = np.concatenate([a.ids, b.ids])
        kept = np.arange(len(ids))
        if len(deleted):
            kept = np.flatnonzero(~np.isin(ids, deleted))
        order = kept[np.argsort(np.concatenate([a.lengths, b.lengths])[kept], kind="stable")]
        new_row = np.full(len(ids), -1, dtype=np.int64)
        new_row[order] = np.arange(len(order))
        keys = np.concatenate(
            [np.repeat(a.keys, np.diff(a.offsets)), np.repeat(b.keys, np.diff(b.offsets))]
        )
        rows = new_row[np.concatenate([a.rows, b.rows.astype(np.int64) + len(a)])]
        del new_row
        if len(order) < len(ids):  # postings of deleted rows go
            live = rows >= 0
            keys, rows = keys[live], rows[live]
        strings = a.strings + b.strings
        strings = [strings[i] for i in order.tolist()]
        keys <<= 32  # (key, row) packed and sorted in place: these arrays are the peak
        keys |= rows
        del rows
        keys.sort()
        rows = (keys & 0xFFFFFFFF).astype(np.int32)
        keys >>= 32
        return cls(ids[order], strings, *_csr(keys, rows))

    def __len__(self) -> int:
        return len(self.strings)

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
        found = np.concatenate(lists[:head])
        # Lengths outside [lo, hi] can never make it: dropped before counting, which sorts.
        rows, count = _unique_counts(found[(found >= first) & (found < last)], len(self))
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


def _load_segment(path: Path) -> _Segment:
    with np.load(path) as z:
        text = z["text"].tobytes().decode("utf-32-le")
        ends = np.cumsum(z["lengths"]).tolist()
        starts = [0, *ends[:-1]]
        strings = [text[a:b] for a, b in zip(starts, ends, strict=True)]
        return _Segment(z["ids"], strings, z["keys"], z["offsets"], z["rows"])


class FuzzyIndex:
    """The in-memory n-gram (token) index of both sides of the memory."""

    def __init__(self) -> None:
        self.encoders = {lang: SideEncoder(lang) for lang in LANGS}
        self._segments: dict[str, list[_Segment]] = {lang: [] for lang in LANGS}
        self._deleted: set[int] = set()
        self._deleted_array = np.zeros(0, np.int64)
        self.generation = -1
        self.max_id = 0
        self._live = 0  # units indexed and not deleted
        self._sync_lock = threading.Lock()

    def __len__(self) -> int:
        return self._live

    # -- persistence: saved at shutdown, so a restart need not re-tokenise the memory ----
    def save(self, folder: Path) -> None:
        """Write the index to ``folder`` (replaced whole; a crash leaves the old one).

        Workers of one service share the folder: one at a time saves, and none replaces
        an index that is as new as its own.
        """
        with self._sync_lock, process_lock(folder.with_name(folder.name + ".lock")):
            try:
                meta = json.loads((folder / "meta.json").read_text())
                saved = meta["generation"] if meta["version"] == _FORMAT else -1
            except (OSError, ValueError, KeyError, TypeError):
                saved = -1
            if saved >= self.generation:
                return
            tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for lang, segments in self._segments.items():
                enc = self.encoders[lang]
                vocab = enc.vocab or enc.bigrams
                (tmp / f"{lang}-vocab.json").write_text(
                    json.dumps(list(vocab.tokens()), ensure_ascii=False)
                )
                for number, seg in enumerate(segments):
                    text = "".join(seg.strings).encode("utf-32-le")
                    np.savez(
                        tmp / f"{lang}-{number}.npz", ids=seg.ids, lengths=seg.lengths,
                        text=np.frombuffer(text, dtype=np.uint32), keys=seg.keys,
                        offsets=seg.offsets, rows=seg.rows,
                    )
            meta = {
                "version": _FORMAT,
                "generation": self.generation,
                "max_id": self.max_id,
                "deleted": sorted(self._deleted),
                "segments": {lang: len(segs) for lang, segs in self._segments.items()},
            }
            (tmp / "meta.json").write_text(json.dumps(meta))
            fsync_folder(tmp)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)

    def load(self, folder: Path, store: TMStore) -> bool:
        """Take the index saved in ``folder`` if it can belong to ``store``; ``sync`` then
        brings it up to date. False (and nothing changed) when there is none or it is not."""
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if (
                meta["version"] != _FORMAT
                or not 0 <= meta["generation"] <= store.generation
                or meta["max_id"] > store.max_id()
            ):
                return False
            encoders = {lang: SideEncoder(lang) for lang in LANGS}
            segments: dict[str, list[_Segment]] = {}
            for lang in LANGS:
                enc = encoders[lang]
                tokens = json.loads((folder / f"{lang}-vocab.json").read_text())
                (enc.vocab or enc.bigrams).restore(tokens)
                segments[lang] = [
                    _load_segment(folder / f"{lang}-{n}.npz") for n in range(meta["segments"][lang])
                ]
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
            return False  # missing or damaged: the caller rebuilds from the store
        with self._sync_lock:
            self.encoders, self._segments = encoders, segments
            self._deleted = set(meta["deleted"])
            self._deleted_array = np.fromiter(sorted(self._deleted), dtype=np.int64)
            self.generation, self.max_id = meta["generation"], meta["max_id"]
            self._live = sum(
                int((~np.isin(seg.ids, self._deleted_array)).sum()) for seg in segments["zh"]
            )
        return True

    def sync(self, store: TMStore, batch: int = 100_000) -> int:
        """Catch up with ``store``: index new units, forget deleted ones. Returns units added."""
        with self._sync_lock:
            generation = store.generation
            if generation == self.generation:
                return 0
            if self.generation >= 0:
                gone = [i for i in store.deleted_since(self.generation) if i not in self._deleted]
                if gone:
                    self._live -= sum(1 for i in gone if i <= self.max_id)
                    self._deleted.update(gone)
                    self._deleted_array = np.fromiter(sorted(self._deleted), dtype=np.int64)
            added = 0
            for chunk in store.iter_segment_batches(after_id=self.max_id, batch=batch):
                added += self._add(chunk)
            self.generation = generation
            return added

    def _add(self, rows: list[tuple[int, str, str]]) -> int:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        for side, lang in ((1, "zh"), (2, "en")):
            enc = self.encoders[lang]
            strings = [enc.encode(r[side], grow=True) for r in rows]
            grams = [enc.grams(s, grow=True) for s in strings]
            segments = list(self._segments[lang])
            segments.append(_Segment.build(ids, strings, grams))
            del grams
            while (
                len(segments) > 1
                and len(segments[-2]) <= 2 * len(segments[-1])
                and len(segments[-2]) + len(segments[-1]) <= _SEGMENT_MAX
            ):
                last, before = segments.pop(), segments.pop()
                segments.append(_Segment.merge(before, last, self._deleted_array))
            self._segments[lang] = segments  # swapped in whole: readers never see a half
        self.max_id = int(ids[-1])
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
                strings = segment.strings
                choices.extend([strings[r] for r in rows.tolist()])
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
