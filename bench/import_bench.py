"""``concordia-tm import`` of a large TMX into an empty data folder: store and fuzzy index files.

The TMX holds ``--size`` distinct synthetic UN units (``scale_bench.Units``: heads, clauses and
tails of the real UNPC pairs in ../shared/data), each with the document symbol and speaker
props a UN memory carries, and one in fifty with a placeable (``<ph>``) on both sides, so that
the lossless path (runs, what the TMX said) is measured too. It is written once into --work and
reused while its size is the same.

The new code (this checkout) and, with ``--baseline DIR`` (e.g. ``git worktree add /tmp/base
issue23``), the code of that checkout import the same file into fresh folders, one after the
other, in the same run; each prints units/s wall, the CPU seconds of all its processes (the
command and its indexer), the peak RSS of the command's processes together, and the load
average of the machine before and after. Each import is then checked: every unit stored once,
the fuzzy index files covering them.

    python bench/import_bench.py --size 200000 --baseline /tmp/base --repeat 3 --stages --split
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner.models import Tag, TranslationUnit, Tuv  # noqa: E402
from aligner.tmx import XML_LANG, write_tmx  # noqa: E402
from bench.scale_bench import Units  # noqa: E402

PLACEABLE_EVERY = 50


def unit(units: Units, number: int) -> TranslationUnit:
    """Unit ``number`` with its props; every ``PLACEABLE_EVERY``-th with a footnote mark."""
    zh, en = units[number]
    props = {"x-document": f"S/PV.{8000 + number // 40}", "x-speaker": f"Speaker {number % 15}"}
    if number % PLACEABLE_EVERY:
        return TranslationUnit(zh, en, props=props)
    mark = Tag("ph", {"x": "1"}, ["<fn>"])
    return TranslationUnit(
        zh, en, props=props, source_runs=[zh, mark], target_runs=[en, mark],
        creationdate="20200101T000000Z", extras=[Tag("prop", {"type": k}, [v])
                                                 for k, v in props.items()],
        source_tuv=Tuv({XML_LANG: "zh-CN"}), target_tuv=Tuv({XML_LANG: "en-US"}),
    )


def write_units(size: int, path: Path) -> None:
    units = Units()
    write_tmx(path, (unit(units, k) for k in range(size)))


class Peak(threading.Thread):
    """The largest RSS of a process and its children together, and the CPU seconds of each
    (the command, its indexer), sampled every 50 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            total = 0
            try:
                for proc in [self.root, *self.root.children(recursive=True)]:
                    with proc.oneshot():
                        total += proc.memory_info().rss
                        times = proc.cpu_times()
                    self.cpu[proc.pid] = times.user + times.system
            except psutil.Error:
                continue
            self.peak = max(self.peak, total)

    def indexer_cpu(self) -> float:
        """CPU seconds of the processes other than the command (its indexer), as last seen."""
        return sum(cpu for pid, cpu in self.cpu.items() if pid != self.root.pid)


def run_import(code: Path, data: Path, tmx: Path) -> dict:
    """``concordia-tm import`` of ``code`` into ``data``: wall and CPU seconds, peak RSS."""
    shutil.rmtree(data, ignore_errors=True)
    load = os.getloadavg()[0]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "--data", str(data), "import", str(tmx)],
        cwd=code, env=dict(os.environ, PYTHONPATH=str(code)), stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    peak = Peak(proc.pid)
    peak.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - began
    peak.stopped.set()
    peak.join()
    if proc.returncode:
        raise SystemExit(f"{code}: import exited with {proc.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return {"wall": wall, "cpu": cpu, "indexer": peak.indexer_cpu(), "peak": peak.peak,
            "load": (load, os.getloadavg()[0]),
            "result": json.loads(out)}


# Each stage of an import timed alone, in one process, by the code of the folder it runs in:
# CPU seconds a stage takes (the store stage is the import less reading and rows).
STAGES = """
import shutil, sys, time
from collections import deque
from pathlib import Path
from aligner.tmx import check_tmx, read_tmx
from service.memory.fuzzy import FuzzyIndex
from service.memory.rows import now_tmx, unit_row
from service.memory.sqlite import SQLiteStore

tmx, data = Path(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(data, ignore_errors=True)
took = {}

def timed(name, work):
    began = time.process_time()
    work()
    took[name] = time.process_time() - began

now = now_tmx()
timed("check", lambda: check_tmx(tmx))
timed("parse", lambda: deque(read_tmx(tmx, only_langs=("zh", "en")), maxlen=0))
timed("rows", lambda: deque((unit_row(u, now, "b", 1, 2000)
                             for u in read_tmx(tmx, only_langs=("zh", "en"))), maxlen=0))
store = SQLiteStore(data)
timed("import", lambda: store.bulk_import_tmx(tmx))
index = FuzzyIndex(data / "fuzzy-index")
index.load(store)
timed("index", lambda: index.sync(store))
index.close()
print(took["check"], took["parse"], took["rows"] - took["parse"],
      took["import"] - took["rows"] - took["check"], took["index"])
"""
# The importing process of ``concordia-tm import`` (the code of the folder it runs in), its
# CPU split by timers around the rows and the transactions; its indexer's CPU beside it.
SPLIT = """
import resource, sys, time
from pathlib import Path
import aligner.tmx
import service.memory.sqlite_bulk as bulk
from service.memory.sqlite import SQLiteStore
took = {"check": 0.0, "rows": 0.0, "sqlite": 0.0}

def timer(owner, name, key):
    work = getattr(owner, name)
    def timed(*args, **kwargs):
        began = time.process_time()
        try:
            return work(*args, **kwargs)
        finally:
            took[key] += time.process_time() - began
    setattr(owner, name, timed)

timer(aligner.tmx, "check_tmx", "check")
timer(SQLiteStore, "_row", "rows")
timer(bulk, "_commit", "sqlite")
if __name__ == "__main__":
    from service.cli import main
    main(["--data", sys.argv[2], "import", sys.argv[1]])
    total = time.process_time()
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(total, took["check"], total - sum(took.values()), took["rows"], took["sqlite"],
          child.ru_utime + child.ru_stime)
"""
SPLIT_NAMES = ("importing process", "  check", "  reading (and start, loop)", "  rows",
               "  SQLite (chunks, journal, checkpoints)", "indexer process")
