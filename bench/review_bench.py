"""Review editor and search page benchmark, through HTTP, each figure next to a baseline from
the same run.

Editor: a review of --pairs real UNPC-dev pairs (1-1 beads, turns of 25 pairs) is stored and
the service (``python -m service.web.app``, fuzzy only) serves it on 127.0.0.1.
  open   GET /reviews/{id} (the editor's data) and GET /review/{id} (the page), and, where
         Chromium and chromium-driver are installed, the editor in headless Chromium from
         navigation until every pair is drawn.
  ops    every editor operation through POST /reviews/{id}/changes, --repeat times each
         (merge, split, move, edit, status, confirm_turn, unpair, pair, undo, redo): the
         answer includes saving the whole review in one transaction.
  baseline  GET /health (the HTTP floor) and the same operations planned and applied in the
         process without the store (what saving costs is the difference).
Search page: --search-size units grown from UNPC-dev as bench/tm_bench.py grows them, stored
in --work (kept; --reuse serves them again), queried one at a time with tm_bench's queries
through GET /search (HTML: lookup + differences + rendering) against POST /tm/lookup (the same
lookup as JSON) as the baseline.

    python bench/review_bench.py                              # 1,000 pairs, 1,000,000 units
    python bench/review_bench.py --search-size 100000 --work data/review-bench-100k
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tm_bench  # noqa: E402

from service.memory.factory import open_store  # noqa: E402
from service.review.model import Review, Reviews, apply, plan  # noqa: E402

KEY = tm_bench.KEY
AUTH = {"X-API-Key": KEY}
TURN = 25


def pct(values: list[float], q: float) -> float:
    return tm_bench.pct(values, q)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms"


def build_review(pairs: list[tuple[str, str]], n: int) -> Review:
    from aligner.align.segment import split_sentences
    from service.review.model import Section

    rng = random.Random(5)
    review = Review(sections=[], beads=[])
    for i, (zh, en) in enumerate(pairs[:n]):
        if i % TURN == 0:
            review.sections.append(Section(zh_speaker=f"发言者{i // TURN}",
                                           en_speaker=f"Speaker {i // TURN}",
                                           turn=i // TURN))
        review.beads.append(review.new_bead(
            len(review.sections) - 1, split_sentences(zh, "zh"), split_sentences(en, "en"),
            score=round(rng.uniform(0.2, 1.0), 4),
        ))
    return review


def timed_get(http: httpx.Client, url: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        answer = http.get(url)
        times.append(time.perf_counter() - start)
        assert answer.status_code == 200, answer.text[:200]
    return times


def browser_open(url: str, pairs: int, repeat: int) -> list[float] | None:
    chrome, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chrome and driver_path):
        return None
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    profile = tempfile.mkdtemp(prefix="review-bench-")
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    times = []
    try:
        driver.get(url)  # warm the browser's cache of the scripts
        for _ in range(repeat):
            start = time.perf_counter()
            driver.get(url)
            WebDriverWait(driver, 30, poll_frequency=0.01).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, "#beads .bead")) >= pairs
            )
            times.append(time.perf_counter() - start)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return times


def next_ops(review: dict, at: int) -> dict[str, dict]:
    """One of each operation on the current state, on pairs from ``at`` on (within a turn)."""
    beads = review["beads"]
    i = at % (len(beads) - 2 * TURN)
    while beads[i]["section"] != beads[i + 1]["section"] or not beads[i]["zh"]:
        i += 1
    b = beads[i]
    return {
        "status": {"op": "status", "bead": b["id"], "status": "confirmed"},
        "edit": {"op": "edit", "bead": b["id"], "side": "en", "text": " ".join(b["en"]) + " x"},
        "confirm_turn": {"op": "confirm_turn", "section": b["section"]},
        "unpair": {"op": "unpair", "bead": b["id"]},
    }


def editor_phase(args, pairs) -> None:
    data = args.work.parent / (args.work.name + "-editor")
    shutil.rmtree(data, ignore_errors=True)
    store = open_store(data)
    review = build_review(pairs, args.pairs)
    review_id = Reviews(store.reviews()).create("bench", review, origin="bench", min_score=0.5)
    store.close()
    server = tm_bench.Server(data, "none")
    times: dict[str, list[float]] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as http:
            floor = timed_get(http, "/health", args.repeat * 5)
            data_t = timed_get(http, f"/reviews/{review_id}", args.repeat)
            page_t = timed_get(http, f"/review/{review_id}", args.repeat)
            chrome = browser_open(f"{server.url}/review/{review_id}", args.pairs, 5)
            state = http.get(f"/reviews/{review_id}").json()
            version = state["version"]

            def send(name: str, op: dict) -> dict:
                nonlocal version
                start = time.perf_counter()
                answer = http.post(f"/reviews/{review_id}/changes",
                                   json={"version": version, **op})
                times.setdefault(name, []).append(time.perf_counter() - start)
                assert answer.status_code == 200, answer.text[:300]
                version = answer.json()["version"]
                return answer.json()

            for k in range(args.repeat):
                state = http.get(f"/reviews/{review_id}").json()
                ops = next_ops(state, 10 + 47 * k)
                # every change gives the changed pair a new id: follow it
                bead = send("status", ops["status"])["beads"][0]
                edit = {**ops["edit"], "bead": bead["id"]}
                bead = send("edit", edit)["beads"][0]
                send("merge", {"op": "merge", "bead": bead["id"]})
                send("undo", {"op": "undo"})
                send("redo", {"op": "redo"})
                first = send("undo", {"op": "undo"})["beads"][0]
                halves = send("split", {"op": "split", "bead": first["id"],
                                        "zh": len(first["zh"][0]) // 2,
                                        "en": len(first["en"][0]) // 2})["beads"]
                send("move", {"op": "move", "bead": halves[0]["id"], "side": "zh",
                              "to": "next"})
                send("confirm_turn", ops["confirm_turn"])
                state = http.get(f"/reviews/{review_id}").json()
                lone = send("unpair", next_ops(state, 30 + 47 * k)["unpair"])["beads"]
                send("pair", {"op": "pair", "bead": lone[0]["id"], "with": lone[1]["id"]})
    finally:
        server.stop()

    # baseline: plan + apply without the store
    local = build_review(pairs, args.pairs)
    base: list[float] = []
    for k in range(args.repeat):
        for kind in ("status", "merge"):
            i = 10 + 47 * k
            while local.beads[i].section != local.beads[i + 1].section:
                i += 1
            mid = local.beads[i]
            op = {"op": kind, "bead": mid.id, "status": "confirmed"}
            start = time.perf_counter()
            apply(local, plan(local, op, 2000, min_score=0.5))
            base.append(time.perf_counter() - start)

    print(f"\nEditor, a review of {args.pairs:,} pairs ({len(review.sections)} turns), "
          f"{args.repeat} runs each, one client")
    print(f"  baseline  GET /health (HTTP floor)            p50 {ms(pct(floor, 50))}  "
          f"p95 {ms(pct(floor, 95))}")
    print(f"  baseline  plan + apply in process, no store   p50 {ms(pct(base, 50))}  "
          f"p95 {ms(pct(base, 95))}")
    print(f"  open      GET /reviews/ID (editor data)       p50 {ms(pct(data_t, 50))}  "
          f"p95 {ms(pct(data_t, 95))}")
    print(f"  open      GET /review/ID (page)               p50 {ms(pct(page_t, 50))}  "
          f"p95 {ms(pct(page_t, 95))}")
    if chrome:
        print(f"  open      Chromium: navigation to {args.pairs:,} pairs drawn  "
              f"p50 {ms(pct(chrome, 50))}  max {ms(max(chrome))}")
    else:
        print("  open      Chromium: not measured (chromium / chromedriver not installed)")
    worst = 0.0
    for name, values in times.items():
        worst = max(worst, max(values))
        print(f"  op        {name:<13} n={len(values):<3}            p50 {ms(pct(values, 50))}  "
              f"p95 {ms(pct(values, 95))}  max {ms(max(values))}")
    print(f"  slowest operation answer: {ms(worst)}")


def search_phase(args, pairs) -> None:
    heads, tails = tm_bench.halves(pairs)
    units = tm_bench.grow(pairs, heads, tails, args.search_size)
    data = args.work
    if not (args.reuse and (data / "tm.sqlite").exists()):
        shutil.rmtree(data, ignore_errors=True)
        from aligner.models import TranslationUnit

        store = open_store(data)
        start = time.perf_counter()
        result = store.import_units(
            TranslationUnit(zh, en, props={"x-document": f"BENCH/{i // 1000}"})
            for i, (zh, en) in enumerate(units)
        )
        store.close()
        print(f"\nbuilt a memory of {result.imported:,} units in "
              f"{time.perf_counter() - start:.0f} s ({data})")
    queries = tm_bench.make_queries(units, heads, tails, args.queries)
    server = tm_bench.Server(data, "none")
    print(f"service started and indexed {args.search_size:,} units in {server.start_s:.0f} s")
    page_t, json_t = [], []
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for text, lang in queries[:20]:  # warm-up
                http.get("/search", params={"q": text, "lang": lang})
            for text, lang in queries:
                start = time.perf_counter()
                answer = http.post("/tm/lookup", json={"text": text, "source_lang": lang,
                                                       "limit": 10, "min_fuzzy": 60})
                json_t.append(time.perf_counter() - start)
                assert answer.status_code == 200
                start = time.perf_counter()
                answer = http.get("/search", params={"q": text, "lang": lang,
                                                     "min_fuzzy": 60})
                page_t.append(time.perf_counter() - start)
                assert answer.status_code == 200
    finally:
        server.stop()
    print(f"\nSearch, {args.search_size:,} units, {len(queries)} queries one at a time "
          "(tm_bench's mix: exact, edited, unseen; half zh, half en), top 10 at >= 60 %")
    print(f"  baseline  POST /tm/lookup (JSON)   p50 {ms(pct(json_t, 50))}  "
          f"p95 {ms(pct(json_t, 95))}  max {ms(max(json_t))}")
    print(f"  page      GET /search (HTML)       p50 {ms(pct(page_t, 50))}  "
          f"p95 {ms(pct(page_t, 95))}  max {ms(max(page_t))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1000, help="pairs in the review")
    parser.add_argument("--repeat", type=int, default=20, help="runs of each operation")
    parser.add_argument("--search-size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path("data/review-bench"))
    parser.add_argument("--reuse", action="store_true", help="serve a memory built before")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-editor", action="store_true")
    args = parser.parse_args()
    pairs = tm_bench.load_pairs()
    if not args.skip_editor:
        editor_phase(args, pairs)
    if not args.skip_search:
        search_phase(args, pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
