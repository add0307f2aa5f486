"""Calibrating the default threshold of semantic-only matches (``MIN_SEMANTIC``).

A semantic-only match is the memory's nearest segment by meaning (cosine of use-m3
embeddings, same language as the query). It should come back when it means the same and
stay out when the memory holds nothing related. Measured on UNPC-dev as the aligner's score
calibration was, related against unrelated:

- unrelated: 500 held-out UNPC-dev sentences looked up, per language, in a memory of the
  other 3,500: the cosine of each query's best hit, i.e. what a semantic-only match would
  score when nothing related is there. UNPC-dev repeats some sentences (session titles,
  agenda formulas) and holds near copies, so queries with a fuzzy match of 50 % or more
  anywhere in the memory are left out: the rest have nothing related there (the sentences
  are shuffled from different 2015 documents);
- related: each held-out sentence against its own translation (cross-language cosine of the
  same meaning in other words, a stand-in for same-language paraphrases, which UNPC lacks and
  which the encoder scores at least as high).

It prints the share of each kept at candidate thresholds, and the lowest thresholds that keep
at most 1 % and 5 % of unrelated best hits; the service uses the 5 % one (the 1 % one keeps
under a quarter of the translations and drops real paraphrases).

    python bench/semantic_threshold.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rapidfuzz import process  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402

from aligner.align.embed import load_encoder  # noqa: E402
from bench.tm_bench import load_pairs  # noqa: E402
from service.memory.fuzzy import SideEncoder, fuzzy_ratio, percent  # noqa: E402

HELD_OUT = 500
UNRELATED_KEPT = (0.01, 0.05)  # the service takes the 5 % one (see docs/design.md)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def main() -> int:
    pairs = load_pairs()
    rng = random.Random(7)
    rng.shuffle(pairs)
    queries, memory = pairs[:HELD_OUT], pairs[HELD_OUT:]
    encoder = load_encoder("use-m3")
    began = time.perf_counter()
    vec = {
        (part, lang): unit_rows(encoder.encode([p[i] for p in rows]))
        for part, rows in (("query", queries), ("memory", memory))
        for i, lang in enumerate(("zh", "en"))
    }
    print(f"{len(pairs):,} UNPC-dev pairs embedded with use-m3 in "
          f"{time.perf_counter() - began:.0f} s; {HELD_OUT} held out as queries, "
          f"memory of {len(memory):,}")
    unrelated, fuzzy, near = [], [], 0
    for i, lang in enumerate(("zh", "en")):
        sims = vec["query", lang] @ vec["memory", lang].T
        best = sims.argmax(axis=1)
        enc = SideEncoder(lang)
        stored = [enc.encode(m[i], grow=True) for m in memory]
        nearest = process.cdist(
            [enc.encode(q[i], grow=True) for q in queries], stored,
            scorer=Levenshtein.normalized_similarity, dtype=np.float64,
        ).max(axis=1)
        for q, b, ratio in zip(range(len(queries)), best.tolist(), nearest.tolist(), strict=True):
            if ratio >= 0.5:
                near += 1
                continue
            unrelated.append(float(sims[q, b]))
            fuzzy.append(percent(fuzzy_ratio(enc.encode(queries[q][i]), stored[b])))
    print(f"{near} of {2 * len(queries)} queries left out: a fuzzy match >= 50 % in the memory")
    related = np.sum(vec["query", "zh"] * vec["query", "en"], axis=1).tolist()
    unrelated, related = np.asarray(unrelated), np.asarray(related)
    print(f"unrelated best hits: cosine p50 {np.median(unrelated):.3f}, p99 "
          f"{np.percentile(unrelated, 99):.3f}, max {unrelated.max():.3f}; their fuzzy % "
          f"p50 {np.median(fuzzy):.0f}, max {max(fuzzy)}")
    print(f"related (translations): cosine p1 {np.percentile(related, 1):.3f}, "
          f"p50 {np.median(related):.3f}")
    print("threshold  unrelated kept  related kept")
    for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8):
        print(f"  {t:.2f}      {np.mean(unrelated >= t):6.1%}        {np.mean(related >= t):6.1%}")
    for share in UNRELATED_KEPT:
        threshold = float(np.ceil(np.quantile(unrelated, 1 - share) * 100) / 100)
        print(f"lowest threshold (2 decimals) keeping at most {share:.0%} of unrelated best "
              f"hits: {threshold:.2f} (unrelated kept {np.mean(unrelated >= threshold):.1%}, "
              f"related kept {np.mean(related >= threshold):.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
