"""``aligner batch``: align many document pairs, in one process or on a Dask cluster.

Every pair goes through :func:`align_pair`, a plain function shared by the single-process path
and the Dask path. It writes ``pairs/ID.tmx`` and ``pairs/ID.json`` (temp file + rename); the
JSON report carries a content hash of both inputs and the settings, so a rerun skips pairs whose
outputs match and redoes the rest; which pairs those are is decided first
(:func:`finished_report`), and no cluster starts and no model loads when none is left. A
failing pair gives a report with its reason; the batch goes on. The run closes with
``merged.tmx`` (all good pairs, manifest order) and ``summary.json``.

With Dask the inputs and the output folder must be visible to every worker at the same paths
(one machine, or a shared file system). The encoder and the CC-CEDICT lexicon are loaded once
per process, before its first pair (:func:`load_models`; on Dask workers through
:func:`prepare_worker`), and kept in module-level caches. The cluster comes from
:mod:`aligner.cluster` (a local one, or a running one at ``--scheduler``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aligner.align.embed import DEFAULT_ENCODER, load_encoder
from aligner.cluster import dask_client
from aligner.errors import InputError, describe
from aligner.limits import NO_SIZE_LIMIT, AlignLimits, read_side_file

if TYPE_CHECKING:
    from aligner.models import AlignmentResult

log = logging.getLogger(__name__)

PAIRS_DIR = "pairs"
MERGED_TMX = "merged.tmx"
SUMMARY_JSON = "summary.json"
MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson")
PIPELINE_LOGGER = "aligner.pipeline"
_HASH_VERSION = 1  # bump when the per-pair outputs change meaning



@dataclass(frozen=True)
class PairSpec:
    """One document pair of a batch. ``error`` marks a pair the manifest could not complete."""

    id: str
    zh: str
    en: str
    symbol: str = ""
    error: str = ""


@dataclass(frozen=True)
class BatchSettings:
    """What changes the outputs (all of it goes into the resume hash)."""

    encoder: str = DEFAULT_ENCODER
    mode: str = "auto"
    min_score: float = 0.5
    max_bead: int = 4
    source_lang: str = "zh-CN"
    target_lang: str = "en-US"

    @classmethod
    def create(cls, min_score: float | None = None, **kwargs) -> BatchSettings:
        """Settings with ``min_score`` defaulting to the aligner's threshold, validated."""
        from aligner.align.sentence_align import DEFAULT_MIN_SCORE

        settings = cls(min_score=DEFAULT_MIN_SCORE if min_score is None else min_score, **kwargs)
        if not 0.0 <= settings.min_score <= 1.0:
            raise InputError("--min-score must be between 0 and 1")
        if settings.max_bead < 1:
            raise InputError("--max-bead must be at least 1")
        if settings.mode not in ("auto", "record", "plain"):
            raise InputError(f"unknown mode '{settings.mode}': use auto, record or plain")
        return settings


@dataclass
class BatchSummary:
    """What a run did: one report per pair (manifest order) and the totals."""

    out_dir: str
    reports: list[dict] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)  # seconds: start, load, align, ...

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.reports if r["status"] == "failed"]

    def to_json(self) -> dict:
        ok = [r for r in self.reports if r["status"] == "ok"]
        return {
            "pairs": len(self.reports),
            "ok": len(ok),
            "failed": len(self.failed),
            "resumed": sum(1 for r in ok if r.get("resumed")),
            "cancelled": self.cancelled,
            "pairs_written": sum(r["pairs_written"] for r in ok),
            "below_threshold": sum(r["below_threshold"] for r in ok),
            "warnings": sum(len(r["warnings"]) for r in ok),
            "seconds": round(self.seconds, 3),
            "stage_seconds": {name: round(sec, 3) for name, sec in self.stages.items()},
            "merged_tmx": MERGED_TMX,
            "reports": self.reports,
        }


# ---------------------------------------------------------------- manifests


