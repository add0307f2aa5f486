"""``aligner batch``: manifests, per-pair outputs, failures, resume, and a real Dask cluster.

Document pairs are cut from the UN Parallel Corpus dev set: NAME.zh.txt / NAME.en.txt hold a
few consecutive lines of unpc-dev (line i of one is the translation of line i of the other).
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from aligner import batch
from aligner.batch import BatchSettings, PairSpec, read_manifest, run_batch
from aligner.cli import main
from aligner.cluster import LOCAL_CLUSTER_CONFIG
from aligner.errors import InputError
from aligner.tmx import read_tmx


def write_pair(shared_data: Path, folder: Path, name: str, start: int, count: int = 5) -> None:
    """``folder/NAME.zh.txt`` and ``NAME.en.txt``: unpc-dev lines start..start+count."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang in ("zh", "en"):
        lines = (shared_data / "unpc-dev" / f"{lang}.txt").read_text(encoding="utf-8")
        chunk = lines.splitlines()[start : start + count]
        (folder / f"{name}.{lang}.txt").write_text("\n\n".join(chunk) + "\n", encoding="utf-8")


def units(path: Path) -> list[tuple]:
    return [(u.source, u.target, tuple(sorted(u.props.items()))) for u in read_tmx(path)]


@pytest.fixture
def docs(shared_data, tmp_path) -> Path:
    """Three good pairs and one whose Chinese file is English (wrong language)."""
    folder = tmp_path / "docs"
    for number, start in enumerate((100, 110, 120), start=1):
        write_pair(shared_data, folder, f"doc{number}", start)
    write_pair(shared_data, folder, "bad", 130)
    (folder / "bad.zh.txt").write_text(
        (folder / "bad.en.txt").read_text(encoding="utf-8"), encoding="utf-8"
    )
    return folder


def test_manifest_formats(docs, tmp_path):
    (docs / "manifest.csv").write_text(
        "id,zh,en,symbol\ndoc1,doc1.zh.txt,doc1.en.txt,A/69/1\ndoc2,doc2.zh.txt,doc2.en.txt,\n",
        encoding="utf-8",
    )
    (docs / "plain.csv").write_text("doc1,doc1.zh.txt,doc1.en.txt\n", encoding="utf-8")
    (docs / "m.jsonl").write_text(
        json.dumps({"id": "doc3", "zh": str(docs / "doc3.zh.txt"), "en": "doc3.en.txt"}) + "\n\n",
        encoding="utf-8",
    )
    from_csv = read_manifest(docs / "manifest.csv")
    assert from_csv == [
        PairSpec("doc1", str(docs / "doc1.zh.txt"), str(docs / "doc1.en.txt"), "A/69/1"),
        PairSpec("doc2", str(docs / "doc2.zh.txt"), str(docs / "doc2.en.txt"), ""),
    ]
    assert read_manifest(docs / "plain.csv")[0].en == str(docs / "doc1.en.txt")
    assert read_manifest(docs / "m.jsonl") == [
        PairSpec("doc3", str(docs / "doc3.zh.txt"), str(docs / "doc3.en.txt"))
    ]
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("a.zh.txt", "a.en.docx", "b.zh.txt", "notes.txt"):
        (folder / name).write_text("x", encoding="utf-8")
    pairs = {p.id: p for p in read_manifest(folder)}
    assert set(pairs) == {"a", "b"}
    assert not pairs["a"].error and pairs["a"].en.endswith("a.en.docx")
    assert pairs["b"].error == "no English file b.en.*"

    for text, message in [
        ("id,zh,en\n../up,a.zh.txt,a.en.txt\n", "bad pair id"),
        ("id,zh,en\nx,a.zh.txt,a.en.txt\nx,b.zh.txt,b.en.txt\n", "appears twice"),
        ("id,zh,en\nx,a.zh.txt\n", "expected id, zh path, en path"),
        ("id,zh,en\n", "lists no pairs"),
    ]:
        bad = tmp_path / "bad.csv"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message):
            read_manifest(bad)
    with pytest.raises(InputError, match="a manifest is a .csv or .jsonl"):
        read_manifest(docs / "doc1.zh.txt")


