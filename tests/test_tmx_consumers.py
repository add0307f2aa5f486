"""Our TMX files as real consumers see them: the TMX 1.4 DTD, translate-toolkit and OmegaT.

OmegaT 3.6 comes from the Debian package ``omegat`` (``apt-get install -y omegat``). Where it
is missing the OmegaT test is skipped with that hint, and fails instead when ``CI`` is set
(``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from itertools import islice
from pathlib import Path

import pytest
from lxml import etree
from translate.storage import tmx as tt_tmx

from aligner.align.segment import join_segments
from aligner.models import SentencePair
from aligner.tmx import pairs_to_units, read_tmx, write_tmx

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
OMEGAT_JAR = Path("/usr/share/omegat/OmegaT.jar")


@pytest.fixture(scope="module")
def unpc_pairs(shared_data: Path) -> list[SentencePair]:
    """The 4,000 real UN sentence pairs, with provenance a meeting record would give."""
    zh = (shared_data / "unpc-dev" / "zh.txt").read_text("utf-8").splitlines()
    en = (shared_data / "unpc-dev" / "en.txt").read_text("utf-8").splitlines()
    assert len(zh) == len(en) == 4000
    speakers = [("Mr. Rycroft", "United Kingdom"), ("主席", ""), ("", "")]
    return [
        SentencePair(
            zh=z,
            en=e,
            score=round(0.5 + (i % 500) / 1000, 4),
            zh_indices=(i,),
            en_indices=(i,),
            document=f"A/69/{1 + i // 1000}",
            turn=i // 40 if i % 3 else None,
            speaker=speakers[i % 3][0],
            country=speakers[i % 3][1],
        )
        for i, (z, e) in enumerate(zip(zh, en, strict=True))
    ]


@pytest.fixture(scope="module")
def unpc_tmx(unpc_pairs: list[SentencePair], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("unpc") / "unpc-dev.tmx"
    assert write_tmx(out, pairs_to_units(unpc_pairs, creationid="concordia-test")) == 4000
    return out


def assert_valid(path: Path, dtd_path: Path) -> None:
    tree = etree.parse(str(path), etree.XMLParser(load_dtd=False, no_network=True))
    dtd = etree.DTD(str(dtd_path))
    assert dtd.validate(tree), dtd.error_log.filter_from_errors()[:3]
    tuvs = list(tree.iter("tuv"))
    assert tuvs and all(tuv.get(XML_LANG) for tuv in tuvs)


def test_round_trip_of_4000_real_pairs(
    unpc_pairs: list[SentencePair], unpc_tmx: Path, shared_data: Path
) -> None:
    assert_valid(unpc_tmx, shared_data / "tmx14.dtd")
    back = list(read_tmx(unpc_tmx))
    assert len(back) == 4000
    for pair, got in zip(unpc_pairs, back, strict=True):
        assert (got.source, got.target) == (pair.zh, pair.en)
        assert (got.source_lang, got.target_lang) == ("zh-CN", "en-US")
        expected_props = {
            "x-document": pair.document,
            "x-speaker": pair.speaker,
            "x-country": pair.country,
            "x-turn": "" if pair.turn is None else str(pair.turn),
            "x-score": f"{pair.score:.4f}",
        }
        assert got.props == {k: v for k, v in expected_props.items() if v}
        assert got.creationid == "concordia-test"
    assert back[1].props == {
        "x-document": "A/69/1",
        "x-speaker": "主席",
        "x-turn": "0",
        "x-score": "0.5010",
    }
    assert back[3].props["x-country"] == "United Kingdom"
    assert "x-turn" not in back[3].props
    # The same memory read English → Chinese.
    flipped = next(islice(read_tmx(unpc_tmx, source_lang="en", target_lang="zh"), 2, None))
    assert (flipped.source, flipped.target) == (unpc_pairs[2].en, unpc_pairs[2].zh)


def test_translate_toolkit_reads_every_unit(unpc_pairs: list[SentencePair], unpc_tmx: Path) -> None:
    store = tt_tmx.tmxfile.parsefile(str(unpc_tmx))
    assert len(store.units) == 4000
    for pair, unit in zip(unpc_pairs, store.units, strict=True):
        assert (unit.source, unit.target) == (pair.zh, pair.en)
    for pair in unpc_pairs[::97]:
        assert store.translate(pair.zh) == pair.en
    assert store.translate("这句话不在记忆库中。") is None


def _omegat_command() -> list[str]:
    java = shutil.which("java")
    if java is None or not OMEGAT_JAR.is_file():
        message = (
            "OmegaT is not installed: run `apt-get update && apt-get install -y omegat` "
            f"(Debian package, brings a Java runtime; needs {OMEGAT_JAR} and `java`)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return [java, "-Djava.awt.headless=true", "-jar", str(OMEGAT_JAR)]


OMEGAT_PROJECT = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<omegat>
  <project version="1.0">
    <source_dir>__DEFAULT__</source_dir>
    <target_dir>__DEFAULT__</target_dir>
    <tm_dir>__DEFAULT__</tm_dir>
    <glossary_dir>__DEFAULT__</glossary_dir>
    <glossary_file>__DEFAULT__</glossary_file>
    <dictionary_dir>__DEFAULT__</dictionary_dir>
    <source_lang>zh-CN</source_lang>
    <target_lang>en-US</target_lang>
    <source_tok>org.omegat.tokenizer.LuceneSmartChineseTokenizer</source_tok>
    <target_tok>org.omegat.tokenizer.LuceneEnglishTokenizer</target_tok>
    <sentence_seg>false</sentence_seg>
    <support_default_translations>true</support_default_translations>
    <remove_tags>false</remove_tags>
  </project>
</omegat>
"""


