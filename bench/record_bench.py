"""Time to read, cut into turns and align a meeting record of S/PV.8017's size.

The official English S/PV.8017 is not available, so the timed pair is built to the record's
shape from real parallel UN sentences:
- the turns of the real Chinese record ../shared/data/un/S-PV-8017.zh.txt (29 turns, their
  headings and their paragraphs) are kept; each paragraph's text is replaced by as many sentence
  pairs from unpc-dev (zh.txt/en.txt, line i translates line i) as it has sentences;
- procedural turns (opening, agenda, vote, closing) are the real lines with the English of
  tests/data/record_8017_excerpt.en.txt;
- the Chinese side is written as the real file is laid out: one printed column line of 22
  characters per line (a paragraph's first line indented), a blank line after every line;
- the English side is one paragraph per line, headings made from the Chinese ones through the
  name table.
So sizes, turn structure and layout are the record's, every turn has its counterpart, no
sentence repeats (the embedding cache cannot flatter the figure) and the right pairs are known:
the bench also prints the share of sentence pairs that are right.

Each run starts with an empty embedding cache (the model stays loaded; its load time is printed
apart). Baselines in the same run, taking turns with the record runs: plain alignment (no turns)
of the same files, and embedding every sentence once (the floor under both). Reading and cutting
the real record is timed too.

    python bench/record_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import unicodedata
from pathlib import Path

from aligner import speakers
from aligner.embed import CachedEncoder, load_encoder
from aligner.ingest import read_document
from aligner.pipeline import align_documents
from aligner.segment import split_sentences
from aligner.turns import parse_turns

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
ZH = DATA / "un" / "S-PV-8017.zh.txt"
EXCERPT_EN = ROOT / "tests" / "data" / "record_8017_excerpt.en.txt"
COLUMN = 22  # ems per printed line of the Chinese record


def unpc_pairs():
    """unpc-dev sentence pairs that are one whole sentence on each side."""
    zh = (DATA / "unpc-dev" / "zh.txt").read_text(encoding="utf-8").splitlines()
    en = (DATA / "unpc-dev" / "en.txt").read_text(encoding="utf-8").splitlines()
    for z, e in zip(zh, en, strict=True):
        z, e = z.strip(), e.strip()
        if z.endswith("。") and e.endswith(".") and len(z) >= 12:
            if split_sentences(z, "zh") == [z] and split_sentences(e, "en") == [e]:
                yield z, e


def _bare(zh: str) -> str:
    """Chinese without spaces: unpc-dev spaces numbers ("100 000"), the reflow removes them."""
    return "".join(zh.split())


def english_heading(turn) -> str:
    speaker = "The President" if turn.is_president else f"{speakers.title(turn.speaker)} Speaker"
    parts = [speaker]
    if turn.country:
        parts.append(f"({speakers.entity(turn.country) or turn.country})")
    language = speakers.language(turn.language) if turn.language else "Chinese"
    if language != "English":
        parts.append(f"(spoke in {language})")
    return " ".join(parts) + ":"


def zh_heading(turn) -> str:
    parens = "".join(f"（{p}）" for p in (turn.country,) if p)
    if turn.language:
        parens += f"（以{turn.language}发言）"
    return f"{turn.speaker}{parens}："


def column_lines(paragraph: str) -> list[str]:
    """Lay a paragraph out as printed: 20 ems on the first (indented) line, 22 after."""
    lines, line, width, limit = [], "", 0.0, COLUMN - 2
    for ch in paragraph:
        w = 1.0 if unicodedata.east_asian_width(ch) in "WFA" else 0.5
        if width + w > limit:
            lines.append(line)
            line, width, limit = "", 0.0, COLUMN
        line += ch
        width += w
    return lines + [line]


def build_pair(out: Path) -> tuple[Path, Path, int, set[tuple[str, str]]]:
    """Write the record-shaped pair; return the paths, the number of sentence pairs and the
    right pairs (Chinese without spaces, English)."""
    pairs = unpc_pairs()
    excerpt_en = EXCERPT_EN.read_text(encoding="utf-8").splitlines()
    procedural_en = {
        "上午10时10分开会。": excerpt_en[0],
        "通过议程": excerpt_en[1],
        "议程通过。": excerpt_en[2],
        "恐怖行为对国际和平与安全造成的威胁": excerpt_en[3],
        "防止恐怖分子获取武器": excerpt_en[4],
        "进行了举手表决。": excerpt_en[14],
        "赞成:": excerpt_en[15],
        "中午12时15分散会。": excerpt_en[-1],
    }
    truth: set[tuple[str, str]] = set()
    zh_paras, en_paras = [], []
    for turn in parse_turns(read_document(ZH)):
        for k, paragraph in enumerate(turn.paragraphs):
            if turn.kind == "procedural":
                zh_text = paragraph
                en_text = procedural_en.get(paragraph, excerpt_en[16])  # the list of votes
                truth.add((zh_text, en_text))
            else:
                chosen = [next(pairs) for _ in split_sentences(paragraph, "zh")]
                truth.update((_bare(z), e) for z, e in chosen)
                zh_text = "".join(z for z, _ in chosen)
                en_text = " ".join(e for _, e in chosen)
                if k == 0:
                    zh_text = zh_heading(turn) + zh_text
                    en_text = f"{english_heading(turn)} {en_text}"
            zh_paras.append(zh_text)
            en_paras.append(en_text)
    zh_path, en_path = out / "S-PV-8017.zh.txt", out / "S-PV-8017.en.txt"
    zh_lines = [line for p in zh_paras for line in column_lines(p)]
    zh_path.write_text("".join(f"{line}\n\n" for line in zh_lines), encoding="utf-8")
    en_path.write_text("\n".join(en_paras) + "\n", encoding="utf-8")
    return zh_path, en_path, len(truth), {(_bare(z), e) for z, e in truth}


def run(zh_path: Path, en_path: Path, mode: str, model, truth) -> dict[str, float]:
    encoder = CachedEncoder(model)  # empty in-memory cache, no disk cache
    c0, t0 = time.process_time(), time.perf_counter()
    zh = read_document(zh_path, "zh")
    en = read_document(en_path, "en")
    t1 = time.perf_counter()
    result = align_documents(zh, en, mode=mode, encoder=encoder)
    t2 = time.perf_counter()
    right = sum((_bare(p.zh), p.en) in truth for p in result.pairs)
    return {
        "read": t1 - t0,
        "align": t2 - t1,
        "total": t2 - t0,
        "cpu": time.process_time() - c0,
        "pairs": len(result.pairs),
        "right": right / len(truth),
        "mode": result.mode,
    }


def embed_only(zh_path: Path, en_path: Path, model) -> float:
    """Seconds to embed every sentence of both sides once: the floor under both modes."""
    zh = read_document(zh_path, "zh")
    en = read_document(en_path, "en")
    sentences = [s for p in zh.paragraphs for s in split_sentences(p, "zh")]
    sentences += [s for p in en.paragraphs for s in split_sentences(p, "en")]
    t0 = time.perf_counter()
    CachedEncoder(model).encode(sentences)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (median shown)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    model = load_encoder(cache=False).inner
    model.encode(["The model loads on first use."])
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    real_turns = parse_turns(read_document(ZH))
    real = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        zh_path, en_path, n_sents, truth = build_pair(Path(tmp))
        lines = len(ZH.read_text(encoding="utf-8").splitlines())
        built = len(zh_path.read_text(encoding="utf-8").splitlines())
        print(f"real record: {ZH.name}, {lines} lines, {len(real_turns)} turns, "
              f"read and cut in {real:.3f} s")
        print(f"timed pair: {built} lines of Chinese column text, {len(real_turns)} turns, "
              f"{n_sents} known sentence pairs (unpc-dev, procedural lines)")
        print(f"model load (not counted): {load:.2f} s")
        print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
        # Modes take turns, so a change in machine load hits both alike.
        runs: dict[str, list[dict]] = {"record": [], "plain": []}
        floors = []
        for _ in range(args.repeat):
            for mode in runs:
                runs[mode].append(run(zh_path, en_path, mode, model, truth))
            floors.append(embed_only(zh_path, en_path, model))
        print(
            f"{'mode':<8} {'read s':>7} {'align s':>8} {'total s':>8} {'cpu s':>7} {'pairs':>6}"
            f" {'right':>6}  totals of the runs"
        )
        for mode, results in runs.items():
            keys = ("read", "align", "total", "cpu")
            med = {k: statistics.median(r[k] for r in results) for k in keys}
            label = mode if results[0]["mode"] == mode else f"{mode}->{results[0]['mode']}"
            totals = " ".join(f"{r['total']:.2f}" for r in results)
            print(
                f"{label:<8} {med['read']:>7.2f} {med['align']:>8.2f} {med['total']:>8.2f} "
                f"{med['cpu']:>7.2f} {results[0]['pairs']:>6} {results[0]['right']:>6.1%}  "
                f"{totals}"
            )
        floor = statistics.median(floors)
        print(f"{'embed':<8} {'':>7} {floor:>8.2f}  (embedding every sentence once, wall)")
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
        print(
            "target: record total <= 15 s (cold embedding cache, median of runs); cpu s is "
            "the process's CPU time over all threads, a bound on the wall time when idle; "
            "right: share of the known sentence pairs found"
        )


if __name__ == "__main__":
    main()
