"""``aligner eval``: align a gold-annotated corpus and score it like Vecalign and Bertalign.

The corpus layout is that of MAC-Dev and Bertalign's Bible: ``zh/NAME`` and ``en/NAME`` hold
one sentence per line, ``gold/NAME.align`` one bead per line (``[0,1]:[0]``, 0-based line
numbers). With ``--verses``, ``zh.verse`` and ``en.verse`` give the verse of every line and
consecutive beads within one verse are joined before scoring.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aligner.align.embed import DEFAULT_ENCODER
from aligner.errors import InputError

BeadPair = tuple[tuple[int, ...], tuple[int, ...]]


def parse_beads(text: str, source: str = "") -> list[BeadPair]:
    """Beads from the gold format, one ``[zh indices]:[en indices]`` per line."""
    beads = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            left, right = line.split(":")
            zh, en = ast.literal_eval(left.strip()), ast.literal_eval(right.strip())
            beads.append((tuple(int(x) for x in zh), tuple(int(x) for x in en)))
        except (ValueError, SyntaxError, TypeError) as exc:
            raise InputError(f"{source or 'alignment'}:{number}: not a bead: {line!r}") from exc
    return beads


def format_beads(beads: Iterable[BeadPair]) -> str:
    return "".join(
        f"[{','.join(map(str, zh))}]:[{','.join(map(str, en))}]\n" for zh, en in beads
    )


def _counts(gold: Iterable[BeadPair], test: Iterable[BeadPair]) -> tuple[int, int, int, int]:
    """(strict hits, strict misses, lax hits, lax misses) of ``test`` beads against ``gold``."""
    gold_set = {b for b in gold if b[0] or b[1]}
    test_set = {b for b in test if b[0] or b[1]}
    targets = defaultdict(set)
    for zh, en in gold_set:
        for i in zh:
            targets[i].update(en)
    strict_hit = strict_miss = lax_hit = lax_miss = 0
    for zh, en in test_set:
        if (zh, en) in gold_set:
            strict_hit += 1
            lax_hit += 1
            continue
        strict_miss += 1
        linked = set().union(*(targets[i] for i in zh)) if zh else set()
        if linked & set(en):
            lax_hit += 1
        else:
            lax_miss += 1
    return strict_hit, strict_miss, lax_hit, lax_miss


def score(gold_docs: Sequence[Sequence[BeadPair]], test_docs: Sequence[Sequence[BeadPair]]) -> dict:
    """Strict and lax precision, recall, F1 over all documents (Thompson & Koehn 2019).

    Precision counts every predicted bead (unmatched ones included); recall counts the gold
    beads with both sides non-empty, matched against predicted beads with both sides
    non-empty. Lax: a bead counts when it overlaps a bead of the other set on both sides.
    """
    p = [0, 0, 0, 0]
    r = [0, 0, 0, 0]
    for gold, test in zip(gold_docs, test_docs, strict=True):
        p = [x + y for x, y in zip(p, _counts(gold, test), strict=True)]
        both_test = [b for b in test if b[0] and b[1]]
        both_gold = [b for b in gold if b[0] and b[1]]
        r = [x + y for x, y in zip(r, _counts(both_test, both_gold), strict=True)]

    def ratio(hit: int, miss: int) -> float:
        return hit / (hit + miss) if hit + miss else 0.0

    def f1(prec: float, rec: float) -> float:
        return 2 * prec * rec / (prec + rec) if prec + rec else 0.0

    out = {
        "precision_strict": ratio(p[0], p[1]),
        "recall_strict": ratio(r[0], r[1]),
        "precision_lax": ratio(p[2], p[3]),
        "recall_lax": ratio(r[2], r[3]),
    }
    out["f1_strict"] = f1(out["precision_strict"], out["recall_strict"])
    out["f1_lax"] = f1(out["precision_lax"], out["recall_lax"])
    return out


def merge_verses(beads: Sequence[BeadPair], zh_verse: Sequence[str], en_verse: Sequence[str]):
    """Join consecutive predicted beads that lie within one and the same verse (Bertalign's
    Bible evaluation): a bead's verse is the single verse of its sentences, an empty side
    taking the other side's verse; a bead spanning two verses is never joined."""
    merged: list[list[list[int]]] = []
    last = None
    for zh, en in beads:
        zv = {zh_verse[i] for i in zh} or {None}
        ev = {en_verse[j] for j in en} or {None}
        kind = None
        if len(zv) == 1 and len(ev) == 1:
            (z,), (e,) = zv, ev
            if z is None or e is None or z == e:
                kind = z if z is not None else e
        if last is not None and kind == last:
            merged[-1][0].extend(zh)
            merged[-1][1].extend(en)
        else:
            merged.append([list(zh), list(en)])
        last = kind
    return [(tuple(z), tuple(e)) for z, e in merged]