def test_batch_writes_reports_goes_past_failures_and_resumes(docs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(docs), "--out", str(out)]) == 1  # one pair failed
    captured = capsys.readouterr()
    assert "3 of 4 pairs aligned" in captured.out
    assert "bad: FAILED: bad.zh.txt: expected Chinese text" in captured.err  # plain log lines
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (summary["pairs"], summary["ok"], summary["failed"]) == (4, 3, 1)
    assert list(summary["stage_seconds"]) == ["resume", "load", "align", "merge"]
    assert 0 < sum(summary["stage_seconds"].values()) <= summary["seconds"] + 0.01  # rounding
    reports = {r["id"]: r for r in summary["reports"]}
    assert "expected Chinese text" in reports["bad"]["reason"]
    assert not (out / "pairs" / "bad.tmx").exists()
    merged = units(out / "merged.tmx")
    expected = []
    for name in ("doc1", "doc2", "doc3"):
        report = json.loads((out / "pairs" / f"{name}.json").read_text(encoding="utf-8"))
        assert report == reports[name]
        assert report["sentences"] == {"zh": 5, "en": 5}
        assert report["pairs_written"] + report["below_threshold"] == report["pairs"] >= 4
        assert 0.5 < report["mean_score"] <= 1.0 and report["seconds"] > 0
        assert set(report["unmatched"]) == {"zh", "en"}
        # what the memory does not get is listed, not only counted
        assert len(report["pairs_below_threshold"]) == report["below_threshold"]
        assert all(p["score"] < report["min_score"] for p in report["pairs_below_threshold"])
        assert [u["lang"] for u in report["unmatched_sentences"]].count("zh") == report[
            "unmatched"]["zh"]
        assert report["removed"] == {
            lang: len(texts) for lang, texts in report["removed_text"].items()
        }
        pair_units = units(out / "pairs" / f"{name}.tmx")
        assert len(pair_units) == report["pairs_written"]
        expected += pair_units
    assert merged == expected  # manifest order, every good pair
    assert summary["pairs_written"] == len(merged)
    assert not list(out.rglob("*.tmp"))

    # rerun: unchanged pairs are skipped, a changed one is redone, the bad one tried again
    before = {n: (out / "pairs" / f"{n}.tmx").stat().st_mtime_ns for n in ("doc1", "doc2")}
    en = docs / "doc3.en.txt"
    en.write_text(en.read_text(encoding="utf-8").rsplit("\n\n", 1)[0] + "\n", encoding="utf-8")
    assert main(["batch", str(docs), "--out", str(out)]) == 1
    reports = {r["id"]: r for r in json.loads((out / "summary.json").read_text("utf-8"))["reports"]}
    assert reports["doc1"]["resumed"] and reports["doc2"]["resumed"]
    assert not reports["doc3"].get("resumed") and reports["doc3"]["sentences"]["en"] == 4
    assert reports["bad"]["status"] == "failed"
    after = {n: (out / "pairs" / f"{n}.tmx").stat().st_mtime_ns for n in ("doc1", "doc2")}
    assert after == before
    # other settings, other outputs: nothing is skipped
    capsys.readouterr()
    assert main(["batch", str(docs), "--out", str(out), "--min-score", "0.9"]) == 1
    reports = json.loads((out / "summary.json").read_text("utf-8"))["reports"]
    assert not any(r.get("resumed") for r in reports)
    assert all(r["min_score"] == 0.9 for r in reports if r["status"] == "ok")


