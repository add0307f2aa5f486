"""Real UN records end to end, and the time to align a record of S/PV.8017's size.

Part 1, real records (issue 10), each figure beside the code of main@5e02e7e (before the work
on real records) run in the same session on the same files:
- S/PV.10124 part 1, Chinese and official English as pdf.js extracted them: read + cut + align
  time (cold embedding cache, model loaded), whether every turn is paired with its
  counterpart, letters and digits of the body lost (the body being each version's text less
  page furniture, headings and language notes, as the current reader and turn cutter see
  it; a letter is lost when no sentence of the result holds it), and the share of Chinese
  and of English sentences that are in a pair scoring at least the threshold;
- the three English PDFs and the Chinese S/PV.8017: speech turns found against the lists
  read by hand in tests/test_turns.py, letters and digits lost between reading and
  sentences.

Part 2, S/PV.8017-sized record:

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

    python bench/record_bench.py [--repeat 3] [--baseline 5e02e7e]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path

from aligner.align.embed import CachedEncoder, load_encoder
from aligner.align.segment import split_sentences
from aligner.align.sentence_align import DEFAULT_MIN_SCORE
from aligner.pipeline import align_documents
from aligner.read.ingest import read_document
from aligner.record import speakers
from aligner.record.turns import letters, parse_turns

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CONCORDIA_SHARED_DATA", ROOT.parent / "shared" / "data"))
UN = DATA / "un"
PV10124 = (UN / "S-PV-10124.part1.zh.txt", UN / "S-PV-10124.part1.en.txt")
ONE_SIDED = ("S-PV-8422.en.pdf", "S-PV-3756.en.pdf", "A-79-PV-29.en.pdf", "S-PV-8017.zh.txt")
BASELINE = "d8345ca"  # main before issue 19 (5e02e7e: before the work on real records)
PV10100 = (UN / "S-PV-10100.zh.txt", UN / "S-PV-10100.en.txt")
PV10100_PAIRS = ROOT / "tests" / "data" / "S-PV-10100.pairs.tsv"
REWRAP = 500  # layouts per record and language (S/PV.10124 part 1, S/PV.10100)
REWRAP_OTHERS = 50  # the other records (A/79/PV.29 takes half a second a layout)
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


# ---------------------------------------------------------------- part 1: real records

# Run in a child process, with either this checkout or the baseline's aligner on the path, so
# that both are timed alike; it prints what the parent scores.
CHILD = """
import json, statistics, sys, time
from importlib.util import find_spec
if find_spec("aligner.ingest") is None:
    from aligner.align.embed import CachedEncoder, load_encoder
    from aligner.read.ingest import read_document
else:  # the layout before issue 24 (a baseline)
    from aligner.embed import CachedEncoder, load_encoder
    from aligner.ingest import read_document
from aligner.pipeline import align_documents
zh_path, en_path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = load_encoder(cache=False).inner
model.encode(["The model loads on first use."])
times, cpu = [], []
for _ in range(repeat):
    t0, c0 = time.perf_counter(), time.process_time()
    zh = read_document(zh_path, "zh")
    en = read_document(en_path, "en")
    result = align_documents(zh, en, encoder=CachedEncoder(model))
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
print(json.dumps({
    "seconds": statistics.median(times), "cpu": statistics.median(cpu), "mode": result.mode,
    "pairs": [[p.zh, p.en, p.score, len(p.zh_indices), len(p.en_indices)]
              for p in result.pairs],
    "unmatched_zh": result.unmatched_zh, "unmatched_en": result.unmatched_en,
    "turns": [[t.zh, t.en] for t in getattr(result, "turns", [])],
    "unmatched_zh_index": [u.index for u in result.unmatched if u.lang == "zh"],
    "zh_sentences": result.sentences.get("zh", 0), "en_sentences": result.sentences.get("en", 0),
}))
"""

# The re-wrapping property (tests/rewrap.py) under either code: every record laid out again
# ``n`` times (seeded), and how many of its sentences each layout cut differently.
REWRAP_CHILD = """
import json, random, sys
sys.path.insert(0, sys.argv[1])
import rewrap
from importlib.util import find_spec
if find_spec("aligner.ingest") is None:
    from aligner.read.ingest import read_document