@dataclass
class GoldDocument:
    name: str
    zh: list[str]
    en: list[str]
    gold: list[BeadPair]


@dataclass
class Evaluation:
    scores: dict
    seconds_embed: float
    seconds_align: float
    predictions: dict[str, list[BeadPair]] = field(default_factory=dict)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_bytes().decode("utf-8").splitlines()
    except FileNotFoundError as exc:
        raise InputError(f"missing file: {path}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {path}") from exc


def read_corpus(data_dir: Path) -> list[GoldDocument]:
    """Every document of a gold-annotated corpus, its lines used as they are."""
    gold_dir = data_dir / "gold"
    if not gold_dir.is_dir():
        raise InputError(f"{data_dir}: no gold/ folder (expected zh/, en/ and gold/*.align)")
    docs = []
    for gold_path in sorted(gold_dir.glob("*.align")):
        name = gold_path.stem
        zh = _read_lines(data_dir / "zh" / name)
        en = _read_lines(data_dir / "en" / name)
        gold = parse_beads("\n".join(_read_lines(gold_path)), str(gold_path))
        for zh_idx, en_idx in gold:
            if any(i >= len(zh) for i in zh_idx) or any(j >= len(en) for j in en_idx):
                raise InputError(f"{gold_path}: bead {list(zh_idx)}:{list(en_idx)} points past "
                                 f"the end of zh/{name} or en/{name}")
        docs.append(GoldDocument(name, zh, en, gold))
    if not docs:
        raise InputError(f"{gold_dir}: no .align files")
    return docs


def read_verses(data_dir: Path, docs: Sequence[GoldDocument]) -> tuple[list[str], list[str]]:
    zh_verse = _read_lines(data_dir / "zh.verse")
    en_verse = _read_lines(data_dir / "en.verse")
    if len(docs) != 1 or len(zh_verse) != len(docs[0].zh) or len(en_verse) != len(docs[0].en):
        raise InputError(
            f"{data_dir}: --verses needs one document whose zh.verse and en.verse have one "
            "line per sentence"
        )
    return zh_verse, en_verse


def evaluate(
    docs: Sequence[GoldDocument],
    *,
    method: str = "embedding",
    encoder_spec: str = DEFAULT_ENCODER,
    max_bead: int = 4,
    verses: tuple[list[str], list[str]] | None = None,
    encoder=None,
) -> Evaluation:
    """Align every document, score the beads against the gold; times embedding and aligning
    apart (embedding time includes loading the encoder on first use). ``encoder``, when
    given, is used instead of loading ``encoder_spec``."""
    from aligner.align.embed import encode_windows
    from aligner.align.length import align_lengths
    from aligner.align.sentence_align import align_embedded

    seconds_embed = seconds_align = 0.0
    predictions: dict[str, list[BeadPair]] = {}
    for doc in docs:
        if method == "length":
            start = time.perf_counter()
            beads = align_lengths(doc.zh, doc.en)
            seconds_align += time.perf_counter() - start
        else:
            start = time.perf_counter()
            if encoder is None:
                from aligner.align.embed import load_encoder

                encoder = load_encoder(encoder_spec)
            zh_vecs, zh_windows = encode_windows(encoder, doc.zh, max_bead)
            en_vecs, en_windows = encode_windows(encoder, doc.en, max_bead)
            seconds_embed += time.perf_counter() - start
            start = time.perf_counter()
            beads = align_embedded(doc.zh, doc.en, zh_vecs, en_vecs, max_bead=max_bead,
                                   windows=(zh_windows, en_windows))
            seconds_align += time.perf_counter() - start
        predictions[doc.name] = [(b.zh, b.en) for b in beads]
    tests = [predictions[d.name] for d in docs]
    if verses is not None:
        tests = [merge_verses(t, *verses) for t in tests]
    scores = score([d.gold for d in docs], tests)
    return Evaluation(scores, seconds_embed, seconds_align, predictions)


