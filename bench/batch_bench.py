"""Batch alignment throughput: one process, then a local Dask cluster of 1 and of 2 workers.

The 100 document pairs are cut from the UN Parallel Corpus dev set (../shared/data/unpc-dev):
pair k holds lines 40k .. 40k+39 of zh.txt and of en.txt (line i of one translates line i of
the other), written as NAME.zh.txt / NAME.en.txt with a blank line between sentences. First, a
few pairs are aligned in this process with use-m3 on 2 BLAS threads and on 1: the batch gives
each process one thread.

Each configuration is a fresh ``python -m aligner batch DOCS --out OUT [--workers N]`` with a
fresh embedding cache, so every run embeds every sentence and pays for its own start: the
interpreter, imports, loading the encoder and the lexicon, and for Dask starting and closing the
cluster. Wall time is measured around that command. The machine is shared, so the runs go in
rounds (every other round in reverse order) and the figures are medians over the rounds.

    per-pair overhead = (wall with a 1-worker LocalCluster - wall single process) / wall single

The pieces come from the run's summary.json (``stage_seconds``) and its per-pair reports.

    python bench/batch_bench.py [--pairs 100] [--lines 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner.batch import PIPELINE_LOGGER, read_manifest  # noqa: E402
from aligner.tmx import read_tmx  # noqa: E402

SHARED = Path(os.environ.get("CONCORDIA_SHARED_DATA", ROOT.parent / "shared" / "data"))


def build_pairs(folder: Path, pairs: int, lines: int) -> None:
    zh = (SHARED / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()
    en = (SHARED / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()
    if pairs * lines > len(zh):
        sys.exit(f"unpc-dev has {len(zh)} lines: {pairs} pairs of {lines} do not fit")
    for k in range(pairs):
        part = slice(k * lines, (k + 1) * lines)
        (folder / f"unpc{k:03d}.zh.txt").write_text("\n\n".join(zh[part]) + "\n", "utf-8")
        (folder / f"unpc{k:03d}.en.txt").write_text("\n\n".join(en[part]) + "\n", "utf-8")


def blas_threads_check(pairs, count: int = 5) -> None:
    """Seconds per pair with use-m3 on 2 BLAS threads and on 1 (why batch uses 1 per process)."""
    from aligner.align.embed import CachedEncoder, UseM3Encoder
    from aligner.pipeline import align_documents
    from aligner.read.ingest import read_document

    def align(pair, encoder) -> None:
        align_documents(read_document(pair.zh, "zh"), read_document(pair.en, "en"), encoder=encoder)

    count = max(1, min(count, len(pairs) // 4))
    align(pairs[-1], CachedEncoder(UseM3Encoder(threads=1)))  # first-use loading, not timed
    timings: dict[int, list[float]] = {1: [], 2: []}
    for start, threads in enumerate((2, 1, 1, 2)):  # both orders, on different pairs
        encoder = CachedEncoder(UseM3Encoder(threads=threads))  # memory cache only
        encoder.inner.encode(["warm-up"])
        started = time.perf_counter()
        for pair in pairs[start * count : (start + 1) * count]:
            align(pair, encoder)
        timings[threads].append((time.perf_counter() - started) / count)
    for threads, per_pair in timings.items():
        print(
            f"use-m3 with {threads} BLAS thread(s), one process: "
            f"{sum(per_pair) / len(per_pair):.2f} s per pair"
        )


RUNS = [  # name, extra command-line arguments
    ("single process", []),
    ("Dask LocalCluster, 1 worker", ["--workers", "1"]),
    ("Dask LocalCluster, 2 workers", ["--workers", "2"]),
]
STAGES = ("start", "load", "align", "close", "merge")


def _children_cpu() -> float:
    """CPU seconds of the finished commands run from here, their worker processes included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(docs: Path, out: Path, cache: Path, args: list[str]) -> dict:
    """One ``aligner batch`` command: its wall seconds and the pieces from summary.json."""
    command = [sys.executable, "-m", "aligner", "batch", str(docs), "--out", str(out), *args]
    environ = {**os.environ, "CONCORDIA_CACHE_DIR": str(cache)}
    cpu_before, started = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    reports = summary["reports"]
    return {
        "wall": wall,
        "cpu": cpu,
        "process": wall - summary["seconds"],  # interpreter, imports, manifest, exit
        **{stage: summary["stage_seconds"].get(stage, 0.0) for stage in STAGES},
        "inside": sum(r["seconds"] for r in reports) / len(reports),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--lines", type=int, default=40, help="sentences per document")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration")
    args = parser.parse_args()
    logging.getLogger(PIPELINE_LOGGER).setLevel(logging.ERROR)  # "no speaker headings"
    with tempfile.TemporaryDirectory(prefix="concordia-batch-bench-") as tmp:
        work = Path(tmp)
        docs = work / "docs"
        docs.mkdir()
        build_pairs(docs, args.pairs, args.lines)
        pairs = read_manifest(docs)
        print(
            f"{len(pairs)} document pairs of {args.lines} unpc-dev sentences per side, "
            f"{len(os.sched_getaffinity(0))} CPU cores usable, encoder use-m3; "
            f"load average before: {os.getloadavg()[0]:.1f}"
        )
        blas_threads_check(pairs)
        runs: dict[str, list[dict]] = {name: [] for name, _ in RUNS}
        outs = []
        for round_ in range(args.rounds):
            for name, extra in RUNS if round_ % 2 == 0 else RUNS[::-1]:
                tag = f"{len(outs)}"
                outs.append(work / f"out{tag}")
                run = timed_run(docs, outs[-1], work / f"cache{tag}", extra)
                runs[name].append(run)
                print(
                    f"round {round_ + 1}: {name:30s} {run['wall']:6.1f} s "
                    f"(load average {os.getloadavg()[0]:.1f})"
                )
        merged = [[(u.source, u.target) for u in read_tmx(out / "merged.tmx")] for out in outs]
        print(f"outputs identical across the runs: {all(m == merged[0] for m in merged)}")

        med = {
            name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
            for name, rs in runs.items()
        }
        print(
            f"\nmedians of {args.rounds} rounds, in seconds; cpu: CPU time of the command and its "
            "workers; process: interpreter, imports, exit"
        )
        print(
            f"{'':30s} {'wall':>6s} {'pairs/min':>9s} {'cpu':>6s} {'process':>7s} "
            + " ".join(f"{stage:>6s}" for stage in STAGES)
            + "  ms/pair inside align_pair"
        )
        for name, m in med.items():
            print(
                f"{name:30s} {m['wall']:6.1f} {len(pairs) / m['wall'] * 60:9.1f} "
                f"{m['cpu']:6.1f} {m['process']:7.2f} "
                + " ".join(f"{m[stage]:6.2f}" for stage in STAGES)
                + f"  {m['inside'] * 1000:.0f}"
            )
        single, one, two = (med[name] for name, _ in RUNS)
        print(
            f"speed-up, 2 workers vs 1 worker:       {one['wall'] / two['wall']:.2f}x "
            "(target >= 1.6)"
        )
        print(f"speed-up, 2 workers vs single process: {single['wall'] / two['wall']:.2f}x")
        gap = one["wall"] - single["wall"]
        pieces = ", ".join(f"{key} {one[key] - single[key]:+.2f}" for key in ("process", *STAGES))
        print(
            f"per-pair overhead of Dask, 1 worker vs single process: "
            f"{gap / len(pairs) * 1000:.0f} ms = {gap / single['wall'] * 100:.1f} % of the "
            f"single-process time (target <= 10 %)\n  the {gap:.2f} s in seconds: {pieces}\n"
            f"  in CPU time: {(one['cpu'] - single['cpu']) / single['cpu'] * 100:.1f} %"
        )


if __name__ == "__main__":
    main()
