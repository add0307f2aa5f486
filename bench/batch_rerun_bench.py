"""A rerun of ``aligner batch`` on a folder whose pairs are all done: this code against a
baseline commit, on the same folder, in the same run.

The pairs are cut from the UN Parallel Corpus dev set as in batch_bench.py (pair k: lines
40k .. 40k+39 of zh.txt and en.txt). This code aligns them once (the first run, timed too);
then each rerun is a fresh ``python -m aligner batch DOCS --out OUT [--workers N]`` from this
tree or from the baseline's (``git archive BASELINE``, run from its own folder so that its
``aligner`` is imported), in rounds, every other round in reverse order. Every rerun must find
every pair done. Figures are medians of the wall time around the command.

    python bench/batch_rerun_bench.py [--pairs 30] [--rounds 3] [--baseline d8345ca]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_bench import build_pairs  # noqa: E402

CONFIGS = [("single process", []), ("--workers 2", ["--workers", "2"])]


def run(tree: Path, docs: Path, out: Path, cache: Path, extra: list[str]) -> tuple[float, dict]:
    """One command from ``tree``: its wall seconds and its summary."""
    command = [sys.executable, "-m", "aligner", "batch", str(docs), "--out", str(out), *extra]
    environ = {**os.environ, "CONCORDIA_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=environ, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} (in {tree}) failed:\n{done.stderr[-2000:]}")
    return wall, json.loads((out / "summary.json").read_text(encoding="utf-8"))


def baseline_tree(ref: str, into: Path) -> Path:
    archive = into / "baseline.tar"
    with archive.open("wb") as handle:
        subprocess.run(["git", "archive", ref, "aligner"], cwd=ROOT, stdout=handle, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "baseline", filter="data")
    return into / "baseline"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--lines", type=int, default=40, help="sentences per document")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="d8345ca", help="git ref of the old code")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="concordia-rerun-bench-") as tmp:
        work = Path(tmp)
        docs, out, cache = work / "docs", work / "out", work / "cache"
        docs.mkdir()
        build_pairs(docs, args.pairs, args.lines)
        trees = {"this code": ROOT, f"baseline {args.baseline}": baseline_tree(args.baseline, work)}
        wall, summary = run(ROOT, docs, out, cache, ["--workers", "2"])
        print(
            f"{args.pairs} pairs of {args.lines} unpc-dev sentences a side; first run (this "
            f"code, --workers 2): {wall:.1f} s, {summary['ok']} ok; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        walls: dict[tuple[str, str], list[float]] = {}
        order = [(tree, config) for config in CONFIGS for tree in trees]
        for round_ in range(args.rounds):
            for tree, (config, extra) in order if round_ % 2 == 0 else order[::-1]:
                wall, summary = run(trees[tree], docs, out, cache, extra)
                if summary["resumed"] != args.pairs:
                    sys.exit(f"{tree}, {config}: {summary['resumed']} of {args.pairs} resumed")
                walls.setdefault((tree, config), []).append(wall)
                stages = ", ".join(f"{k} {v:.2f}" for k, v in summary["stage_seconds"].items())
                print(f"round {round_ + 1}: {tree:18s} {config:15s} {wall:5.2f} s ({stages})")
        print(f"\nrerun with every pair done, median of {args.rounds} (target <= 2 s):")
        for (tree, config), values in walls.items():
            print(f"  {tree:18s} {config:15s} {statistics.median(values):5.2f} s")


if __name__ == "__main__":
    main()
