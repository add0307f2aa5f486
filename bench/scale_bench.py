"""The whole UN memory on one machine: a memory grown to millions of units, measured at each size.

Units are built from the real UNPC pairs of ../shared/data/unpc-dev: each pair whose Chinese has
a "，" and whose English has a ", " is cut at the clause break nearest its middle (heads and
tails), and a unit is a head, a short clause (the first clause of another pair, or none) and a
tail, on both sides at once: about 1,900 × 1,900 × 1,000 different units, each used once, in
an order fixed by a permutation of their numbers, so that the memory of every size is a prefix
of the next one's. Queries (fixed seed, half English, half Chinese): 20 % units of the memory as
they are, 40 % edited (1-3 tokens replaced or deleted), 20 % clipped (the first 70-90 % of a
unit), 20 % units that are not in the memory.

At each size (``--sizes``), growing one memory in --work:
  import      ``concordia-tm import`` of the new units (a TMX written first): units a second,
              store and fuzzy index files together (the import's processes and its indexer),
              and the time of the edits another process makes meanwhile (``Writer``)
  disk        the data folder: the store, the fuzzy index files
  server      ``python -m service.web.app`` with 1 and 2 workers: cold start to the first lookup
              answered by every worker with every unit indexed; memory: PSS of all the
              server's processes after the lookups, above an empty server's (same workers)
  lookups     p50/p95 of the fuzzy lookups from 1 client and from 8 clients (HTTP)
  agreement   top-5 (>= 70 %) of a sample of queries against scoring every unit (rapidfuzz)
Today's code (``--baseline DIR``: a checkout of the commit to compare with) is measured beside
it where it fits (``--baseline-max``): its server on the same store (a hard link to it, read
only), and its import of the first ``--baseline-import`` units.

    python bench/scale_bench.py --sizes 1000000,5000000,15000000 --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner.models import TranslationUnit  # noqa: E402
from aligner.tmx import write_tmx  # noqa: E402
from bench import tm_bench  # noqa: E402
from bench.tm_bench import (  # noqa: E402
    KEY,
    brute_force,
    halves,
    load_pairs,
    measure_clients,
    pct,
)

_PRIME = 2_147_483_629  # coprime with every size of the space: the permutation of unit numbers


class Units:
    """Unit number → (zh, en): distinct for distinct numbers below ``len(self)``."""

    def __init__(self) -> None:
        pairs = load_pairs()
        heads, tails = halves(pairs)
        self.heads = list(dict.fromkeys(heads))
        self.tails = list(dict.fromkeys(tails))
        clauses = [(None, None)]
        for zh, en in pairs:
            if "，" in zh and ", " in en:
                z, e = zh.split("，")[0], en.split(", ")[0]
                if 4 <= len(z) <= 16 and len(e) <= 40 and (z, e) not in clauses:
                    clauses.append((z, e))
        self.clauses = clauses[:1000]
        self.space = len(self.heads) * len(self.tails) * len(self.clauses)

    def __len__(self) -> int:
        return self.space

    def __getitem__(self, number: int) -> tuple[str, str]:
        k = (number * _PRIME + 12345) % self.space
        k, h = divmod(k, len(self.heads))
        c, t = divmod(k, len(self.tails))
        (hz, he), (tz, te), (cz, ce) = self.heads[h], self.tails[t], self.clauses[c]
        if cz is None:
            return hz + tz, f"{he} {te}"
        return f"{hz}{cz}，{tz}", f"{he} {ce}, {te}"


def tokens(text: str, lang: str) -> list[str]:
    return list(text.replace(" ", "")) if lang == "zh" else text.split()


def joined(parts: list[str], lang: str) -> str:
    return "".join(parts) if lang == "zh" else " ".join(parts)


def make_queries(units: Units, size: int, n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    queries = []
    for i in range(n):
        lang = "en" if i % 2 == 0 else "zh"
        side = 1 if lang == "en" else 0
        kind = rng.random()
        if kind >= 0.8:
            text = units[size + rng.randrange(10**6)][side]  # beyond the memory: not in it
        else:
            text = units[rng.randrange(size)][side]
            parts = tokens(text, lang)
            if kind >= 0.6:
                parts = parts[: max(3, round(len(parts) * rng.uniform(0.7, 0.9)))]
            elif kind >= 0.2:
                donor = tokens(units[rng.randrange(size)][side], lang)
                for _ in range(rng.randint(1, 3)):
                    j = rng.randrange(len(parts))
                    if rng.random() < 0.3 and len(parts) > 3:
                        del parts[j]
                    else:
                        parts[j] = rng.choice(donor)
            text = joined(parts, lang)
        queries.append((text, lang))
    return queries


# ------------------------------------------------------------------------------- processes


class Server(tm_bench.Server):
    """``python -m service.web.app`` of the code in ``code`` on 127.0.0.1."""

    def __init__(self, code: Path, data: Path, workers: int):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = dict(os.environ, CONCORDIA_DATA_DIR=str(data), CONCORDIA_API_KEY=KEY,
                   CONCORDIA_ENCODER="none", PYTHONPATH=str(code))
        self.began = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.web.app", "--host", "127.0.0.1", "--port",
             str(self.port), "--workers", str(workers), "--log-level", "warning"],
            cwd=code, env=env,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers

    def ready(self, units: int, probe: tuple[str, str]) -> float:
        """Seconds from the start until every worker has ``units`` indexed and a lookup of
        ``probe`` (a unit of the memory) finds it."""
        seen: dict[int, int] = {}
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}")
            try:
                health = httpx.get(self.url + "/health", timeout=600).json()
                seen[health["worker"]] = health["units"]
                if len(seen) >= self.workers and min(seen.values()) >= units:
                    body = {"text": probe[0], "source_lang": probe[1], "limit": 1}
                    answer = httpx.post(self.url + "/tm/lookup", json=body, timeout=600).json()
                    if answer["matches"] and answer["matches"][0]["fuzzy"] == 100:
                        return time.perf_counter() - self.began
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    def pss(self) -> int:
        """Proportional set size of all the server's processes (shared pages split)."""
        root = psutil.Process(self.proc.pid)
        total = 0
        for proc in [root, *root.children(recursive=True)]:
            for line in Path(f"/proc/{proc.pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        return total



class Writer(threading.Thread):
    """Edits while an import runs, as a translator's PATCH would: a property of a random
    stored unit changed about every 0.2 s in a store of its own, each edit timed (the write
    lock, its transaction and the generation bump)."""

    def __init__(self, data: Path):
        super().__init__(daemon=True)
        self.data = data
        self.times: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        from service.memory.sqlite import SQLiteStore
        from service.memory.store import StoreError

        rng = random.Random(5)
        while not (self.data / "tm.sqlite").exists() and not self.stopped.wait(0.2):
            pass
        store = SQLiteStore(self.data)
        try:
            while not self.stopped.wait(0.2):
                top = store.last_id()
                if not top:
                    continue
                unit = store.get([rng.randint(1, top)])
                for unit_id, found in unit.items():
                    began = time.perf_counter()
                    try:
                        store.edit(unit_id, found.version,
                                   props={**found.props, "x-checked": str(len(self.times))})
                    except StoreError:
                        continue
                    self.times.append(time.perf_counter() - began)
        finally:
            store.close()


def import_tmx(code: Path, data: Path, tmx: Path, writes: list[float] | None = None
               ) -> tuple[float, float]:
    """``concordia-tm import`` of ``code``: (wall seconds, CPU seconds of its processes);
    with ``writes``, the seconds of each edit made meanwhile (``Writer``) put there."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    writer = Writer(data)
    if writes is not None:
        writer.start()
    began = time.perf_counter()
    try:
        subprocess.run(
            [sys.executable, "-m", "service.cli", "--data", str(data), "import", str(tmx)],
            cwd=code, env=dict(os.environ, PYTHONPATH=str(code)), check=True,
            stdout=subprocess.DEVNULL,
        )
    finally:
        writer.stopped.set()
    wall = time.perf_counter() - began
    if writes is not None:
        writer.join()
        writes += writer.times
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def write_units(units: Units, start: int, stop: int, path: Path) -> None:
    write_tmx(path, (TranslationUnit(*units[k]) for k in range(start, stop)))


def disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def empty_pss(code: Path, work: Path, workers: int) -> int:
    data = work / f"empty-{code.name}-{workers}"
    shutil.rmtree(data, ignore_errors=True)
    server = Server(code, data, workers)
    try:
        _wait_health(server)
        time.sleep(2)
        return server.pss()
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def _wait_health(server: Server) -> None:
    seen: set[int] = set()
    while len(seen) < server.workers:
        try:
            seen.add(httpx.get(server.url + "/health", timeout=60).json()["worker"])
        except httpx.HTTPError:
            time.sleep(0.2)


def serve(code: Path, data: Path, size: int, workers: int, probe, queries, warmup,
          empty: int) -> dict:
    server = Server(code, data, workers)
    try:
        cold = server.ready(size, probe)
        one = measure_clients(server, queries, warmup, 1, 1, False)
        eight = measure_clients(server, queries, warmup, 8, 1, False)
        pss = server.pss()
    finally:
        server.stop()
    return {"cold": cold, "one": one, "eight": eight, "pss": pss, "per_unit": (pss - empty) / size}


def line(label: str, new, base=None) -> None:
    print(f"  {label:<44} {new:>22}   {'' if base is None else base:>22}", flush=True)


def report(name: str, out: dict) -> dict:
    one, eight = out["one"]["latencies"], out["eight"]["latencies"]
    return {
        f"cold start to first lookup ({name})": f"{out['cold']:.1f} s",
        f"server PSS ({name})": f"{out['pss'] / 2**30:.2f} GiB",
        f"  above empty, per unit ({name})": f"{out['per_unit']:.0f} B",
        f"fuzzy p50 / p95, 1 client ({name})":
            f"{pct(one, 50) * 1e3:.1f} / {pct(one, 95) * 1e3:.1f} ms",
        f"fuzzy p50 / p95, 8 clients ({name})":
            f"{pct(eight, 50) * 1e3:.1f} / {pct(eight, 95) * 1e3:.1f} ms",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,5000000,15000000")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "scale-bench")
    parser.add_argument("--baseline", type=Path, help="a checkout of today's code")
    parser.add_argument("--baseline-max", type=int, default=1_000_000,
                        help="largest size today's server is run at")
    parser.add_argument("--baseline-import", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--scan-queries", type=int, default=100)
    parser.add_argument("--reuse", action="store_true",
                        help="serve the memory --work holds (grown before) instead of importing")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    units = Units()
    print(f"unit space: {len(units):,} distinct units "
          f"({len(units.heads)} heads, {len(units.tails)} tails, {len(units.clauses)} clauses)")
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / "memory"
    if not args.reuse:
        shutil.rmtree(data, ignore_errors=True)
    tmx = args.work / "part.tmx"
    empties = {w: empty_pss(ROOT, args.work, w) for w in (1, 2)}
    print(f"empty server PSS: {empties[1] >> 20} MiB (1 worker), {empties[2] >> 20} MiB (2)",
          flush=True)
    base_empties = {}
    if args.baseline:
        base_empties = {w: empty_pss(args.baseline, args.work, w) for w in (1, 2)}
        sample = args.work / "baseline-import"
        shutil.rmtree(sample, ignore_errors=True)
        write_units(units, 0, args.baseline_import, tmx)
        for code, name in ((args.baseline, "today"), (ROOT, "new")):
            shutil.rmtree(sample, ignore_errors=True)
            wall, cpu = import_tmx(code, sample, tmx)
            print(f"import of {args.baseline_import:,} units ({name}): "
                  f"{args.baseline_import / wall:,.0f} units/s wall, "
                  f"{args.baseline_import / cpu:,.0f} units/s of CPU", flush=True)
        shutil.rmtree(sample, ignore_errors=True)
    done = 0
    for size in sizes:
        print(f"\n== {size:,} units", flush=True)
        held = 0
        if args.reuse and (data / "tm.sqlite").exists():
            with sqlite3.connect(data / "tm.sqlite") as conn:
                held = conn.execute("SELECT COUNT(*) FROM unit").fetchone()[0]
        if held >= size:
            import_row, write_row = f"(reused: {held:,} held)", ""
        else:
            write_units(units, done, size, tmx)
            writes: list[float] = []
            wall, cpu = import_tmx(ROOT, data, tmx, writes)
            tmx.unlink()
            import_row = f"{(size - done) / wall:,.0f} ({(size - done) / cpu:,.0f})"
            write_row = (f"{pct(writes, 50) * 1e3:.0f} / {pct(writes, 95) * 1e3:.0f} / "
                         f"{max(writes) * 1e3:.0f} ms ({len(writes)})") if writes else "none"
        done = size
        queries = make_queries(units, size, args.queries, seed=11)
        warmup = make_queries(units, size, args.queries // 2, seed=12)
        probe = (units[size - 1][1], "en")
        rows = {"import: units/s wall (of CPU)": (import_row, None),
                "edits meanwhile: p50 / p95 / max (n)": (write_row, None)}
        rows["disk: store"] = (f"{disk(data) - disk(data / 'fuzzy-index') >> 20:,} MiB", None)
        rows["disk: fuzzy index files"] = (f"{disk(data / 'fuzzy-index') >> 20:,} MiB", None)
        print(f"  {'':<44} {'new':>22}   {'today':>22}")
        for key, (new, base) in rows.items():  # printed as they are measured
            line(key, new, base)
        rows = {}
        results = {}
        for workers in (1, 2):
            out = serve(ROOT, data, size, workers, probe, queries, warmup, empties[workers])
            results[workers] = out
            base = None
            if args.baseline and size <= args.baseline_max:
                base_data = args.work / "baseline-memory"
                shutil.rmtree(base_data, ignore_errors=True)
                base_data.mkdir()
                with sqlite3.connect(data / "tm.sqlite") as conn:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                os.link(data / "tm.sqlite", base_data / "tm.sqlite")
                base = serve(args.baseline, base_data, size, workers, probe, queries, warmup,
                             base_empties[workers])
                shutil.rmtree(base_data, ignore_errors=True)
            new_rows = report(f"{workers} worker{'s' * (workers > 1)}", out)
            base_rows = report(f"{workers} worker{'s' * (workers > 1)}", base) if base else {}
            for key, value in new_rows.items():
                line(key, value, base_rows.get(key))
        sample = queries[: args.scan_queries]
        top = results[1]["one"]["top"]
        times, _, agreement, wrong = brute_force(data, sample, top, 1, 1)
        rows["top-5 agreement with the scan"] = (
            f"{agreement:.1%} of {len(sample)}", None)
        rows["the scan's p50 (one query)"] = (f"{pct(times, 50) * 1e3:.0f} ms", None)
        for key, (new, base) in rows.items():
            line(key, new, base)
        for i, got, server in wrong[:3]:
            print(f"  disagreement on query {i}: scan {got}, server {server}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
