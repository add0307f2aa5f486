"""The ``aligner align`` and ``aligner serve`` subcommands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

from aligner.align.embed import DEFAULT_ENCODER

DEFAULT_OUT_DIR = Path("tmx_out")


def add_command(sub: argparse._SubParsersAction) -> None:
    align = sub.add_parser(
        "align",
        help="align a Chinese and an English document into a TMX memory",
        description="Align a Chinese document with its English version and write TMX 1.4b. "
        "Meeting records are cut into speaker turns first; other texts are aligned "
        "sentence by sentence.",
    )
    align.add_argument("zh", type=Path, help="Chinese document (.txt, .docx or .pdf)")
    align.add_argument("en", type=Path, help="English document (.txt, .docx or .pdf)")
    align.add_argument(
        "-o", "--output", type=Path, help="TMX file to write (default: tmx_out/<name>.tmx)"
    )
    align.add_argument(
        "--mode",
        choices=("auto", "record", "plain"),
        default="auto",
        help="record: speaker turns first; plain: sentences only; auto: record when the "
        "inputs look like meeting records (default)",
    )
    align.add_argument("--encoder", default=DEFAULT_ENCODER, help="use-m3 or st:<model>")
    align.add_argument("--max-bead", type=int, default=4, help="most sentences on one side")
    align.add_argument(
        "--min-score", type=float, default=None, help="leave out pairs scoring below this"
    )
    align.add_argument("--symbol", default="", help="document symbol for provenance")
    align.add_argument("--src-lang", default="zh-CN", help="TMX code of the Chinese side")
    align.add_argument("--tgt-lang", default="en-US", help="TMX code of the English side")
    align.add_argument("--json", action="store_true", help="print the summary as JSON")
    align.set_defaults(func=run_align)

    serve = sub.add_parser("serve", help="run the translation-memory HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data", type=Path, help="data folder (default $CONCORDIA_DATA_DIR)")
    serve.add_argument(
        "--store", help="postgresql://user@host:port/db: a memory shared by several servers "
        "(default $CONCORDIA_STORE, else SQLite in the data folder)"
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="server processes (one per core for lookups)"
    )
    serve.set_defaults(func=run_serve)


def default_output(zh_path: Path) -> Path:
    name = zh_path.name.split(".")[0] or "aligned"
    return DEFAULT_OUT_DIR / f"{name}.tmx"


def run_align(args: argparse.Namespace) -> int:
    from aligner.align.embed import load_encoder
    from aligner.align.sentence_align import DEFAULT_MIN_SCORE
    from aligner.errors import InputError
    from aligner.pipeline import align_documents, confident_pairs, left_out
    from aligner.read.ingest import read_document
    from aligner.tmx import pairs_to_units, write_tmx

    if args.max_bead < 1:
        raise InputError("--max-bead must be at least 1")
    min_score = DEFAULT_MIN_SCORE if args.min_score is None else args.min_score
    if not 0.0 <= min_score <= 1.0:
        raise InputError("--min-score must be between 0 and 1")
    zh = read_document(args.zh, "zh")
    en = read_document(args.en, "en")
    if args.symbol:
        zh.symbol = en.symbol = args.symbol
    encoder = load_encoder(args.encoder)
    result = align_documents(zh, en, mode=args.mode, encoder=encoder, max_bead=args.max_bead)

    kept, low = confident_pairs(result.pairs, min_score)
    output = args.output or default_output(args.zh)
    output.parent.mkdir(parents=True, exist_ok=True)
    units = pairs_to_units(
        kept,
        source_lang=args.src_lang,
        target_lang=args.tgt_lang,
        document=zh.symbol or args.zh.name,
    )
    written = write_tmx(output, units, source_lang=args.src_lang, target_lang=args.tgt_lang)
    warnings = list(result.warnings) + low
    listed = left_out(result, min_score)
    report = output.with_name(f"{output.stem}.left-out.json")
    _write_json(report, listed)
    summary = {
        "output": str(output),
        "mode": result.mode,
        "written": written,
        "left_out": len(result.pairs) - len(kept),
        "min_score": round(min_score, 3),
        "unmatched_zh": len(result.unmatched_zh),
        "unmatched_en": len(result.unmatched_en),
        "removed_zh": len(result.removed.get("zh", [])),
        "removed_en": len(result.removed.get("en", [])),
        "sentences": result.sentences,
        "mean_score": round(sum(p.score for p in result.pairs) / len(result.pairs), 3)
        if result.pairs
        else 0.0,
        "turns": [
            {"zh": t.zh, "en": t.en, "confidence": round(t.confidence, 3), "block": t.block}
            for t in result.turns
        ],
        "warnings": warnings,
        "left_out_report": str(report),
        **listed,
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(
            f"{summary['written']} pairs written to {output} ({result.mode} mode); "
            f"{summary['left_out']} left out below score {summary['min_score']}; "
            f"unmatched sentences: {summary['unmatched_zh']} zh, {summary['unmatched_en']} en; "
            f"page furniture removed: {summary['removed_zh']} zh, {summary['removed_en']} en; "
            f"mean score {summary['mean_score']}; all listed in {report}"
        )
    for warning in warnings:
        print(f"aligner: warning: {warning}", file=sys.stderr)
    return 0


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run_serve(args: argparse.Namespace) -> NoReturn:
    """Hand over to the service's own launcher (run, not imported: aligner never imports it)."""
    argv, env = serve_command(args)
    os.execve(sys.executable, argv, env)


def serve_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The command ``aligner serve`` runs and its environment.

    ``-P``: the current folder is not put first on the import path, so a stray
    ``concurrent.py`` there cannot replace the standard library's; the folder holding this
    package (and ``service`` beside it) is put on ``PYTHONPATH`` instead.

    ``MALLOC_ARENA_MAX=2`` unless set: glibc otherwise gives each of the server's threads
    (lookups, syncer, jobs, request pool) its own malloc arena; in the 10-minute soak
    (``bench/soak_bench.py``, README) the server then held about 70 MiB more.
    """
    env = dict(os.environ)
    env.setdefault("MALLOC_ARENA_MAX", "2")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-P", "-m", "service.web.app", "--host", args.host]
    argv += ["--port", str(args.port)]
    argv += ["--workers", str(args.workers)]
    if args.data is not None:
        argv += ["--data", str(args.data)]
    if getattr(args, "store", None) is not None:
        argv += ["--store", args.store]
    return argv, env