def test_a_rerun_decides_what_is_done_before_any_cluster_or_model(docs, tmp_path, monkeypatch):
    """Pairs done with the same inputs and settings, and pairs failed as listed, are reported
    without a runner: no cluster starts and no model loads unless a pair is left to align."""
    for lang in ("zh", "en"):
        (docs / f"bad.{lang}.txt").unlink()
    (docs / "lonely.zh.txt").write_text("孤独。\n", encoding="utf-8")
    pairs = read_manifest(docs)
    settings = BatchSettings.create()
    out = tmp_path / "out"
    first = run_batch(pairs, out, settings)
    assert [r["status"] for r in first.reports] == ["ok", "ok", "ok", "failed"]
    merged = units(out / "merged.tmx")
    real_run_local = batch._run_local

    def refuse(*args, **kwargs):
        raise AssertionError("a runner started for pairs that are done")

    monkeypatch.setattr(batch, "_run_dask", refuse)
    monkeypatch.setattr(batch, "_run_local", refuse)
    monkeypatch.setattr(batch, "load_models", refuse)
    again = run_batch(pairs, out, settings, workers=2)
    assert [r.get("resumed", False) for r in again.reports] == [True, True, True, False]
    assert again.reports[3]["reason"] == "no English file lonely.en.*"
    assert list(again.stages) == ["resume", "merge"]
    assert units(out / "merged.tmx") == merged
    # one pair changed: only it goes to the runner
    aligned: list[str] = []

    def recording(todo, *args):
        aligned.extend(p.id for p in todo)
        return real_run_local(todo, *args)

    monkeypatch.setattr(batch, "_run_local", recording)
    monkeypatch.setattr(batch, "load_models", lambda spec: None)
    en = docs / "doc2.en.txt"
    en.write_text(en.read_text(encoding="utf-8").rsplit("\n\n", 1)[0] + "\n", encoding="utf-8")
    third = run_batch(pairs, out, settings)
    assert aligned == ["doc2"]
    assert [r.get("resumed", False) for r in third.reports] == [True, False, True, False]
    assert third.reports[1]["status"] == "ok" and third.reports[1]["sentences"]["en"] == 4


def test_progress_bar_on_a_terminal(docs, tmp_path):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    reporter = batch._Reporter(4, stream=screen)
    run_batch(read_manifest(docs), tmp_path / "out", BatchSettings.create(), progress=reporter)
    reporter.close()
    shown = screen.getvalue()
    assert "4/4" in shown and "failed=1" in shown
    assert re.search(r"\dpair/s|\ds/pair", shown)  # the rate
    assert "pair bad failed: bad.zh.txt: expected Chinese" in shown


def worker_state() -> tuple:
    """Run on a worker: its glibc trim setting, whether Dask profiles it, what it has loaded."""
    import os

    import dask

    from aligner.align.lexicon import load_dictionary

    return (
        os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        dask.config.get("distributed.worker.profile.enabled"),
        batch.encoder_loads(),
        load_dictionary.cache_info().currsize,
    )


def test_dask_cluster_gives_the_single_process_outputs(docs, tmp_path):
    import dask
    from dask.distributed import Client, LocalCluster

    pairs = read_manifest(docs)
    settings = BatchSettings.create()
    single = run_batch(pairs, tmp_path / "single", settings)
    with (
        dask.config.set(LOCAL_CLUSTER_CONFIG),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
    ):
        spread = run_batch(pairs, tmp_path / "dask", settings, scheduler=cluster.scheduler_address)
        with Client(cluster) as client:
            states = client.run(worker_state)
    # no trim threshold (it slows numpy down), no profiler; encoder and lexicon loaded once
    assert list(states.values()) == [(None, False, {"use-m3": 1}, 1)] * 2
    assert list(spread.stages) == ["resume", "start", "load", "align", "close", "merge"]

    def comparable(report: dict) -> dict:
        return {k: v for k, v in report.items() if k != "seconds"}

    assert [comparable(r) for r in spread.reports] == [comparable(r) for r in single.reports]
    assert units(tmp_path / "dask" / "merged.tmx") == units(tmp_path / "single" / "merged.tmx")
    for name in ("doc1", "doc2", "doc3"):
        assert units(tmp_path / "dask" / "pairs" / f"{name}.tmx") == units(
            tmp_path / "single" / "pairs" / f"{name}.tmx"
        )


def test_local_cluster_from_the_command_line(docs, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        assert main(["batch", str(docs), "--out", str(out), "--workers", "2"]) == 1
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (summary["ok"], summary["failed"]) == (3, 1)
    assert "[4/4]" in capsys.readouterr().err
    # the scheduler's INFO lines only with -v
    chatter = [r for r in caplog.records if r.name.startswith("distributed")
               and r.levelno < logging.WARNING]
    assert chatter == []
