"""Sentence splitting on the UNPC dev set (4,000 real UN sentences per language).

Prints, next to plain sentencex (the baseline):
- over-splitting: lines cut into more than one sentence (a line is almost always one sentence);
- recovery: lines that end in sentence-final punctuation, joined five at a time into one
  paragraph; how many paragraphs come back exactly as their lines, and the boundaries missed;
- the time to split one line of 50,000, 100,000 and 200,000 characters (it should grow
  linearly), and a worst case of 50,000 two-character sentences ("Go. Go. ...", "好。好。...").
Run from the repository root: python -m bench.segment_bench [--show N]
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from sentencex import segment

from aligner.align.segment import split_sentences

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CONCORDIA_SHARED_DATA", ROOT.parent / "shared" / "data"))
FINAL = {"en": re.compile(r"[.!?][\"”’)]*$"), "zh": re.compile(r"[。！？][”’」』）]*$")}
GROUP = 5
SIZES = (50_000, 100_000, 200_000)
Splitter = Callable[[str, str], list[str]]


def baseline(text: str, lang: str) -> list[str]:
    return [s.strip() for s in segment(lang, text) if s.strip()]


SPLITTERS: dict[str, Splitter] = {"sentencex": baseline, "segment": split_sentences}


def oversplit(lines: list[str], lang: str, split: Splitter, show: int) -> None:
    bad = [parts for parts in (split(line, lang) for line in lines) if len(parts) > 1]
    print(f"    over-split lines: {len(bad):4d} / {len(lines)}")
    for parts in bad[:show]:
        print("      ", " | ".join(parts))


def recovery(lines: list[str], lang: str, split: Splitter, show: int) -> None:
    final = [line.strip() for line in lines if FINAL[lang].search(line.strip())]
    groups = [final[i : i + GROUP] for i in range(0, len(final) - GROUP + 1, GROUP)]
    joiner = " " if lang == "en" else ""
    exact = missed = extra = 0
    for group in groups:
        got = split(joiner.join(group), lang)
        exact += got == group
        cuts = {sum(len(s) for s in group[: i + 1]) for i in range(len(group) - 1)}
        got_cuts = {sum(len(s) for s in got[: i + 1]) for i in range(len(got) - 1)}
        if lang == "en":  # lengths without the joining spaces
            cuts = {c + i for i, c in enumerate(sorted(cuts))}
            got_cuts = {c + i for i, c in enumerate(sorted(got_cuts))}
        missed += len(cuts - got_cuts)
        extra += len(got_cuts - cuts)
        if got != group and show > 0:
            show -= 1
            print("       want:", " | ".join(group))
            print("       got: ", " | ".join(got))
    inner = len(groups) * (GROUP - 1)
    print(f"    joined paragraphs of {GROUP}: {exact:4d} / {len(groups)} exact; boundaries "
          f"missed {missed} / {inner}, extra {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", type=int, default=0, help="print up to N failures per check")
    args = parser.parse_args()
    for lang in ("en", "zh"):
        lines = (DATA / "unpc-dev" / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
        text = (" " if lang == "en" else "").join(lines)
        # Sentences as short as can be: sentencex's time grows with their number squared.
        worst = "Go. " * 50_000 if lang == "en" else "好。" * 50_000
        for name, split in SPLITTERS.items():
            print(f"{lang} {name}")
            oversplit(lines, lang, split, args.show)
            recovery(lines, lang, split, args.show)
            for label, line in [(f"{n:,}-char line", text[:n]) for n in SIZES] + [
                (f"{len(worst):,}-char worst case", worst)
            ]:
                t0 = time.perf_counter()
                found = len(split(line, lang))
                print(f"    {label}: {found} sentences in {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
