"""Alignment scoring (Vecalign/Bertalign method) and the ``aligner eval`` command."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aligner.align.evaluate import format_beads, merge_verses, parse_beads, score
from aligner.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def run_aligner(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aligner", *args], capture_output=True, text=True, timeout=300,
        cwd=ROOT,
    )


def test_scores_on_hand_made_beads():
    gold = [((0,), (0,)), ((1, 2), (1,)), ((3,), ()), ((4,), (2, 3))]
    test = [((0,), (0,)), ((1,), (1,)), ((2,), ()), ((3,), ()), ((4,), (2,)), ((), (3,))]
    s = score([gold], [test])
    # precision over all 6 predicted beads: strict hits (0)-(0) and (3)-(); lax also (1)-(1)
    # and (4)-(2); (2)-() and ()-(3) overlap nothing on both sides
    assert s["precision_strict"] == pytest.approx(2 / 6)
    assert s["precision_lax"] == pytest.approx(4 / 6)
    # recall over the 3 gold beads with both sides: strict (0)-(0); lax all three
    assert s["recall_strict"] == pytest.approx(1 / 3)
    assert s["recall_lax"] == pytest.approx(3 / 3)
    assert s["f1_strict"] == pytest.approx(2 * (1 / 3) * (1 / 3) / (2 / 3))
    assert score([gold], [gold])["f1_strict"] == 1.0
    # totals are pooled over documents, not averaged
    pooled = score([gold, [((0,), (0,))]], [test, [((0,), (0,))]])
    assert pooled["precision_strict"] == pytest.approx(3 / 7)
    assert pooled["recall_strict"] == pytest.approx(2 / 4)


def test_verse_merging():
    zh_verse = ["v1", "v2", "v2", "v2", "v3"]
    en_verse = ["v1", "v2", "v2", "v3"]
    beads = [((0,), (0,)), ((1,), (1,)), ((2, 3), (2,)), ((4,), (3,))]
    assert merge_verses(beads, zh_verse, en_verse) == [
        ((0,), (0,)), ((1, 2, 3), (1, 2)), ((4,), (3,))
    ]
    # an unmatched sentence joins the bead of its verse; a bead across verses joins nothing
    beads = [((0,), (0,)), ((1,), (1, 2)), ((2,), ()), ((3, 4), (3,))]
    assert merge_verses(beads, zh_verse, en_verse) == [
        ((0,), (0,)), ((1, 2), (1, 2)), ((3, 4), (3,))
    ]


def test_bead_format_round_trip():
    beads = [((0, 1), (0,)), ((), (1,)), ((2,), ())]
    text = format_beads(beads)
    assert text == "[0,1]:[0]\n[]:[1]\n[2]:[]\n"
    assert parse_beads(text) == beads
    with pytest.raises(InputError, match="x.align:2"):
        parse_beads("[0]:[0]\n[1]-[1]\n", "x.align")


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    """A two-document corpus in the MAC-Dev layout: the first 40 Chinese lines of two
    chapters, their English lines and gold beads."""
    root = tmp_path_factory.mktemp("corpus")
    for sub in ("zh", "en", "gold"):
        (root / sub).mkdir()
    for name in ("001", "004"):
        src = shared_data / "mac-dev"
        gold = []
        for bead in parse_beads((src / "gold" / f"{name}.align").read_text(encoding="utf-8")):
            if bead[0] and max(bead[0]) >= 40:
                break
            gold.append(bead)
        en_lines = max(j for _, en in gold for j in en) + 1
        zh = (src / "zh" / name).read_text(encoding="utf-8").splitlines()[:40]
        en = (src / "en" / name).read_text(encoding="utf-8").splitlines()[:en_lines]
        (root / "zh" / name).write_text("\n".join(zh) + "\n", encoding="utf-8")
        (root / "en" / name).write_text("\n".join(en) + "\n", encoding="utf-8")
        (root / "gold" / f"{name}.align").write_text(format_beads(gold), encoding="utf-8")
    return root


def test_eval_json_and_predictions(corpus, tmp_path):
    out = tmp_path / "pred"
    result = run_aligner("eval", str(corpus), "--json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for key in ("f1_strict", "f1_lax", "precision_strict", "recall_strict", "seconds_embed",
                "seconds_align"):
        assert key in summary
    assert summary["f1_strict"] >= 0.85 and summary["f1_lax"] >= summary["f1_strict"]
    assert summary["seconds_embed"] > 0 and summary["documents"] == 2
    for name in ("001", "004"):
        predicted = parse_beads((out / f"{name}.align").read_text(encoding="utf-8"))
        zh_lines = len((corpus / "zh" / name).read_text(encoding="utf-8").splitlines())
        en_lines = len((corpus / "en" / name).read_text(encoding="utf-8").splitlines())
        assert [i for zh, _ in predicted for i in zh] == list(range(zh_lines))
        assert [j for _, en in predicted for j in en] == list(range(en_lines))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left


def test_eval_length_baseline_and_text_report(corpus):
    result = run_aligner("eval", str(corpus), "--method", "length", "--json")
    assert result.returncode == 0, result.stderr
    baseline = json.loads(result.stdout)
    assert baseline["seconds_embed"] == 0 and 0.2 <= baseline["f1_strict"] < 0.85
    result = run_aligner("eval", str(corpus), "--method", "length")
    assert result.returncode == 0
    assert "F1" in result.stdout and "precision" in result.stdout


def bible_excerpt(shared_data, root: Path) -> Path:
    """The first chapter of Genesis in the corpus layout, with its verse files."""
    src = shared_data / "bible"
    tmp_path = root
    for sub in ("zh", "en", "gold"):
        (tmp_path / sub).mkdir(parents=True)
    gold = []
    for bead in parse_beads((src / "gold" / "001.align").read_text(encoding="utf-8")):
        if max(bead[0]) >= 50:
            break
        gold.append(bead)
    zh_n, en_n = max(gold[-1][0]) + 1, max(gold[-1][1]) + 1
    for sub, count in (("zh", zh_n), ("en", en_n)):
        lines = (src / sub / "001").read_text(encoding="utf-8").splitlines()[:count]
        (tmp_path / sub / "001").write_text("\n".join(lines) + "\n", encoding="utf-8")
        verses = (src / f"{sub}.verse").read_text(encoding="utf-8").splitlines()[:count]
        (tmp_path / f"{sub}.verse").write_text("\n".join(verses) + "\n", encoding="utf-8")
    (tmp_path / "gold" / "001.align").write_text(format_beads(gold), encoding="utf-8")
    return tmp_path


def test_eval_bible_verses(shared_data, tmp_path):
    """The first chapter of Genesis, scored verse by verse."""
    bible_excerpt(shared_data, tmp_path)
    result = run_aligner("eval", str(tmp_path), "--verses", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["f1_strict"] >= 0.9 and summary["verses"]


def test_eval_folder_of_corpora_beside_the_baseline(shared_data, corpus, tmp_path):
    """A folder holding several corpora (like the shared data: mac-dev, unpc-docs, bible):
    each is scored, the Bible verse by verse without being told, Gale-Church beside ours."""
    shutil.copytree(corpus, tmp_path / "mac")
    bible_excerpt(shared_data, tmp_path / "verses")
    (tmp_path / "notes").mkdir()  # a folder without gold/ is not a corpus
    result = run_aligner("eval", str(tmp_path), "--method", "both", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["corpus"], r["method"], r["verses"]) for r in rows] == [
        ("mac", "embedding", False), ("mac", "length", False),
        ("verses", "embedding", True), ("verses", "length", True),
    ]
    mac, mac_gc, bible, bible_gc = (r["f1_strict"] for r in rows)
    assert mac >= mac_gc + 0.2 and bible >= 0.9 and bible_gc < bible
    result = run_aligner("eval", str(tmp_path), "--method", "both")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6 and lines[2].startswith("mac (2)") and "verses" in lines[4]
    result = run_aligner("eval", str(tmp_path), "--out", str(tmp_path / "pred"))
    assert result.returncode == 2 and "one corpus and one method" in result.stderr


def test_eval_bad_input(corpus, tmp_path):
    result = run_aligner("eval", str(tmp_path / "missing"))
    assert result.returncode == 2 and "not a folder" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_aligner("eval", str(tmp_path))
    assert result.returncode == 2 and "no gold/ folder" in result.stderr
    result = run_aligner("eval", str(corpus), "--verses")
    assert result.returncode == 2 and "zh.verse" in result.stderr
    bad = tmp_path / "bad"
    for sub in ("zh", "en", "gold"):
        (bad / sub).mkdir(parents=True)
    (bad / "zh" / "001").write_bytes(b"\xff\xfe\x00binary")
    (bad / "en" / "001").write_text("One.\n", encoding="utf-8")
    (bad / "gold" / "001.align").write_text("[0]:[0]\n", encoding="utf-8")
    result = run_aligner("eval", str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "not UTF-8" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
    result = run_aligner("eval", str(corpus), "--max-bead", "0")
    assert result.returncode == 2 and "--max-bead" in result.stderr
