"""Sentence aligner benchmark: MAC-Dev, unpc-docs and the Bible, ours next to Gale-Church.

    python bench/align_bench.py [--data ../shared/data] [--calibrate]

Every configuration runs in its own child process with a fresh, empty embedding cache, so
the embedding time is real (it includes loading the encoder) and the peak resident memory
(ru_maxrss) is that configuration's own. Prints strict and lax precision, recall and F1,
seconds embedding and aligning, and peak memory, with the issue's targets. Two methods:
``embedding`` (ours, the default encoder as ``load_encoder`` builds it) and ``length`` (the
Gale-Church baseline).

``--calibrate`` instead refits the constants that turn a bead's DP value into a probability
(``CALIBRATION_SLOPE`` and ``CALIBRATION_MIDPOINT`` in
aligner/align/sentence_align.py): a logistic fit of
correct beads (MAC-Dev beads equal to a gold bead, UNPC-dev pairs) against the beads the
aligner picks between texts that are not translations of each other (one MAC-Dev chapter
against another, one half of UNPC-dev against the other), each genre and class weighing the
same.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPORA = {"mac-dev": False, "unpc-docs": False, "bible": True}  # name -> verse-based scoring
TARGETS = {"mac-dev": "strict F1 >= 0.91", "unpc-docs": "strict F1 >= 0.995",
           "bible": "strict F1 >= 0.977, embed+align <= 22 s, align <= 3 s, peak <= 1024 MiB"}


def run_one(data: Path, corpus: str, method: str) -> dict:
    """One corpus, one method, in this process (called in a child)."""
    from aligner.align.evaluate import evaluate, read_corpus, read_verses

    docs = read_corpus(data / corpus)
    verses = read_verses(data / corpus, docs) if CORPORA[corpus] else None
    start = time.perf_counter()
    result = evaluate(docs, method=method, verses=verses)
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        **result.scores,
        "seconds_embed": result.seconds_embed,
        "seconds_align": result.seconds_align,
        "seconds_total": total,
        "peak_mib": peak,
        "sentences": [sum(len(d.zh) for d in docs), sum(len(d.en) for d in docs)],
    }


def child(data: Path, corpus: str, method: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="align-bench-cache-") as cache:
        env = {**os.environ, "CONCORDIA_CACHE_DIR": cache}
        out = subprocess.run(
            [sys.executable, __file__, "--data", str(data), "--one", corpus, method],
            capture_output=True, text=True, env=env, check=False,
        )
    if out.returncode != 0:
        raise SystemExit(f"{corpus}/{method} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(data: Path) -> None:
    print(f"data: {data}   cpus: {os.cpu_count()}   load average: {os.getloadavg()[0]:.1f}")
    header = (f"{'corpus':9} {'method':17} {'P':>6} {'R':>6} {'F1':>7} | {'laxP':>6} {'laxR':>6} "
              f"{'laxF1':>6} | {'embed s':>7} {'align s':>7} {'total s':>7} {'peak MiB':>8}")
    print(header)
    print("-" * len(header))
    for corpus in CORPORA:
        for method in ("embedding", "length"):
            r = child(data, corpus, method)
            print(f"{corpus:9} {method:17} {r['precision_strict']:6.3f} {r['recall_strict']:6.3f} "
                  f"{r['f1_strict']:7.4f} | {r['precision_lax']:6.3f} {r['recall_lax']:6.3f} "
                  f"{r['f1_lax']:6.3f} | {r['seconds_embed']:7.2f} {r['seconds_align']:7.2f} "
                  f"{r['seconds_total']:7.2f} {r['peak_mib']:8.0f}", flush=True)
        print(f"{'':9} target: {TARGETS[corpus]}  ({r['sentences'][0]} zh, "
              f"{r['sentences'][1]} en sentences)")


def calibrate(data: Path) -> None:
    import numpy as np

    from aligner.align.embed import encode_windows, load_encoder
    from aligner.align.evaluate import read_corpus
    from aligner.align.sentence_align import DEFAULT_MAX_BEAD, align_values

    encoder = load_encoder()

    def values(zh: list[str], en: list[str]) -> list[tuple[tuple, tuple, float]]:
        (zv, zw) = encode_windows(encoder, zh, DEFAULT_MAX_BEAD)
        (ev, ew) = encode_windows(encoder, en, DEFAULT_MAX_BEAD)
        beads = align_values(zh, en, zv, ev, windows=(zw, ew))
        return [(z, e, v) for z, e, v in beads if z and e]

    groups = {"novels, correct": [], "novels, unrelated": [], "UN, correct": [],
              "UN, unrelated": []}
    docs = read_corpus(data / "mac-dev")
    for k, doc in enumerate(docs):
        gold = set(doc.gold)
        groups["novels, correct"] += [v for z, e, v in values(doc.zh, doc.en) if (z, e) in gold]
        other = docs[(k + 1) % len(docs)]
        groups["novels, unrelated"] += [v for _, _, v in values(doc.zh, other.en)]
    zh = (data / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()
    en = (data / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()
    half = len(zh) // 2
    groups["UN, correct"] += [v for z, e, v in values(zh[:half], en[:half])
                              if z == e and len(z) == 1]
    groups["UN, unrelated"] += [v for _, _, v in values(zh[:half], en[half:])]
    # each genre and class weighs the same, so that 0.5 means the same on novels and UN text
    x = np.concatenate([np.array(g) for g in groups.values()])
    y = np.concatenate([np.full(len(g), float("correct" in name)) for name, g in groups.items()])
    weight = np.concatenate([np.full(len(g), 0.25 / len(g)) for g in groups.values()])
    a, b = 1.0, 0.0
    for _ in range(100):  # Newton steps of a weighted logistic regression on one feature
        p = 1 / (1 + np.exp(-(a * x + b)))
        grad = np.array([np.sum(weight * (p - y) * x), np.sum(weight * (p - y))])
        h = weight * p * (1 - p)
        hess = np.array([[np.sum(h * x * x), np.sum(h * x)], [np.sum(h * x), np.sum(h)]])
        a, b = np.array([a, b]) - np.linalg.solve(hess + 1e-9 * np.eye(2), grad)
    midpoint = -b / a
    print(f"CALIBRATION_SLOPE = {a:.1f}\nCALIBRATION_MIDPOINT = {midpoint:.3f}")
    for name, g in groups.items():
        print(f"{name:18} beads {len(g):5}  value percentiles 5/50/95 "
              f"{np.percentile(g, [5, 50, 95]).round(3)}  kept at 0.5: "
              f"{np.mean(np.array(g) >= midpoint):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--calibrate", action="store_true", help="refit the score calibration")
    parser.add_argument("--one", nargs=2, metavar=("CORPUS", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = args.data.resolve()
    if args.one:
        print(json.dumps(run_one(data, *args.one)))
    elif args.calibrate:
        calibrate(data)
    else:
        report(data)


if __name__ == "__main__":
    main()