def _check_id(pair_id: str, where: str) -> str:
    pair_id = pair_id.strip()
    if not pair_id or pair_id.startswith(".") or any(c in pair_id for c in "/\\\x00"):
        raise InputError(f"{where}: bad pair id {pair_id!r} (it names output files: no slashes)")
    return pair_id


def _resolve(base: Path, value: str) -> str:
    path = Path(value.strip())
    return str(path if path.is_absolute() else base / path)


def _rows_from_csv(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if not rows:
        return
    header = [cell.strip().lower() for cell in rows[0]]
    if {"id", "zh", "en"} <= set(header):
        names, rows = header, rows[1:]
    else:
        names = ["id", "zh", "en", "symbol"]
    for number, row in enumerate(rows, start=2 if names is header else 1):
        if len(row) < 3:
            raise InputError(f"{path}, line {number}: expected id, zh path, en path[, symbol]")
        yield number, dict(zip(names, row, strict=False))


def _rows_from_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}, line {number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not {"id", "zh", "en"} <= row.keys():
                raise InputError(f"{path}, line {number}: expected an object with id, zh, en")
            yield number, row


def _pairs_in_folder(folder: Path) -> list[PairSpec]:
    """``NAME.zh.EXT`` / ``NAME.en.EXT`` files side by side; a missing side is a failed pair."""
    found: dict[str, dict[str, list[Path]]] = {}
    for path in sorted(folder.iterdir()):
        parts = path.name.split(".")
        if path.is_file() and len(parts) >= 3 and parts[-2] in ("zh", "en") and parts[0]:
            name = ".".join(parts[:-2])
            found.setdefault(name, {"zh": [], "en": []})[parts[-2]].append(path)
    if not found:
        raise InputError(f"{folder}: no NAME.zh.* / NAME.en.* document pairs found")
    pairs = []
    for name, sides in found.items():
        error = ""
        for lang, word in (("zh", "Chinese"), ("en", "English")):
            if not sides[lang]:
                error = error or f"no {word} file {name}.{lang}.*"
            elif len(sides[lang]) > 1:
                error = error or f"more than one {word} file: " + ", ".join(
                    p.name for p in sides[lang]
                )
        zh = str(sides["zh"][0]) if sides["zh"] else ""
        en = str(sides["en"][0]) if sides["en"] else ""
        pairs.append(PairSpec(_check_id(name, str(folder)), zh, en, error=error))
    return pairs


def read_manifest(path: str | Path) -> list[PairSpec]:
    """Pairs from a CSV / JSON Lines manifest (paths relative to it) or a folder of pairs."""
    path = Path(path)
    if path.is_dir():
        return _pairs_in_folder(path)
    if not path.is_file():
        raise InputError(f"no such manifest: {path}")
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise InputError(f"{path}: a manifest is a .csv or .jsonl file, or a folder of pairs")
    rows = _rows_from_csv(path) if suffix == ".csv" else _rows_from_jsonl(path)
    pairs: list[PairSpec] = []
    seen: set[str] = set()
    try:
        for number, row in rows:
            where = f"{path}, line {number}"
            pair_id = _check_id(str(row["id"]), where)
            if pair_id in seen:
                raise InputError(f"{where}: pair id {pair_id!r} appears twice")
            seen.add(pair_id)
            zh, en = str(row["zh"] or "").strip(), str(row["en"] or "").strip()
            if not zh or not en:
                raise InputError(f"{where}: pair {pair_id!r} needs both a zh and an en path")
            pairs.append(
                PairSpec(
                    pair_id,
                    _resolve(path.parent, zh),
                    _resolve(path.parent, en),
                    str(row.get("symbol") or "").strip(),
                )
            )
    except UnicodeDecodeError:
        raise InputError(f"{path}: the manifest is not UTF-8 text") from None
    if not pairs:
        raise InputError(f"{path}: the manifest lists no pairs")
    return pairs


# ---------------------------------------------------------------- one pair

_ENCODERS: dict[str, object] = {}
_ENCODER_LOADS: dict[str, int] = {}  # how many times this process loaded each encoder
_ENCODER_LOCK = threading.Lock()


def get_encoder(spec: str):
    """The process-wide encoder for ``spec``, loaded on first use.

    use-m3 runs on one BLAS thread: a batch spreads pairs over processes, one per core.
    """
    with _ENCODER_LOCK:
        if spec not in _ENCODERS:
            _ENCODERS[spec] = load_encoder(spec)
            _ENCODER_LOADS[spec] = _ENCODER_LOADS.get(spec, 0) + 1
        return _ENCODERS[spec]


def encoder_loads() -> dict[str, int]:
    """Encoder loads in this process (called on workers to check: once per worker)."""
    return dict(_ENCODER_LOADS)


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pair_key(pair: PairSpec, settings: BatchSettings) -> str:
    """Content hash of both inputs, the symbol and the settings: equal key, equal outputs."""
    parts = {
        "v": _HASH_VERSION,
        "zh": _sha256_file(pair.zh),
        "en": _sha256_file(pair.en),
        "symbol": pair.symbol,
        "settings": asdict(settings),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _previous_report(pairs_dir: Path, pair_id: str, key: str) -> dict | None:
    try:
        report = json.loads((pairs_dir / f"{pair_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if report.get("key") == key and (pairs_dir / f"{pair_id}.tmx").is_file():
        return report
    return None


def failed_report(pair: PairSpec, reason: str, started: float) -> dict:
    """The report of a pair that could not be aligned, and why."""
    return {
        "id": pair.id,
        "status": "failed",
        "reason": reason,
        "zh": pair.zh,
        "en": pair.en,
        "symbol": pair.symbol,
        "seconds": round(time.perf_counter() - started, 3),
    }


def error_reason(exc: Exception, pair_id: str) -> str:
    """What a pair's report says about ``exc``: the user's error, or an internal one (logged)."""
    reason = describe(exc)
    if reason is None:
        log.error("pair %s failed", pair_id, exc_info=exc)
        reason = f"internal error: {type(exc).__name__}: {exc}"
    return reason


def align_pair(
    pair: PairSpec,
    out_dir: str,
    settings: BatchSettings,
    limits: AlignLimits = NO_SIZE_LIMIT,
) -> dict:
    """Align one pair into ``out_dir/pairs/ID.tmx`` + ``ID.json``; return its report.

    Each document is read within ``limits``. Never raises for a bad pair: the report says
    ``"status": "failed"`` and why.
    """
    from aligner.pipeline import align_documents

    known = finished_report(pair, out_dir, settings)
    if known is not None:
        return known
    started = time.perf_counter()
    try:
        key = pair_key(pair, settings)
        zh = read_side_file(pair.zh, "zh", limits)
        en = read_side_file(pair.en, "en", limits)
        if pair.symbol:
            zh.symbol = en.symbol = pair.symbol
        result = align_documents(
            zh,
            en,
            mode=settings.mode,
            encoder=get_encoder(settings.encoder),
            max_bead=settings.max_bead,
        )
        return pair_outputs(pair, out_dir, settings, result, started, key)
    except Exception as exc:  # noqa: BLE001 - one bad pair must not stop the batch
        _remove_outputs(out_dir, pair.id)  # a previous run's, for other inputs
        return failed_report(pair, error_reason(exc, pair.id), started)


def finished_report(pair: PairSpec, out_dir: str | Path, settings: BatchSettings) -> dict | None:
    """A pair's report when it needs no model: aligned before from the same inputs and
    settings (``"resumed": True``), or failed as listed; None when it is to be aligned.

    A resumed report names the inputs where this run reads them: the run before may have
    read the same job folder under another path (another replica's data folder)."""
    started = time.perf_counter()
    try:
        if pair.error:
            raise InputError(pair.error)
        previous = _previous_report(Path(out_dir) / PAIRS_DIR, pair.id, pair_key(pair, settings))
        if previous is None:
            return None
        return {**previous, "zh": pair.zh, "en": pair.en, "resumed": True}
    except Exception as exc:  # noqa: BLE001 - one bad pair must not stop the batch
        _remove_outputs(out_dir, pair.id)  # a previous run's, for other inputs
        return failed_report(pair, error_reason(exc, pair.id), started)


def _remove_outputs(out_dir: str | Path, pair_id: str) -> None:
    for suffix in (".tmx", ".json"):
        (Path(out_dir) / PAIRS_DIR / f"{pair_id}{suffix}").unlink(missing_ok=True)


def pair_outputs(
    pair: PairSpec,
    out_dir: str | Path,
    settings: BatchSettings,
    result: AlignmentResult,
    started: float,
    key: str | None = None,
) -> dict:
    """Write an aligned pair's ``pairs/ID.tmx`` (pairs at or above the threshold) and
    ``ID.json``; return the report. Also for a pair aligned elsewhere (``/align`` that ran
    past its time limit): then ``key`` is computed here. Nothing is left when it fails."""
    from aligner.pipeline import left_out
    from aligner.tmx import pairs_to_units, write_tmx

    pairs_dir = Path(out_dir) / PAIRS_DIR
    try:
        key = key or pair_key(pair, settings)
        kept = [p for p in result.pairs if p.score >= settings.min_score]
        pairs_dir.mkdir(parents=True, exist_ok=True)
        written = write_tmx(
            pairs_dir / f"{pair.id}.tmx",
            pairs_to_units(
                kept,
                source_lang=settings.source_lang,
                target_lang=settings.target_lang,
                document=pair.symbol or pair.id,
            ),
            source_lang=settings.source_lang,
            target_lang=settings.target_lang,
        )
        scores = [p.score for p in result.pairs]
        report = {
            "id": pair.id,
            "status": "ok",
            "zh": pair.zh,
            "en": pair.en,
            "symbol": pair.symbol,
            "mode": result.mode,
            "sentences": {
                "zh": sum(len(p.zh_indices) for p in result.pairs) + len(result.unmatched_zh),
                "en": sum(len(p.en_indices) for p in result.pairs) + len(result.unmatched_en),
            },
            "pairs": len(result.pairs),
            "pairs_written": written,
            "below_threshold": len(result.pairs) - len(kept),
            "unmatched": {"zh": len(result.unmatched_zh), "en": len(result.unmatched_en)},
            "removed": {lang: len(texts) for lang, texts in result.removed.items()},
            "mean_score": round(sum(scores) / len(scores), 4) if scores else 0.0,
            "min_score": settings.min_score,
            "warnings": list(result.warnings),
            "seconds": round(time.perf_counter() - started, 3),
            "tmx": f"{PAIRS_DIR}/{pair.id}.tmx",
            "key": key,
            **left_out(result, settings.min_score),
        }
        _write_json(pairs_dir / f"{pair.id}.json", report)
        return report
    except BaseException:
        _remove_outputs(out_dir, pair.id)
        raise


# ---------------------------------------------------------------- running a batch


def load_models(spec: str) -> None:
    """Load the encoder and the CC-CEDICT lexicon into this process's caches, once.

    Done before the first pair, so that no pair pays for it (and a run's stages show it).
    """
    from aligner.align.lexicon import load_dictionary

    get_encoder(spec).inner.encode(["warm-up"])  # use-m3 reads its weights on first use
    load_dictionary()


def prepare_worker(spec: str, pipeline_log_level: int) -> int:
    """Run on every Dask worker: log as the client, load the models.

    Returns how many times this process has loaded the encoder.
    """
    logging.getLogger(PIPELINE_LOGGER).setLevel(pipeline_log_level)
    load_models(spec)
    return _ENCODER_LOADS[spec]


Progress = Callable[[dict, int, int], None]  # (report, done, total)


class _Stages:
    """Seconds spent in each stage of a run, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


def _run_local(
    pairs: list[PairSpec],
    out_dir: str,
    settings: BatchSettings,
    cancel: threading.Event | None,
    stages: _Stages,
    limits: AlignLimits,
) -> Iterator[dict]:
    load_models(settings.encoder)
    stages.done("load")
    for pair in pairs:
        if cancel is not None and cancel.is_set():
            break
        yield align_pair(pair, out_dir, settings, limits)
    stages.done("align")


def _run_dask(
    pairs: list[PairSpec],
    out_dir: str,
    settings: BatchSettings,
    cancel: threading.Event | None,
    stages: _Stages,
    workers: int | None,
    scheduler: str | None,
    limits: AlignLimits,
) -> Iterator[dict]:
    from dask.distributed import as_completed

    with dask_client(workers, scheduler) as client:
        stages.done("start")
        level = logging.getLogger(PIPELINE_LOGGER).getEffectiveLevel()
        client.run(prepare_worker, settings.encoder, level)
        stages.done("load")
        # everything at once: the scheduler keeps each worker's next pair queued on it
        futures = client.map(
            align_pair, pairs, out_dir=out_dir, settings=settings, limits=limits, pure=False
        )
        by_key = {f.key: p for f, p in zip(futures, pairs, strict=True)}
        for future in as_completed(futures):
            if cancel is not None and cancel.is_set():
                client.cancel(futures)
                break
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - a worker died, not the pair's fault
                reason = f"worker failed: {exc}"
                yield failed_report(by_key[future.key], reason, time.perf_counter())
        else:
            stages.done("align")
    stages.done("close")


def merge_tmx(out_dir: Path, reports: Iterable[dict], settings: BatchSettings) -> int:
    """Stream every good pair's TMX into ``merged.tmx`` (atomic)."""
    from aligner.tmx import read_tmx, write_tmx

    def units():
        for report in reports:
            if report["status"] == "ok":
                yield from read_tmx(out_dir / report["tmx"])

    return write_tmx(
        out_dir / MERGED_TMX,
        units(),
        source_lang=settings.source_lang,
        target_lang=settings.target_lang,
    )


def run_batch(
    pairs: list[PairSpec],
    out_dir: str | Path,
    settings: BatchSettings,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    limits: AlignLimits = NO_SIZE_LIMIT,
) -> BatchSummary:
    """Align ``pairs`` into ``out_dir``: per-pair outputs, then merged TMX and summary.

    No ``workers`` and no ``scheduler``: one process. A set ``cancel`` event stops the run
    between pairs; then no merged TMX and no summary are written. Each document is read
    within ``limits``; a pair over them fails with the reason, and the others go on.
    """
    if workers is not None and workers < 1:
        raise InputError("--workers must be at least 1")
    out = Path(out_dir)
    (out / PAIRS_DIR).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stages = _Stages()
    # what is done (or fails as listed) is known before any cluster starts or model loads
    known = [r for p in pairs if (r := finished_report(p, out, settings)) is not None]
    known_ids = {r["id"] for r in known}
    todo = [p for p in pairs if p.id not in known_ids]
    stages.done("resume")
    results: Iterable[dict] = ()
    if todo and workers is None and scheduler is None:
        results = _run_local(todo, str(out), settings, cancel, stages, limits)
    elif todo:
        results = _run_dask(todo, str(out), settings, cancel, stages, workers, scheduler, limits)
    done: dict[str, dict] = {}
    for report in itertools.chain(known, results):
        done[report["id"]] = report
        if progress is not None:
            progress(report, len(done), len(pairs))
    summary = BatchSummary(str(out), [done[p.id] for p in pairs if p.id in done])
    summary.cancelled = len(done) < len(pairs)
    if not summary.cancelled:
        merge_tmx(out, summary.reports, settings)
        stages.done("merge")
    summary.stages = stages.seconds
    summary.seconds = time.perf_counter() - started
    if not summary.cancelled:
        _write_json(out / SUMMARY_JSON, summary.to_json())
    return summary


# ---------------------------------------------------------------- command line


class _Reporter:
    """tqdm bar on a terminal, one plain line per pair otherwise."""

    def __init__(self, total: int, stream=None):
        self.stream = stream or sys.stderr
        self.failed = 0
        self.bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="pair", file=self.stream, dynamic_ncols=True)
            self.bar.set_postfix(failed=0)

    def __call__(self, report: dict, done: int, total: int) -> None:
        if report["status"] == "failed":
            self.failed += 1
        if self.bar is not None:
            self.bar.set_postfix(failed=self.failed, refresh=False)
            self.bar.update(1)
            if report["status"] == "failed":
                self.bar.write(
                    f"aligner: pair {report['id']} failed: {report['reason']}", file=self.stream
                )
            return
        if report["status"] == "failed":
            state = f"FAILED: {report['reason']}"
        elif report.get("resumed"):
            state = "already done (same inputs and settings)"
        else:
            state = f"{report['pairs_written']} pairs written in {report['seconds']:.1f}s"
            unmatched = sum(report["unmatched"].values())
            if report["below_threshold"] or unmatched:
                state += (
                    f", {report['below_threshold']} below threshold and {unmatched} unmatched "
                    f"sentences listed in {PAIRS_DIR}/{report['id']}.json"
                )
            if report["warnings"]:
                state += f", warning: {'; '.join(report['warnings'])}"
        print(
            f"[{done}/{total}] {report['id']}: {state} ({self.failed} failed so far)",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def add_command(sub: argparse._SubParsersAction) -> None:
    batch = sub.add_parser(
        "batch",
        help="align many document pairs (one machine or a Dask cluster)",
        description="Align every pair of a manifest (CSV or JSON Lines of id, zh path, en path"
        "[, symbol]; paths relative to the manifest) or of a folder of NAME.zh.* / NAME.en.* "
        "files. Writes a TMX and a JSON report per pair, merged.tmx and summary.json. A rerun "
        "skips pairs whose inputs and settings are unchanged.",
    )
    batch.add_argument("manifest", type=Path, help="manifest file or folder of pairs")
    batch.add_argument("--out", type=Path, required=True, help="output folder, e.g. tmx_out/run1")
    where = batch.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, metavar="N", help="run a local Dask cluster of N processes"
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="a running Dask scheduler (tcp://HOST:PORT)"
    )
    batch.add_argument("--encoder", default=DEFAULT_ENCODER, help="use-m3 or st:<model>")
    batch.add_argument(
        "--min-score", type=float, default=None, help="leave out pairs scoring below this"
    )
    batch.add_argument(
        "--mode",
        choices=("auto", "record", "plain"),
        default="auto",
        help="record: speaker turns first; plain: sentences only (default auto)",
    )
    batch.add_argument("--max-bead", type=int, default=4, help="most sentences on one side")
    batch.set_defaults(func=run_batch_command)


def run_batch_command(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        # each pair's warnings go to its report; one log line per pair would bury the progress
        logging.getLogger(PIPELINE_LOGGER).setLevel(logging.ERROR)
        if args.workers or args.scheduler:
            import distributed  # noqa: F401 - its import sets its loggers to INFO

            # the scheduler's, nannies' and workers' INFO lines only with -v
            logging.getLogger("distributed").setLevel(logging.WARNING)
    settings = BatchSettings.create(
        min_score=args.min_score, encoder=args.encoder, mode=args.mode, max_bead=args.max_bead
    )
    pairs = read_manifest(args.manifest)
    reporter = _Reporter(len(pairs))
    try:
        summary = run_batch(
            pairs,
            args.out,
            settings,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=reporter,
        )
    finally:
        reporter.close()
    totals = summary.to_json()
    print(
        f"{totals['ok']} of {totals['pairs']} pairs aligned ({totals['resumed']} already done), "
        f"{totals['failed']} failed; {totals['pairs_written']} pairs written to "
        f"{Path(args.out) / MERGED_TMX} in {totals['seconds']:.1f}s"
    )
    for report in summary.failed:
        print(f"aligner: pair {report['id']} failed: {report['reason']}", file=sys.stderr)
    return 1 if summary.failed else 0