def write_predictions(out_dir: Path, predictions: dict[str, list[BeadPair]]) -> None:
    """One NAME.align per document, each written to a temporary file and renamed into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, beads in predictions.items():
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(format_beads(beads))
            os.replace(tmp, out_dir / f"{name}.align")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def find_corpora(path: Path) -> list[Path]:
    """``path`` itself when it holds gold/, else its sub-folders that do (a folder of corpora,
    such as the shared data with mac-dev/, unpc-docs/ and bible/), sorted by name."""
    if not path.is_dir():
        raise InputError(f"not a folder: {path}")
    if (path / "gold").is_dir():
        return [path]
    found = sorted(p for p in path.iterdir() if (p / "gold").is_dir())
    if not found:
        raise InputError(f"{path}: no gold/ folder (expected zh/, en/ and gold/*.align, or "
                         "folders that hold them)")
    return found


def has_verses(data_dir: Path) -> bool:
    return (data_dir / "zh.verse").is_file() and (data_dir / "en.verse").is_file()


def add_command(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="align gold-annotated corpora and report precision, recall and F1",
        description="Align every document of each DATA_DIR (zh/, en/, gold/*.align; one "
        "sentence per line; or a folder of such corpora, e.g. the shared data with mac-dev, "
        "unpc-docs and bible) and print strict and lax precision, recall and F1 (Thompson & "
        "Koehn 2019) with the seconds spent embedding and aligning. A corpus with zh.verse and "
        "en.verse (the Bible) is scored verse by verse.",
    )
    parser.add_argument("data_dirs", type=Path, nargs="+", metavar="DATA_DIR")
    parser.add_argument(
        "--verses", action="store_true",
        help="require verse-by-verse scoring (zh.verse/en.verse) for every corpus",
    )
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per corpus and method, one a line")
    parser.add_argument("--out", type=Path, help="write the predicted beads here, NAME.align "
                        "(one corpus and one method only)")
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help="use-m3 or st:<model>")
    parser.add_argument("--max-bead", type=int, default=4, help="most sentences on one side")
    parser.add_argument(
        "--method", choices=("embedding", "length", "both"), default="embedding",
        help="embedding (default), the Gale-Church length baseline, or both side by side",
    )
    parser.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    if args.max_bead < 1:
        raise InputError("--max-bead must be at least 1")
    corpora = [c for path in args.data_dirs for c in find_corpora(path)]
    methods = ["embedding", "length"] if args.method == "both" else [args.method]
    if args.out and len(corpora) * len(methods) > 1:
        raise InputError("--out needs one corpus and one method")
    loaded = []  # read everything first: bad input fails before any alignment
    for data_dir in corpora:
        docs = read_corpus(data_dir)
        verses = read_verses(data_dir, docs) if args.verses or has_verses(data_dir) else None
        loaded.append((data_dir, docs, verses))
    encoder = None
    if "embedding" in methods:
        from aligner.align.embed import load_encoder

        encoder = load_encoder(args.encoder)
    rows = []
    for data_dir, docs, verses in loaded:
        for method in methods:
            result = evaluate(docs, method=method, max_bead=args.max_bead, verses=verses,
                              encoder=encoder)
            if args.out:
                write_predictions(args.out, result.predictions)
            rows.append((data_dir, docs, verses, method, result))
    for data_dir, docs, verses, method, result in rows:
        summary = {
            "corpus": data_dir.name,
            **{k: round(v, 4) for k, v in result.scores.items()},
            "seconds_embed": round(result.seconds_embed, 2),
            "seconds_align": round(result.seconds_align, 2),
            "documents": len(docs),
            "method": method,
            "encoder": args.encoder if method == "embedding" else None,
            "max_bead": args.max_bead,
            "verses": verses is not None,
        }
        if args.json:
            print(json.dumps(summary))
    if not args.json:
        print("strict and lax precision (P), recall (R) and F1; seconds embedding and aligning")
        print(f"{'corpus':18} {'method':10} {'P':>6} {'R':>6} {'F1':>7} | {'lax P':>6} "
              f"{'lax R':>6} {'lax F1':>6} | {'embed s':>7} {'align s':>7}")
        for data_dir, docs, verses, method, result in rows:
            s = result.scores
            name = f"{data_dir.name} ({len(docs)}{', verses' if verses is not None else ''})"
            print(f"{name:18} {method:10} {s['precision_strict']:6.3f} "
                  f"{s['recall_strict']:6.3f} {s['f1_strict']:7.4f} | {s['precision_lax']:6.3f} "
                  f"{s['recall_lax']:6.3f} {s['f1_lax']:6.3f} | {result.seconds_embed:7.2f} "
                  f"{result.seconds_align:7.2f}")
    return 0
