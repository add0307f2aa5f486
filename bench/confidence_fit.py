"""Fit the weights of confidence in context (``aligner/align/confidence.py``) and show what they do.

    python bench/confidence_fit.py [--data ../shared/data]

The aligner aligns every document of MAC-Dev and unpc-docs, and each document against another
one of its corpus (texts that are not translations of each other); its paired beads are
labelled right (equal to a gold bead) or wrong (any other, every bead between unrelated
texts, and every bead holding one of the English sentences swapped, in a third run, for a
sentence of another document: a wrong pair between sure pairs, the case context must not
lift). A logistic regression on ``aligner.align.confidence.features`` (Newton steps, each genre and
class weighing the same, like ``bench/align_bench.py --calibrate``) gives ``WEIGHTS``. Printed:
the weights, and per genre and class the share of beads kept at 0.5 with the bead's own score
and with the score in context.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner.align.confidence import features  # noqa: E402
from aligner.align.embed import encode_windows, load_encoder  # noqa: E402
from aligner.align.evaluate import read_corpus  # noqa: E402
from aligner.align.sentence_align import DEFAULT_MAX_BEAD, align_embedded  # noqa: E402

SWAP = 0.08  # share of 1-1 gold beads whose English is swapped for another document's
DATA = Path(os.environ.get("CONCORDIA_SHARED_DATA", ROOT.parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    encoder = load_encoder()
    rows: dict[str, list] = {}
    shown: dict[str, list] = {}  # the wrong beads, between translations and unrelated texts
    for genre, corpus in (("novels", "mac-dev"), ("UN", "unpc-docs")):
        docs = read_corpus(args.data / corpus)
        vecs = [(encode_windows(encoder, d.zh, DEFAULT_MAX_BEAD),
                 encode_windows(encoder, d.en, DEFAULT_MAX_BEAD)) for d in docs]
        rng = random.Random(19)
        for k, doc in enumerate(docs):
            gold = set(doc.gold)
            other = docs[(k + 1) % len(docs)]
            # Some English sentences of 1-1 gold beads swapped for sentences of another
            # document: the aligner pairs most of them between sure pairs, and they are wrong.
            swapped = list(doc.en)
            for z, e in doc.gold:
                if len(z) == 1 and len(e) == 1 and rng.random() < SWAP:
                    swapped[e[0]] = rng.choice(other.en)
            runs = (
                ("right", doc.en, vecs[k][1]),
                ("unrelated", other.en, vecs[(k + 1) % len(docs)][1]),
                ("swapped", swapped, encode_windows(encoder, swapped, DEFAULT_MAX_BEAD)),
            )
            for label, en, (ev, ew) in runs:
                zv, zw = vecs[k][0]
                beads = align_embedded(doc.zh, en, zv, ev, max_bead=DEFAULT_MAX_BEAD,
                                       windows=(zw, ew))
                for bead, row in zip(beads, features(beads, doc.zh, en), strict=True):
                    if not (bead.zh and bead.en):
                        continue
                    good = (label != "unrelated" and (bead.zh, bead.en) in gold
                            and all(en[j] == doc.en[j] for j in bead.en))
                    rows.setdefault(f"{genre}, {'right' if good else 'wrong'}", []).append(row)
                    if not good:
                        shown.setdefault(f"{genre}, wrong ({label})", []).append(row)
    if os.environ.get("CONFIDENCE_DUMP"):
        np.savez(os.environ["CONFIDENCE_DUMP"], **{k: np.array(v) for k, v in
                                                   {**rows, **shown}.items()})
    x = np.concatenate([np.array(r) for r in rows.values()])
    y = np.concatenate([np.full(len(r), float("right" in g)) for g, r in rows.items()])
    weight = np.concatenate([np.full(len(r), 0.25 / len(r)) for r in rows.values()])
    w = np.zeros(x.shape[1])
    w[1] = 1.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (weight * (p - y))
        hess = (x * (weight * p * (1 - p))[:, None]).T @ x
        w = w - np.linalg.solve(hess + 1e-6 * np.eye(len(w)), grad)
    print("WEIGHTS = (" + ", ".join(f"{v:.3f}" for v in w) + ")")
    for group, r in {**rows, **shown}.items():
        r = np.array(r)
        own = np.mean(r[:, 1] >= 0)
        context = np.mean(r @ w >= 0)
        print(f"{group:14} beads {len(r):5}  kept at 0.5: own score {own:.3f}, in context "
              f"{context:.3f}")


if __name__ == "__main__":
    main()