def test_omegat_fills_exact_matches_from_our_memory(
    unpc_pairs: list[SentencePair], tmp_path: Path, shared_data: Path
) -> None:
    command = _omegat_command()
    joined = SentencePair(
        zh=join_segments([unpc_pairs[5].zh, unpc_pairs[6].zh], "zh"),
        en=join_segments([unpc_pairs[5].en, unpc_pairs[6].en], "en"),
        score=0.9,
        zh_indices=(5, 6),
        en_indices=(5, 6),
        document="A/69/1",
    )
    escaped = SentencePair(
        zh="决议草案 A/C.3/69/L.7 & <附件> “第2段”。",
        en='Draft resolution A/C.3/69/L.7 & <annex> "paragraph 2".',
        score=0.95,
        document="A/69/1",
    )
    pairs = [*unpc_pairs[1:5], joined, escaped]
    project = tmp_path / "project"
    for folder in ("source", "target", "tm/auto", "omegat", "glossary", "dictionary"):
        (project / folder).mkdir(parents=True)
    (project / "omegat.project").write_text(OMEGAT_PROJECT, "utf-8")
    memory = project / "tm" / "auto" / "concordia.tmx"
    assert write_tmx(memory, pairs_to_units(pairs)) == len(pairs)
    assert_valid(memory, shared_data / "tmx14.dtd")
    untranslated = "本句不在翻译记忆库中，应保持原文。"
    paragraphs = [pairs[0].zh, joined.zh, untranslated, escaped.zh, pairs[3].zh]
    (project / "source" / "statement.txt").write_text("\n\n".join(paragraphs) + "\n", "utf-8")

    result = subprocess.run(
        [
            *command,
            str(project),
            "--mode=console-translate",
            "--disable-project-locking",
            "--no-team",
            f"--config-dir={tmp_path / 'omegat-config'}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    log = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, log
    assert "Reading of TMX file complete" in log, log
    translated = (project / "target" / "statement.txt").read_text("utf-8").split("\n\n")
    assert [t.strip() for t in translated] == [
        pairs[0].en,
        joined.en,
        untranslated,
        escaped.en,
        pairs[3].en,
    ]
    # OmegaT's own export of the project memory (TMX 1.1, bare `lang`) reads back with our reader.
    exported = {u.source: u.target for u in read_tmx(project / "project-omegat.tmx")}
    assert exported == {p.zh: p.en for p in (pairs[0], joined, escaped, pairs[3])}


def test_omegat_reads_our_lossless_export_and_its_project_export_comes_back(
    tmp_path: Path, shared_data: Path
) -> None:
    """A memory made by translate-toolkit (en-GB, notes), imported and exported by the service,
    fills OmegaT's exact matches; OmegaT's own project export, imported and exported, is the
    same document as canonical XML."""
    from fastapi.testclient import TestClient

    from service.config import Settings
    from service.web.app import create_app
    from tests.test_api import KEY
    from tests.test_tmx_roundtrip import canonical, round_trip

    command = _omegat_command()
    pairs = [
        ("安全理事会通过了第2370（2017）号决议。", "The Council adopted resolution 2370 (2017)."),
        ("会议于上午10时5分开始。", "The meeting was called to order at 10.05 a.m."),
        ("决议草案 A/C.3/69/L.7 & <附件>。", "Draft resolution A/C.3/69/L.7 & <annex>."),
    ]
    made = tt_tmx.tmxfile(sourcelanguage="zh-CN", targetlanguage="en-GB")
    for zh, en in pairs:
        unit = made.addsourceunit(zh)
        unit.target = en
        unit.addnote(f"checked: {en[:12]}", origin="translator")
    settings = Settings(data_dir=tmp_path / "data", api_key=KEY, encoder="none")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        ours = round_trip(client, "tt.tmx", bytes(made))
        project = tmp_path / "project"
        for folder in ("source", "target", "tm/auto", "omegat", "glossary", "dictionary"):
            (project / folder).mkdir(parents=True)
        settings_xml = OMEGAT_PROJECT.replace("<target_lang>en-US", "<target_lang>en-GB")
        (project / "omegat.project").write_text(settings_xml, "utf-8")
        (project / "tm" / "auto" / "concordia.tmx").write_bytes(ours)
        untranslated = "本句不在翻译记忆库中，应保持原文。"
        paragraphs = [pairs[0][0], untranslated, pairs[2][0], pairs[1][0]]
        (project / "source" / "statement.txt").write_text("\n\n".join(paragraphs) + "\n", "utf-8")
        result = subprocess.run(
            [
                *command,
                str(project),
                "--mode=console-translate",
                "--disable-project-locking",
                "--no-team",
                f"--config-dir={tmp_path / 'omegat-config'}",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        log = result.stdout[-3000:] + result.stderr[-3000:]
        assert result.returncode == 0, log
        translated = (project / "target" / "statement.txt").read_text("utf-8").split("\n\n")
        expected = [pairs[0][1], untranslated, pairs[2][1], pairs[1][1]]
        assert [t.strip() for t in translated] == expected
        omegat_export = (project / "project-omegat.tmx").read_bytes()
        assert b"OmegaT" in omegat_export
        back = round_trip(client, "project-omegat.tmx", omegat_export)
        assert canonical(back) == canonical(omegat_export)