else:  # the layout before issue 24 (a baseline)
    from aligner.ingest import read_document
from collections import Counter
out = {}
for arg in sys.argv[2:]:
    path, n = arg.rsplit(":", 1)
    n = int(n)
    doc = read_document(path)
    expected = rewrap.sentences_of(doc)
    furniture = rewrap.furniture_of(doc.removed, doc.symbol)
    rng, done, layouts, cut, tries = random.Random(19), 0, 0, 0, 0
    while done < n and tries < 20 * n:
        tries += 1
        layout = rewrap.random_layout(rng, doc.lang)
        text = rewrap.relayout(doc.paragraphs, doc.lang, furniture, layout)
        if text is None:
            continue
        got = rewrap.sentences(text, doc.lang)
        missing = (Counter(expected) - Counter(got)).total()
        done += 1
        layouts += missing > 0
        cut += missing
    out[path] = [done, layouts, cut, len(expected)]
print(json.dumps(out))
"""


def baseline_tree(commit: str, into: Path) -> Path:
    """The baseline's ``aligner`` package extracted from git into ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "aligner"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_child(code_root: Path, repeat: int, pair: tuple[Path, Path] = PV10124) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(pair[0]), str(pair[1]), str(repeat)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=code_root,
    ).stdout
    return json.loads(out)


def body(path: Path) -> tuple[Counter, list[str], list]:
    """Letters and digits of a record's body (its text less page furniture, headings and
    language notes, as this checkout reads and cuts it), each turn's letters, and the turns."""
    doc = read_document(path)
    turns = parse_turns(doc)
    noise = letters("".join(t.heading + "".join(t.notes) for t in turns))
    return Counter(letters("".join(doc.paragraphs))) - Counter(noise), [
        letters("".join(t.paragraphs)) for t in turns
    ], turns


def turn_of(text: str, turn_letters: list[str]) -> int | None:
    """The turn whose text holds ``text`` (by its first letters), or None."""
    key = letters(text)[:15]
    hits = [k for k, t in enumerate(turn_letters) if key and key in t]
    return hits[0] if len(hits) == 1 else None


def score_pair_run(run: dict, zh_body, en_body) -> dict[str, object]:
    (zh_expected, zh_turns, _), (en_expected, en_turns, _) = zh_body, en_body
    zh_got = Counter(letters("".join([p[0] for p in run["pairs"]] + run["unmatched_zh"])))
    en_got = Counter(letters("".join([p[1] for p in run["pairs"]] + run["unmatched_en"])))
    n_zh = sum(p[3] for p in run["pairs"]) + len(run["unmatched_zh"])
    n_en = sum(p[4] for p in run["pairs"]) + len(run["unmatched_en"])
    good = [p for p in run["pairs"] if p[2] >= DEFAULT_MIN_SCORE]
    # A pair's two sides in the same turn of the two versions (they have the same turns in
    # the same order here); pairs whose text is found in no single turn are "unplaced".
    placed = [(turn_of(p[0], zh_turns), turn_of(p[1], en_turns)) for p in run["pairs"]]
    return {
        "seconds": run["seconds"],
        "cpu": run.get("cpu", float("nan")),
        "lost_zh": (zh_expected - zh_got).total(),
        "lost_en": (en_expected - en_got).total(),
        "in_good_zh": sum(p[3] for p in good) / max(n_zh, 1),
        "in_good_en": sum(p[4] for p in good) / max(n_en, 1),
        "sentences": (n_zh, n_en),
        "unmatched": (len(run["unmatched_zh"]), len(run["unmatched_en"])),
        "below": len(run["pairs"]) - len(good),
        "same_turn": sum(a is not None and a == b for a, b in placed),
        "unplaced": sum(a is None or b is None for a, b in placed),
        "pairs": len(run["pairs"]),
    }


def expected_speakers() -> dict[str, list]:
    sys.path.insert(0, str(ROOT / "tests"))
    import test_turns  # the lists read by hand

    return {
        "S-PV-8422.en.pdf": test_turns.PV8422,
        "S-PV-3756.en.pdf": test_turns.PV3756,
        "A-79-PV-29.en.pdf": test_turns.A79PV29,
        "S-PV-8017.zh.txt": test_turns.PV8017_SPEAKERS,
        "zh": test_turns.PV10124_ZH,
        "en": test_turns.PV10124_EN,
    }


