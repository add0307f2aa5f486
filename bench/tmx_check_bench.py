"""What checking an uploaded TMX adds to accepting it (``POST /tm/import``).

Usage: python bench/tmx_check_bench.py [--units 75000] [--rounds 3] [--dir DIR]

Writes a TMX of UNPC dev pairs with provenance properties (the units of bench/tmx_bench.py;
75,000 units is about the 50 MiB upload limit), then, in the same run and alternating,
accepts it through ``JobManager.submit_import`` with the check (``aligner.tmx.check_tmx``:
root and entity declarations, then a well-formedness parse of the whole file without a tree)
and with the check taken out (the baseline: copying the upload and counting its units, as
before). Also times the check alone and reading every unit (``read_tmx``, what the import job
does anyway), and the peak memory the check adds (ru_maxrss before and after it). Figures are
the median of ``--rounds``; wall and CPU seconds both, since a busy machine stretches wall time.
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner.tmx import check_tmx, pairs_to_units, read_tmx, write_tmx  # noqa: E402
from bench.tmx_bench import sentence_pairs  # noqa: E402
from service import jobs  # noqa: E402
from service.config import Settings  # noqa: E402
from service.jobs import JobManager  # noqa: E402
from service.memory.factory import open_store  # noqa: E402


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=75_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        path = folder / "upload.tmx"
        write_tmx(path, pairs_to_units(sentence_pairs(args.units)))
        body = path.read_bytes()
        print(f"TMX: {args.units:,} units, {len(body) / 2**20:.1f} MiB")
        settings = Settings(data_dir=folder / "data", encoder="none")
        store = open_store(settings.data_dir)
        manager = JobManager(settings, store)  # not started: accepted jobs stay queued

        def accept() -> None:
            manager.submit_import(io.BytesIO(body), "upload.tmx", "merge")

        def no_check(*_args) -> None:
            return None

        rss_before = max_rss_mib()
        check_tmx(path)
        rss_check = max_rss_mib() - rss_before
        results: dict[str, list[tuple[float, float]]] = {
            "accept, no check (baseline)": [],
            "accept with the check": [],
            "the check alone": [],
            "read_tmx, every unit": [],
        }
        for _ in range(args.rounds):
            jobs.check_tmx = no_check
            results["accept, no check (baseline)"].append(timed(accept))
            jobs.check_tmx = check_tmx
            results["accept with the check"].append(timed(accept))
            results["the check alone"].append(timed(lambda: check_tmx(path)))
            results["read_tmx, every unit"].append(
                timed(lambda: sum(1 for _ in read_tmx(path)))
            )
        manager.stop()
        store.close()
        medians = {
            name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
            for name, runs in results.items()
        }
        for name, (wall, cpu) in medians.items():
            print(f"{name:30s} wall {wall:7.3f} s   cpu {cpu:7.3f} s")
        base, checked = medians["accept, no check (baseline)"], medians["accept with the check"]
        print(
            f"the check adds {checked[0] - base[0]:.3f} s wall ({checked[0] / base[0]:.1f}x the "
            f"baseline), {checked[1] - base[1]:.3f} s cpu; "
            f"{medians['the check alone'][0] / medians['read_tmx, every unit'][0] * 100:.0f} % "
            f"of reading the units; peak memory +{rss_check:.1f} MiB "
            f"(median of {args.rounds} rounds, same run)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