STAGE_NAMES = ("check (whole file)", "parse (lxml, units)", "rows (normalise, hash, JSON)",
               "store (SQLite, undo journal)", "fuzzy index (fold, tokens, numpy, files)")


def stages(code: Path, tmx: Path, data: Path) -> list[float]:
    """CPU seconds of each stage (``STAGE_NAMES``) of the code in ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", STAGES, str(tmx), str(data)], cwd=code, check=True,
        env=dict(os.environ, PYTHONPATH=str(code)), capture_output=True, text=True,
    ).stdout
    shutil.rmtree(data, ignore_errors=True)
    return [float(x) for x in out.split()]


def split(tmx: Path, data: Path) -> list[float]:
    """CPU seconds of ``SPLIT_NAMES`` in this checkout's import of ``tmx``."""
    script = data.parent / "split.py"  # a file: the indexer's spawn imports the main module
    script.write_text(SPLIT)
    out = subprocess.run(
        [sys.executable, str(script), str(tmx), str(data)], cwd=ROOT, check=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
    ).stdout
    shutil.rmtree(data, ignore_errors=True)
    return [float(x) for x in out.split("\n")[-2].split()]


def check(data: Path, size: int) -> str:
    """Every unit once in the store, and the fuzzy index files covering all of them."""
    with sqlite3.connect(data / "tm.sqlite") as conn:
        count, distinct, top = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT hash), MAX(id) FROM unit"
        ).fetchone()
    manifest = json.loads((data / "fuzzy-index" / "manifest.json").read_text())
    ok = count == distinct == size and manifest["seq"] == top and manifest["live"] == size
    return "ok" if ok else (f"WRONG: {count} units, {distinct} distinct, index seq "
                            f"{manifest['seq']} of {top}, live {manifest['live']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "import-bench")
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--only-new", action="store_true", help="skip the baseline")
    parser.add_argument("--repeat", type=int, default=1,
                        help="alternate the imports this many times (the machine's load varies)")
    parser.add_argument("--split", action="store_true",
                        help="the new import's CPU split by stage, inside the command")
    parser.add_argument("--stages", action="store_true",
                        help="also time each stage alone, in one process (CPU s per 100k)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    tmx = args.work / f"units-{args.size}.tmx"
    if not tmx.exists():
        began = time.perf_counter()
        write_units(args.size, tmx)
        print(f"wrote {tmx} ({tmx.stat().st_size >> 20} MiB) in "
              f"{time.perf_counter() - began:.0f} s", flush=True)
    runs = [("new", ROOT)]
    if args.baseline and not args.only_new:
        runs.insert(0, ("baseline", args.baseline))
    print(f"{args.size:,} units, {os.cpu_count()} CPUs", flush=True)
    walls: dict[str, list[float]] = {name: [] for name, _ in runs}
    cpus: dict[str, list[float]] = {name: [] for name, _ in runs}
    for name, code in runs * args.repeat:
        data = args.work / f"data-{name}"
        got = run_import(code, data, tmx)
        walls[name].append(args.size / got["wall"])
        cpus[name].append(got["cpu"] / args.size * 1e5)
        print(
            f"  {name:<9} {args.size / got['wall']:>8,.0f} units/s wall  "
            f"{got['wall']:6.1f} s wall (store {got['result'].get('seconds', 0):.1f} s)  "
            f"{got['cpu']:6.1f} s CPU "
            f"({got['cpu'] / args.size * 1e5:.1f} s per 100k, indexer "
            f"{got['indexer'] / args.size * 1e5:.1f})  "
            f"peak RSS {got['peak'] >> 20:,} MiB  "
            f"load {got['load'][0]:.1f} → {got['load'][1]:.1f}  {check(data, args.size)}",
            flush=True,
        )
        shutil.rmtree(data, ignore_errors=True)
    if args.repeat > 1:
        for name, _ in runs:
            print(f"  {name:<9} median {statistics.median(walls[name]):>8,.0f} units/s wall, "
                  f"{statistics.median(cpus[name]):.1f} s CPU per 100k")
    if args.split:
        print(f"inside concordia-tm import, CPU s per 100k units (load "
              f"{os.getloadavg()[0]:.1f}):", flush=True)
        for stage, seconds in zip(SPLIT_NAMES, split(tmx, args.work / "split"), strict=True):
            print(f"  {stage:<44}  new {seconds / args.size * 1e5:5.2f}")
    if args.stages:
        print(f"stages alone, CPU s per 100k units (load {os.getloadavg()[0]:.1f}):", flush=True)
        took = {name: stages(code, tmx, args.work / f"stages-{name}") for name, code in runs}
        for i, stage in enumerate(STAGE_NAMES):
            print(f"  {stage:<44}" + "".join(
                f"  {name} {took[name][i] / args.size * 1e5:5.2f}" for name, _ in runs))
        print(f"  {'total':<44}" + "".join(
            f"  {name} {sum(took[name]) / args.size * 1e5:5.2f}" for name, _ in runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
