"""Embedding a memory for semantic search: ``concordia-tm embed`` on a local Dask cluster beside
the service's own embedding in one process (``SemanticIndex.sync``), in the same run.

The memory is ``--size`` units of ``tm_bench`` (real UNPC-dev pairs, then clause halves joined),
imported twice into fresh data folders; each folder is embedded once, one way, and the two
indexes are compared (the same units, the same vectors within float16). Prints units/s (both
sides of each unit embedded) and the load average.

    python bench/embed_job_bench.py --size 20000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import tm_bench  # noqa: E402

from aligner.models import TranslationUnit  # noqa: E402
from service.memory.factory import open_store  # noqa: E402
from service.memory.semantic import SemanticIndex  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    pairs = tm_bench.load_pairs()
    heads, tails = tm_bench.halves(pairs)
    units = [TranslationUnit(zh, en, "zh-CN", "en-US")
             for zh, en in tm_bench.grow(pairs, heads, tails, args.size)]
    work = Path(tempfile.mkdtemp(prefix="concordia-embed-bench-"))
    try:
        folders = {name: work / name for name in ("here", "cluster")}
        for data in folders.values():
            store = open_store(data)
            store.import_units(units, source="bench")
            store.close()
        print(f"{len(units):,} units; load average {os.getloadavg()[0]:.1f}", flush=True)

        store = open_store(folders["here"])
        index = SemanticIndex(folders["here"], "use-m3")
        began = time.perf_counter()
        index.sync(store)
        here = time.perf_counter() - began
        print(f"one process (the service's sync): {len(units) / here:,.0f} units/s "
              f"({here:.1f} s; load {os.getloadavg()[0]:.1f})", flush=True)

        began = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "service.cli", "--data", str(folders["cluster"]), "embed",
             "--workers", str(args.workers)],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )
        there = time.perf_counter() - began
        answer = json.loads(run.stdout)
        print(f"concordia-tm embed --workers {args.workers}: {len(units) / there:,.0f} units/s "
              f"({there:.1f} s with the cluster's start; load {os.getloadavg()[0]:.1f}); "
              f"{answer['embedded']:,} embedded", flush=True)

        other_store = open_store(folders["cluster"])
        other = SemanticIndex(folders["cluster"], "use-m3")
        other.load(other_store)
        sample = np.linspace(1, len(units), 200).astype(int)
        worst = max(
            float(np.abs(index.stored_vector(int(i), lang) - other.stored_vector(int(i), lang))
                  .max())
            for i in sample for lang in ("zh", "en")
        )
        print(f"same units: {len(index) == len(other) == len(units)}; largest difference of "
              f"a vector component on 200 units: {worst:.4f}", flush=True)
        for closing in (index, other, store, other_store):
            closing.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
