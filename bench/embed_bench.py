"""Query embedding cost by batch size: why the service embeds waiting lookups together.

Embeds 1,000 real UNPC-dev sentences (500 pairs, both languages) with use-m3 on one BLAS
thread, as the service's query encoder does, in batches of 1 (the baseline: each lookup
alone), 2, 4, 8 and 16, and prints milliseconds per sentence; two rounds, the faster kept.

    python bench/embed_bench.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner.align.embed import UseM3Encoder  # noqa: E402
from bench.tm_bench import load_pairs  # noqa: E402


def main() -> int:
    texts = [text for pair in load_pairs()[:500] for text in pair]
    encoder = UseM3Encoder(threads=1)
    encoder.encode(["warm-up"])
    best: dict[int, float] = {}
    for _ in range(2):
        for size in (1, 2, 4, 8, 16):
            began = time.perf_counter()
            for start in range(0, len(texts), size):
                encoder.encode(texts[start : start + size])
            per_text = (time.perf_counter() - began) / len(texts)
            best[size] = min(best.get(size, per_text), per_text)
    print(f"use-m3, one BLAS thread, {len(texts):,} UNPC-dev sentences (zh and en)")
    for size, seconds in best.items():
        print(f"  batch {size:2d}: {seconds * 1000:.2f} ms per sentence  "
              f"({1 - seconds / best[1]:.0%} less than one at a time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
