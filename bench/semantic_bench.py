"""The semantic index at scale: IVF-PQ + exact re-scoring beside exact search, real embeddings.

Units are the scale bench's (bench/scale_bench.py ``Units``: real UNPC-dev heads, clauses and
tails, each unit different), embedded with use-m3 (both sides) and cached under --cache, chunk
by chunk (an interrupted run resumes; a rerun embeds nothing). Queries: 1,000 of the scale
bench's (half English, half Chinese: units as they are, edited, clipped, and not in the
memory), embedded the same way.

Measured in one run, on the same vectors:
  exact       ``IndexFlatIP`` over the float32 vectors (the baseline; what recall is against)
  service     ``SemanticIndex`` as the service builds it: rows appended in batches of 1,024,
              the quantiser trained when the memory reaches ``--exact-below`` units (the
              service's default), then grown to --units; its searches (quantised candidates,
              re-scored from the float16 file) and files
  retrained   the same index with its quantiser trained again on all --units rows
For each: bytes per vector in memory, recall@10 against exact, single-query p50/p95 (k=10,
one thread, re-scoring included), build time; for the service's files: the save of 1,000
more units (appended) beside a full rewrite of the files and beside writing the float32
flat index (what each save did before, at best: the HNSW files were larger), and the time to
open the saved files (a worker's cold start). A sweep of lists probed × candidates
re-scored shows where the defaults sit. --synthetic N adds N synthetic vectors (real ones
with noise, one side) to show memory and latency at that size; their recall means little.

    python bench/semantic_bench.py --units 200000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import service.memory.semantic as semantic  # noqa: E402
from bench.scale_bench import Units, make_queries  # noqa: E402
from bench.tm_bench import pct  # noqa: E402
from service.memory.lookup import MIN_SEMANTIC  # noqa: E402
from service.memory.semantic import LANGS, SemanticIndex  # noqa: E402

CHUNK = 5_000
INCREMENT = 1_000
SHOWN: list[list[int]] = []  # per query, the exact top-10 ids a lookup can show


def embed_cached(texts: list[str], encoder, path: Path) -> np.ndarray:
    if not path.exists():
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, np.asarray(encoder.encode(texts), dtype=np.float32))
        tmp.rename(path)
    return np.load(path)


def embeddings(units: Units, n: int, cache: Path) -> dict[str, np.ndarray]:
    """float32 use-m3 vectors of units 0..n-1 per side, cached chunk by chunk."""
    from aligner.align.embed import UseM3Encoder

    cache.mkdir(parents=True, exist_ok=True)
    encoders = {lang: UseM3Encoder(threads=1) for lang in LANGS}
    pool = ThreadPoolExecutor(2)
    began, done = time.perf_counter(), 0
    out: dict[str, list[np.ndarray]] = {lang: [] for lang in LANGS}
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        paths = {lang: cache / f"{lang}-{start:08d}-{stop:08d}.npy" for lang in LANGS}
        fresh = not all(p.exists() for p in paths.values())
        if fresh:
            rows = [units[i] for i in range(start, stop)]
            texts = {"zh": [r[0] for r in rows], "en": [r[1] for r in rows]}
        futures = {
            lang: pool.submit(embed_cached, texts[lang] if fresh else [], encoders[lang], path)
            for lang, path in paths.items()
        }
        for lang, future in futures.items():
            out[lang].append(future.result())
        if fresh:
            done += 2 * (stop - start)
            rate = done / (time.perf_counter() - began)
            print(f"  embedded {stop:,}/{n:,} units ({rate:.0f} sentences/s)", flush=True)
    pool.shutdown()
    return {lang: np.concatenate(parts) for lang, parts in out.items()}


def query_vectors(units: Units, size: int, cache: Path) -> tuple[list[str], np.ndarray]:
    from aligner.align.embed import UseM3Encoder

    queries = make_queries(units, size, 1_000, seed=23)
    vectors = embed_cached([t for t, _ in queries], UseM3Encoder(threads=1),
                           cache / f"queries-{size}.npy")
    return [lang for _, lang in queries], vectors


def timed(fn, *args):
    began = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - began, out


def latencies(search, langs, queries) -> tuple[list[list[int]], list[float]]:
    faiss.omp_set_num_threads(1)
    found, times = [], []
    for lang, vector in zip(langs, queries, strict=True):
        began = time.perf_counter()
        hits = search(vector, lang)
        times.append(time.perf_counter() - began)
        found.append(hits)
    return found, times


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    hit = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    return hit / sum(len(t) for t in truth)


def memory_per_vector(index: SemanticIndex) -> tuple[float, float, int]:
    """(bytes of codes + ids in the inverted lists per vector and side, fixed bytes per side:
    coarse centroids and PQ codebooks, vectors per side)."""
    ivf = index._files.indexes["zh"]
    lists = ivf.invlists
    sizes = [lists.list_size(i) for i in range(ivf.nlist)]
    stored = sum(sizes)
    if isinstance(ivf, faiss.IndexIVFFastScan):  # blocks of 32 codes (the last one padded)
        packer = ivf.get_CodePacker()
        variable = sum(-(-m // packer.nvec) for m in sizes) * packer.block_size + stored * 8
    else:  # ArrayInvertedLists: a code and an int64 id each
        variable = stored * (ivf.code_size + 8)
    fixed = ivf.nlist * ivf.d * 4 + ivf.pq.M * ivf.pq.ksub * ivf.pq.dsub * 4
    return variable / stored, fixed, stored


def fsync_file(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    os.fsync(handle)
    os.close(handle)


def report(name: str, found, truth, times, extra: str = "") -> None:
    shown = recall([[i for i in f if i in t] for f, t in zip(found, SHOWN, strict=True)], SHOWN)
    print(f"  {name:<34} recall@10 {recall(found, truth):.3f} (of hits >= {MIN_SEMANTIC}: "
          f"{shown:.3f})   p50 {pct(times, 50) * 1000:5.2f} ms   p95 {pct(times, 95) * 1000:5.2f}"
          f" ms  {extra}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=200_000)
    parser.add_argument("--exact-below", type=int, default=50_000)
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "semantic-bench")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "semantic-bench-work")
    parser.add_argument("--embed-only", action="store_true")
    parser.add_argument("--synthetic", type=int, default=0)
    parser.add_argument("--kinds", default="PQ64,PQ64x4fs,PQ128x4fs",
                        help="quantisers (semantic.QUANTISER) compared, trained on all rows")
    parser.add_argument("--shares", default="0.0625,0.125,0.25",
                        help="shares of the lists searched (semantic.PROBE_SHARE) compared")
    parser.add_argument("--compare-only", action="store_true",
                        help="skip the sweep and the saves: exact, then the quantisers "
                        "(at --synthetic size if given)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    units = Units()
    vectors = embeddings(units, args.units + INCREMENT, args.cache)
    langs, queries = query_vectors(units, args.units, args.cache)
    if args.embed_only:
        return 0
    n = args.units
    ids = np.arange(1, n + INCREMENT + 1, dtype=np.int64)
    print(f"{n:,} units (both sides), {len(langs):,} queries (k=10, one at a time, one thread)")

    # -- exact: the baseline ------------------------------------------------------------
    exact = {lang: faiss.IndexFlatIP(vectors[lang].shape[1]) for lang in LANGS}
    build_exact = sum(timed(exact[lang].add, vectors[lang][:n])[0] for lang in LANGS)
    truth, exact_times = latencies(
        lambda v, lang: exact[lang].search(v.reshape(1, -1), 10)[1][0].tolist(), langs, queries
    )
    truth = [[i + 1 for i in t] for t in truth]  # rows → unit ids
    global SHOWN  # the exact top 10 a lookup can show: cosine >= MIN_SEMANTIC
    SHOWN = [
        [i + 1 for i, s in zip(*(a[0] for a in exact[lang].search(v.reshape(1, -1), 10)[::-1]),
                                strict=True) if s >= MIN_SEMANTIC]
        for lang, v in zip(langs, queries, strict=True)
    ]
    report("exact (IndexFlatIP, float32)", truth, truth, exact_times,
           f"2,056 B/vector in memory; build {build_exact:.1f} s")

    # -- the service's index --------------------------------------------------------------
    shutil.rmtree(args.work, ignore_errors=True)
    index = SemanticIndex(args.work, "use-m3", exact_below=args.exact_below)
    index._store_identity = "bench"
    index.folder.mkdir(parents=True)
    trained = []
    quantise = index._quantise

    def timed_quantise() -> None:
        seconds, _ = timed(quantise)
        trained.append(seconds)

    index._quantise = timed_quantise
    began = time.perf_counter()
    for lo in range(0, n, 1024):
        hi = min(n, lo + 1024)
        index._append(ids[lo:hi], {lang: vectors[lang][lo:hi] for lang in LANGS})
    build = time.perf_counter() - began
    full_save_first, _ = timed(index.save)
    per_vector, fixed, stored = memory_per_vector(index)
    ivf = index._files.indexes["zh"]

    def service_search(v, lang):
        return [i for i, _ in index.search(v, lang, 10)]

    found, times = latencies(service_search, langs, queries)
    kind = f"IVF{ivf.nlist},{semantic._kind(ivf)}"
    report(f"service: {kind} trained at {args.exact_below:,}", found, truth, times,
           f"{per_vector:.0f} B/vector in memory (+{fixed / stored:.1f} fixed); "
           f"build {build:.1f} s incl. training {sum(trained):.1f} s")
    print(f"    in memory per side: {per_vector:.0f} B/vector (PQ codes {ivf.code_size} + id 8; "
          f"fast-scan lists in blocks of 32), "
          f"fixed {fixed / 1e6:.1f} MB (centroids, codebooks); unit ids mapped from disk "
          f"(8 B/unit, page cache); float16 vectors on disk {index._files.rows * 1024:,} B/side",
          flush=True)
    print(f"    {index._params.nprobe} lists of {ivf.nlist} searched, {semantic.RERANK} "
          f"candidates re-scored; "
          f"exact search p95 / this p95: {pct(exact_times, 95) / pct(times, 95):.1f}x", flush=True)

    kinds = args.kinds.split(",")
    shares = [float(x) for x in args.shares.split(",")]
    if args.compare_only:  # at --synthetic size if given, else on the real units
        if not args.synthetic:
            compare(index, quantise, kinds, shares, langs, queries, truth, exact_times)
        else:
            synthetic(index, vectors, langs, queries, args.synthetic, kinds, shares)
        index.close()
        print(f"load average at end: {os.getloadavg()[0]:.2f}", flush=True)
        return 0
    print("  sweep (share of the lists searched × candidates re-scored):", flush=True)
    defaults = semantic.PROBE_SHARE, semantic.RERANK
    for share in (1 / 16, 1 / 8, 1 / 4, 1 / 2):
        for rerank in (100, 200, 400):
            semantic.PROBE_SHARE, semantic.RERANK = share, rerank
            index._set_filter()
            found, times = latencies(service_search, langs, queries)
            report(f"    lists {index._params.nprobe:4d}/{ivf.nlist} re-score {rerank:3d}",
                   found, truth, times)
    semantic.PROBE_SHARE, semantic.RERANK = defaults
    index._set_filter()

    # -- saves: an increment, a full rewrite, today's whole index -------------------------
    serial = index._serial
    began = time.perf_counter()
    index._append(ids[n:], {lang: vectors[lang][n:] for lang in LANGS})
    appended = time.perf_counter() - began
    saved, _ = timed(index.save)
    assert index._serial == serial + 1
    print(f"  save of {INCREMENT:,} more units: {(appended + saved) * 1000:.0f} ms "
          f"(rows written {appended * 1000:.0f} ms, flush + manifest {saved * 1000:.0f} ms)",
          flush=True)
    rewrite, _ = timed(index._compact)  # every file written anew (nothing deleted)
    rewrite_save, _ = timed(index.save)
    print(f"  full rewrite of the files: {rewrite + rewrite_save:.1f} s", flush=True)
    flat_file = args.work / "flat.faiss"
    before_write = time.perf_counter()
    for lang in LANGS:
        faiss.write_index(exact[lang], str(flat_file))
        fsync_file(flat_file)
    print(f"  before: the float32 flat index written whole (both sides): "
          f"{time.perf_counter() - before_write:.1f} s, "
          f"{2 * flat_file.stat().st_size / 1e6:,.0f} MB", flush=True)
    flat_file.unlink()
    manifest = json.loads((index.folder / semantic.MANIFEST).read_text())
    opened, files = timed(index._open, manifest)
    print(f"  open the saved files (a worker's cold start): {opened:.1f} s, "
          f"{sum(p.stat().st_size for p in index.folder.iterdir()) / 1e6:,.0f} MB on disk",
          flush=True)

    # -- retrained on everything ----------------------------------------------------------
    seconds, _ = timed(quantise)
    ivf = index._files.indexes["zh"]
    found, times = latencies(service_search, langs, queries)
    kind = f"IVF{ivf.nlist},{semantic._kind(ivf)}"
    report(f"retrained: {kind} on {min(n, semantic._TRAIN_MAX):,}", found, truth, times,
           f"train + encode {seconds:.1f} s")

    compare(index, quantise, kinds, shares, langs, queries, truth, exact_times)
    if args.synthetic:
        synthetic(index, vectors, langs, queries, args.synthetic, kinds, shares)
    index.close()
    print(f"load average at end: {os.getloadavg()[0]:.2f}", flush=True)
    return 0


def compare(index: SemanticIndex, quantise, kinds, shares, langs, queries, truth,
            exact_times) -> None:
    """Each quantiser trained on all rows, searched with each share of its lists."""
    default_kind, default_share = semantic.QUANTISER, semantic.PROBE_SHARE
    print(f"  quantisers trained on all {index._files.rows:,} rows (recall@10 against exact; "
          f"exact p95 {pct(exact_times, 95) * 1000:.2f} ms):", flush=True)
    for kind in kinds:
        semantic.QUANTISER = kind
        seconds, _ = timed(quantise)
        ivf = index._files.indexes["zh"]
        per_vector, fixed, stored = memory_per_vector(index)
        for share in shares:
            semantic.PROBE_SHARE = share
            index._set_filter()
            found, times = latencies(lambda v, lang: [i for i, _ in index.search(v, lang, 10)],
                                     langs, queries)
            report(f"    IVF{ivf.nlist},{kind:<9} lists {index._params.nprobe:4d}/{ivf.nlist}",
                   found, truth, times, f"{per_vector:.0f} B/vector (+{fixed / stored:.1f} "
                   f"fixed); train + encode {seconds:.0f} s")
    semantic.QUANTISER, semantic.PROBE_SHARE = default_kind, default_share
    quantise()


def synthetic(index: SemanticIndex, vectors, langs, queries, total: int, kinds=(),
              shares=()) -> None:
    """Grow the index with synthetic rows (real vectors + noise) to ``total``; memory and
    latency at that size (both sides get the same synthetic rows), then with each quantiser
    of ``kinds`` trained on them."""
    rng = np.random.default_rng(5)
    real = vectors["zh"]
    next_id = int(index._files.ids[-1]) + 1
    began = time.perf_counter()
    while index._files.rows < total:
        count = min(65_536, total - index._files.rows)
        base = real[rng.integers(0, len(real), count)]
        rows = base + rng.normal(0, 0.02, base.shape).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        ids = np.arange(next_id, next_id + count, dtype=np.int64)
        next_id += count
        index._append(ids, dict.fromkeys(LANGS, rows))
    grown = time.perf_counter() - began
    per_vector, fixed, stored = memory_per_vector(index)
    ivf = index._files.indexes["zh"]
    _, times = latencies(lambda v, lang: index.search(v, lang, 10), langs, queries)
    print(f"  SYNTHETIC {stored:,} vectors/side: IVF{ivf.nlist},{semantic._kind(ivf)}, "
          f"{per_vector:.0f} B/vector (+{fixed / stored:.2f} fixed), p50 "
          f"{pct(times, 50) * 1000:.2f} ms, p95 {pct(times, 95) * 1000:.2f} ms; grown in "
          f"{grown:.0f} s", flush=True)
    default_kind, default_share = semantic.QUANTISER, semantic.PROBE_SHARE
    for kind in kinds:
        semantic.QUANTISER = kind
        began = time.perf_counter()
        index._quantise()
        seconds = time.perf_counter() - began
        ivf = index._files.indexes["zh"]
        per_vector, fixed, stored = memory_per_vector(index)
        for share in shares:
            semantic.PROBE_SHARE = share
            index._set_filter()
            _, times = latencies(lambda v, lang: index.search(v, lang, 10), langs, queries)
            print(f"    IVF{ivf.nlist},{kind:<9} lists {index._params.nprobe:4d}/{ivf.nlist}: "
                  f"{per_vector:.0f} B/vector (+{fixed / stored:.2f} fixed), p50 "
                  f"{pct(times, 50) * 1000:.2f} ms, p95 {pct(times, 95) * 1000:.2f} ms; "
                  f"train + encode {seconds:.0f} s", flush=True)
    semantic.QUANTISER, semantic.PROBE_SHARE = default_kind, default_share


if __name__ == "__main__":
    raise SystemExit(main())
