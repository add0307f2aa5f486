"""The shared store: PostgreSQL and two replicas against SQLite and one server, in one run.

The memory is tm_bench's (real UNPC-dev clause halves joined into --size units); lookups are
its query mix (exact, edited, new; half English, half Chinese), fuzzy only
(CONCORDIA_ENCODER=none: each replica would otherwise embed the whole memory itself).

  import    units/s of ``import_units`` (one transaction) into SQLite and into PostgreSQL
            (COPY), the same units, TMX parsing left out
  baseline  one server with two workers on the SQLite memory: lookup p50/p95 with 1 client
            and 8 clients
  replicas  two servers with one worker each on the PostgreSQL memory, clients spread over
            both: the same figures, and the time from an edit sent to one replica to its
            text found by a lookup on the other (p50/p95 over --writes edits)
  16 clients  lookups/s of the one server and of the two replicas, taking turns for
            --rounds rounds (all three servers up; each round's ratio, and their median)

PostgreSQL is a throwaway server (tests/pg.py) in a temporary folder.

    python bench/pg_bench.py --size 100000
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import tm_bench  # noqa: E402

from aligner.models import TranslationUnit  # noqa: E402
from service.memory.factory import open_store  # noqa: E402
from tests.pg import Server as PgServer  # noqa: E402
from tests.pg import pg_bin  # noqa: E402

KEY = tm_bench.KEY


class Service:
    """``python -m service.web.app`` on 127.0.0.1 over a data folder and a store."""

    def __init__(self, data: Path, store: str | None, workers: int = 1):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = dict(os.environ, CONCORDIA_DATA_DIR=str(data), CONCORDIA_API_KEY=KEY,
                   CONCORDIA_ENCODER="none", CONCORDIA_STORE=store or "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.web.app", "--host", "127.0.0.1", "--port",
             str(self.port), "--workers", str(workers), "--log-level", "warning"],
            cwd=ROOT, env=env,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)

    def wait_indexed(self, units: int) -> None:
        tm_bench.Server.wait_indexed(self, units)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(120)


def pct(values: list[float], q: float) -> float:
    return tm_bench.pct(values, q)


def lookups(services: list[Service], queries, clients: int) -> list[float]:
    """Latencies of every query, ``clients`` threads, client k on service k mod n."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        http = tm_bench._Client(services[k % len(services)])
        for text, lang in queries[k::clients]:
            body = {"text": text, "source_lang": lang, "limit": 5, "min_fuzzy": 70,
                    "semantic": False}
            began = time.perf_counter()
            http.call("POST", "/tm/lookup", body)
            took = time.perf_counter() - began
            with lock:
                latencies.append(took)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def throughput(services: list[Service], queries, clients: int, seconds: float) -> float:
    """Lookups answered per second by ``clients`` threads sending for ``seconds``."""
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        http = tm_bench._Client(services[k % len(services)])
        i = k
        while time.perf_counter() < stop:
            text, lang = queries[i % len(queries)]
            http.call("POST", "/tm/lookup", {"text": text, "source_lang": lang, "limit": 5,
                                             "min_fuzzy": 70, "semantic": False})
            done[k] += 1
            i += clients

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - began)


def write_to_lookup(a: Service, b: Service, units, n: int) -> list[float]:
    """Seconds from an edit sent to ``a`` until a lookup on ``b`` finds the new text."""
    times = []
    with httpx.Client(headers={"X-API-Key": KEY}, timeout=30) as http:
        for i in range(n):
            unit_id = 1 + (i * 7919) % len(units)
            unit = http.get(f"{a.url}/tm/units/{unit_id}").json()
            text = f"Edited {i}: {unit['en_plain']}"
            began = time.perf_counter()
            answer = http.patch(f"{a.url}/tm/units/{unit_id}",
                                json={"version": unit["version"], "en": text})
            answer.raise_for_status()
            while True:
                found = http.post(f"{b.url}/tm/lookup", json={
                    "text": text, "source_lang": "en", "limit": 1, "semantic": False}).json()
                if found["matches"] and found["matches"][0]["source_plain"] == text:
                    break
                if time.perf_counter() - began > 30:
                    raise SystemExit(f"edit {i} never seen on the other replica")
                time.sleep(0.005)
            times.append(time.perf_counter() - began)
    return times