def speech(turns) -> list[tuple[str, str, str]]:
    return [(t.speaker, t.country, t.language) for t in turns if t.kind == "speech"]


def run_rewrap(code_root: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    records = [f"{path}:{REWRAP}" for path in (*PV10124, *PV10100)]
    records += [f"{UN / name}:{REWRAP_OTHERS}" for name in ONE_SIDED]
    out = subprocess.run(
        [sys.executable, "-c", REWRAP_CHILD, str(ROOT / "tests"), *records],
        check=True, capture_output=True, text=True, env=env, cwd=code_root,
    ).stdout
    return json.loads(out)


def score_10100(run: dict) -> dict[str, object]:
    """S/PV.10100 against the pairs read by hand: English sentences in a right pair (any
    score, and scoring >= the threshold), turns, and the Chinese procedural parts unpaired."""
    gold = [line.split("\t") for line in PV10100_PAIRS.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")]
    truth = {(z, e) for z, e in gold}
    pairs = [(p[0], p[1], p[2], p[4]) for p in run["pairs"]]
    right = [p for p in pairs if (p[0], p[1]) in truth]
    zh_doc = read_document(PV10100[0])
    zh_turns = parse_turns(zh_doc)
    en_turns = parse_turns(read_document(PV10100[1]))
    # Chinese procedural turns without an English counterpart: their sentences all unpaired
    starts, total = [], 0
    for t in zh_turns:
        starts.append(total)
        total += sum(len(split_sentences(p, "zh")) for p in t.paragraphs)
    linked_zh = {z for z, e in run["turns"] if z is not None and e is not None}
    lone = [k for k, t in enumerate(zh_turns) if t.kind == "procedural" and k not in linked_zh]
    lone_sents = {i for k in lone for i in range(starts[k], starts[k + 1] if k + 1 < len(
        starts) else total)}
    unpaired = set(run.get("unmatched_zh_index", []))
    en_linked = {e for z, e in run["turns"] if z is not None and e is not None}
    return {
        "seconds": run["seconds"],
        "en_right": sum(p[3] for p in right) / len(gold),
        "en_right_good": sum(p[3] for p in right if p[2] >= DEFAULT_MIN_SCORE) / len(gold),
        "turns": f"{len(en_linked)} of {len(en_turns)}",
        "lone": f"{len(lone_sents & unpaired)} of {len(lone_sents)}",
        "glued": sum(1 for p in pairs if (p[0], p[1]) not in truth),
    }


def print_issue19(issue19: dict, baseline: str) -> None:
    print(f"S/PV.10100 (issue 19; English without cover, time and agenda lines), the same "
          f"way; pairs checked against {PV10100_PAIRS.name}, read by hand")
    print(f"  {'':<30} {'now':>14} {'main@' + baseline:>14}")
    scored = {name: score_10100(r[0]) for name, r in issue19.items()}
    rows = [
        ("read + cut + align s", lambda r: f"{r['seconds']:.2f}"),
        ("English turns paired", lambda r: r["turns"]),
        ("en sentences in a right pair", lambda r: f"{r['en_right']:.1%}"),
        ("  ... scoring >= threshold", lambda r: f"{r['en_right_good']:.1%}"),
        ("pairs not in the hand list", lambda r: str(r["glued"])),
        ("zh cover/time/agenda unpaired", lambda r: r["lone"]),
    ]
    for label, cell in rows:
        print(f"  {label:<30} {cell(scored['now']):>14} {cell(scored[baseline]):>14}")
    print("  targets: every English turn paired, >= 99 % of the English sentences in a right "
          "pair, the Chinese cover, time and agenda lines unpaired")
    print(f"re-wrapping property (tests/rewrap.py): {REWRAP} layouts per record and language "
          f"({REWRAP_OTHERS} for the other records); layouts with sentences cut differently / "
          "sentences cut differently")
    print(f"  {'':<30} {'now':>14} {'main@' + baseline:>14}")
    for path in issue19["now"][1]:
        cells = [issue19[name][1][path] for name in ("now", baseline)]
        print(f"  {Path(path).name:<30} " + " ".join(f"{c[1]:>6} / {c[2]:<5}" for c in cells)
              + f"  ({cells[0][0]} layouts, {cells[0][3]} sentences)")
    print("  target: 0 sentences cut differently (S/PV.10124 part 1 and S/PV.10100)")


def real_records(repeat: int, baseline: str) -> None:
    expected = expected_speakers()
    zh_body, en_body = body(PV10124[0]), body(PV10124[1])
    turns_found = speech(zh_body[2]) == expected["zh"] and speech(en_body[2]) == expected["en"]
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_tree(baseline, Path(tmp))
        runs = {"now": run_child(ROOT, repeat), baseline: run_child(old, repeat)}
        issue19 = {
            "now": (run_child(ROOT, repeat, PV10100), run_rewrap(ROOT)),
            baseline: (run_child(old, repeat, PV10100), run_rewrap(old)),
        }
    now = runs["now"]
    speech_zh = [k for k, t in enumerate(zh_body[2]) if t.kind == "speech"]
    speech_en = [k for k, t in enumerate(en_body[2]) if t.kind == "speech"]
    right = sorted(zip(speech_zh, speech_en, strict=True)) if turns_found else []
    linked = sorted((z, e) for z, e in now["turns"] if (z in speech_zh and e in speech_en))
    print(f"S/PV.10124 part 1 ({PV10124[0].name}, {PV10124[1].name}); read + cut + align, "
          f"cold embedding cache, median of {repeat}; baseline: the code of main@{baseline}")
    print(f"  speech turns found as read by hand: zh {len(speech(zh_body[2]))}, en "
          f"{len(speech(en_body[2]))}: {'all' if turns_found else 'NOT all'}; every speech "
          f"turn paired with its counterpart: {'yes' if right and linked == right else 'NO'}")
    print(f"  {'':<24} {'now':>14} {'main@' + baseline:>14}")
    scored = {name: score_pair_run(r, zh_body, en_body) for name, r in runs.items()}
    rows = [
        ("read + cut + align s", lambda r: f"{r['seconds']:.2f}"),
        ("  cpu s (all threads)", lambda r: f"{r['cpu']:.2f}"),
        ("sentences zh / en", lambda r: "{} / {}".format(*r["sentences"])),
        ("letters lost zh / en", lambda r: f"{r['lost_zh']} / {r['lost_en']}"),
        ("zh in a pair >= thr", lambda r: f"{r['in_good_zh']:.1%}"),
        ("en in a pair >= thr", lambda r: f"{r['in_good_en']:.1%}"),
        ("unmatched zh / en", lambda r: "{} / {}".format(*r["unmatched"])),
        ("pairs below threshold", lambda r: str(r["below"])),
        ("pairs in one turn pair", lambda r: f"{r['same_turn']} of {r['pairs']}"),
        ("  (text in no one turn)", lambda r: str(r["unplaced"])),
    ]
    for label, cell in rows:
        print(f"  {label:<24} {cell(scored['now']):>14} {cell(scored[baseline]):>14}")
    print(f"  targets: every turn paired right, 0 letters lost, >= 97 % of each side's "
          f"sentences in a pair scoring >= {DEFAULT_MIN_SCORE}, <= 10 s")
    print_issue19(issue19, baseline)
    print("one-sided records: speech turns found / read by hand, letters and digits lost")
    for name in ONE_SIDED:
        t0 = time.perf_counter()
        expected_body, _, turns = body(UN / name)
        lang = "zh" if name.endswith(".zh.txt") else "en"
        sentences = [s for t in turns for p in t.paragraphs for s in split_sentences(p, lang)]
        lost = (expected_body - Counter(letters("".join(sentences)))).total()
        found = speech(turns)
        want = expected[name]
        print(f"  {name:<20} {len(found):>3} / {len(want):<3} "
              f"{'all found' if found == want else 'DIFFERENT'}; lost {lost}; "
              f"read + cut {time.perf_counter() - t0:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (median shown)")
    parser.add_argument("--baseline", default=BASELINE, help="commit to compare with")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    real_records(args.repeat, args.baseline)
    print()

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
