"""Batch alignment throughput: one process, then a local Dask cluster of 1 and of 2 workers.

The 100 document pairs are cut from the UN Parallel Corpus dev set (../shared/data/unpc-dev):
pair k holds lines 40k .. 40k+39 of zh.txt and of en.txt (line i of one translates line i of
the other), written as NAME.zh.txt / NAME.en.txt with a blank line between sentences. Every run
gets a fresh embedding cache, so each one embeds every sentence; the Dask runs include starting
the cluster and loading the encoder on each worker (that is the overhead measured). First, a
few pairs are aligned in this process with use-m3 on 2 BLAS threads and on 1: the batch gives
each process one thread.

    python bench/batch_bench.py [--pairs 100] [--lines 40]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from threadpoolctl import threadpool_limits  # noqa: E402

from aligner.batch import (  # noqa: E402
    PIPELINE_LOGGER,
    BatchSettings,
    prepare_worker,
    read_manifest,
    run_batch,
)
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
    from aligner.embed import CachedEncoder, UseM3Encoder
    from aligner.ingest import read_document
    from aligner.pipeline import align_documents

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


def timed_run(pairs, out: Path, settings, cache: Path, limit: int | None, **where):
    """(wall seconds, mean seconds inside align_pair) of one batch run, with a fresh encoder
    and embedding cache: single-process runs go to a new process of their own."""
    os.environ["CONCORDIA_CACHE_DIR"] = str(cache)  # new (worker) processes inherit it
    if where:
        return _run(pairs, out, settings, None, where)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run, (pairs, out, settings, limit, where))


def _run(pairs, out: Path, settings, limit: int | None, where: dict):
    logging.getLogger(PIPELINE_LOGGER).setLevel(logging.ERROR)
    with threadpool_limits(limit) if limit else contextlib.nullcontext():
        started = time.perf_counter()
        summary = run_batch(pairs, out, settings, **where)
        seconds = time.perf_counter() - started
    if summary.failed:
        sys.exit(f"{len(summary.failed)} pairs failed: {summary.failed[0]['reason']}")
    return seconds, sum(r["seconds"] for r in summary.reports) / len(summary.reports)


def cluster_start_up(cache: Path, workers: int = 1) -> float:
    """Seconds to start a LocalCluster, load the encoder on its workers and close it again."""
    from dask.distributed import Client, LocalCluster

    os.environ["CONCORDIA_CACHE_DIR"] = str(cache)
    started = time.perf_counter()
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(prepare_worker, "use-m3", logging.ERROR)
    return time.perf_counter() - started


RUNS = [  # name, run_batch arguments, thread limit in this process
    ("single process", {}, None),
    ("single process, 1 thread", {}, 1),  # what each Dask worker gets (OMP_NUM_THREADS=1 etc.)
    ("Dask LocalCluster, 1 worker", {"workers": 1}, None),
    ("Dask LocalCluster, 2 workers", {"workers": 2}, None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--lines", type=int, default=40, help="sentences per document")
    args = parser.parse_args()
    logging.getLogger(PIPELINE_LOGGER).setLevel(logging.ERROR)  # "no speaker headings" per pair
    with tempfile.TemporaryDirectory(prefix="concordia-batch-bench-") as tmp:
        work = Path(tmp)
        (work / "docs").mkdir()
        build_pairs(work / "docs", args.pairs, args.lines)
        pairs = read_manifest(work / "docs")
        settings = BatchSettings.create()
        print(
            f"{len(pairs)} document pairs of {args.lines} unpc-dev sentences per side, "
            f"{len(os.sched_getaffinity(0))} CPU cores usable, encoder {settings.encoder}; "
            f"load average before: {os.getloadavg()[0]:.1f}"
        )
        blas_threads_check(pairs)
        os.environ.pop("CONCORDIA_CACHE_DIR", None)
        seconds = {}
        for number, (name, where, limit) in enumerate(RUNS):
            out, cache = work / f"out{number}", work / f"cache{number}"
            seconds[name], inside = timed_run(pairs, out, settings, cache, limit, **where)
            rate = len(pairs) / seconds[name] * 60
            print(
                f"{name:30s} {seconds[name]:6.1f} s  {rate:6.1f} pairs/min  "
                f"({inside * 1000:.0f} ms per pair inside align_pair; "
                f"load average after: {os.getloadavg()[0]:.1f})"
            )
        merged = [
            [(u.source, u.target) for u in read_tmx(work / f"out{n}" / "merged.tmx")]
            for n in range(len(RUNS))
        ]
        single, single_1, one, two = (seconds[name] for name, _, _ in RUNS)
        print(f"outputs identical across the runs: {all(m == merged[0] for m in merged)}")
        print(f"speed-up, 2 workers vs 1 worker:                 {one / two:.2f}x (target >= 1.6)")
        print(f"speed-up, 2 workers vs single process, 1 thread: {single_1 / two:.2f}x")
        print(f"speed-up, 2 workers vs single process:           {single / two:.2f}x")
        for baseline_name, baseline in (("1 thread", single_1), ("unrestricted", single)):
            overhead = (one - baseline) / len(pairs)
            print(
                f"per-pair overhead of Dask, 1 worker vs single process ({baseline_name}): "
                f"{overhead * 1000:.0f} ms = {overhead / (baseline / len(pairs)) * 100:.1f} % "
                "of the single-process time per pair (target <= 10 %)"
            )
        fixed = cluster_start_up(work / "cache-start-up")
        print(
            f"of the {one - single_1:.1f} s between 1 worker and single process (1 thread): "
            f"{fixed:.1f} s start a 1-worker LocalCluster, load the encoder there and close it "
            f"again (timed alone); the remaining {(one - single_1 - fixed):.1f} s is "
            f"{(one - single_1 - fixed) / len(pairs) * 1000:.0f} ms per pair"
        )


if __name__ == "__main__":
    main()