def figures(name: str, services: list[Service], queries, warmup) -> None:
    lookups(services, warmup, 8)
    one = lookups(services[:1], queries, 1)
    eight = lookups(services, queries, 8)
    print(f"{name}: 1 client p50 {pct(one, 50) * 1000:.1f} ms p95 "
          f"{pct(one, 95) * 1000:.1f} ms; 8 clients p50 {pct(eight, 50) * 1000:.1f} ms p95 "
          f"{pct(eight, 95) * 1000:.1f} ms", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="units in the memory")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=20.0, help="of a 16-client run")
    parser.add_argument("--rounds", type=int, default=5, help="16-client runs of each set-up")
    parser.add_argument("--warm-seconds", type=float, default=60.0,
                        help="16 clients on each set-up before the rounds, not counted")
    parser.add_argument("--writes", type=int, default=40, help="edits timed across replicas")
    args = parser.parse_args()
    if pg_bin() is None:
        raise SystemExit("PostgreSQL is missing: apt-get install -y postgresql")

    pairs = tm_bench.load_pairs()
    heads, tails = tm_bench.halves(pairs)
    grown = tm_bench.grow(pairs, heads, tails, args.size)
    queries, warmup = tm_bench.query_sets(grown, heads, tails, args.queries)
    units = [TranslationUnit(zh, en, "zh-CN", "en-US") for zh, en in grown]
    work = Path(tempfile.mkdtemp(prefix="concordia-pg-bench-"))
    pg = PgServer(pg_bin())
    services: list[Service] = []
    try:
        pg.start()
        url = pg.database()
        print(f"{len(units):,} units; PostgreSQL {url.rsplit('@', 1)[1]}", flush=True)
        rates = {}
        for name, store_url in (("SQLite", None), ("PostgreSQL", url)):
            store = open_store(work / "sqlite", store=store_url)
            began = time.perf_counter()
            result = store.import_units(units, source="bench")
            seconds = time.perf_counter() - began
            store.close()
            rates[name] = result.imported / seconds
            print(f"import into {name}: {result.imported:,} units in {seconds:.1f} s, "
                  f"{rates[name]:,.0f} units/s", flush=True)

        base = Service(work / "sqlite", None, workers=2)
        services.append(base)
        a = Service(work / "a", url)
        services.append(a)
        b = Service(work / "b", url)
        services.append(b)
        for service in services:
            service.wait_indexed(len(units))
        figures("one server, 2 workers, SQLite", [base], queries, warmup)
        figures("two replicas, 1 worker each, PostgreSQL", [a, b], queries, warmup)
        seen = write_to_lookup(a, b, units, args.writes)
        print(f"edit on one replica -> found by a lookup on the other ({len(seen)} edits): "
              f"p50 {pct(seen, 50) * 1000:.0f} ms, p95 {pct(seen, 95) * 1000:.0f} ms, "
              f"max {max(seen) * 1000:.0f} ms", flush=True)
        # Both warm first (the page cache, PostgreSQL's buffers: the one server's rate rose
        # through the rounds of a run without this); then, as the machine's load drifts, the
        # two set-ups take turns, and each round is a ratio.
        throughput([base], queries, 16, args.warm_seconds)
        throughput([a, b], queries, 16, args.warm_seconds)
        ratios = []
        for round_ in range(args.rounds):
            one = throughput([base], queries, 16, args.seconds)
            two = throughput([a, b], queries, 16, args.seconds)
            ratios.append(two / one)
            print(f"round {round_ + 1}, 16 clients: one server with two workers {one:.1f} "
                  f"lookups/s, two replicas {two:.1f} lookups/s: {two / one * 100:.0f} % "
                  f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        print(f"two replicas / one server with two workers, lookups/s under 16 clients: "
              f"median {statistics.median(ratios) * 100:.0f} % of {len(ratios)} rounds "
              f"({', '.join(f'{r * 100:.0f}' for r in ratios)})", flush=True)
    finally:
        for service in services:
            service.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
