"""Lossless TMX: files written by other tools, imported into the memory and exported again
through the API, are the same document as canonical XML (lxml C14N).

Compared without what XML and TMX leave free (the XML declaration, the DOCTYPE, comments,
indentation between structural elements, attribute order); inside segments, notes and props
every character counts. The OmegaT project export is in ``test_tmx_consumers.py`` (it needs
OmegaT).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from translate.storage import tmx as tt_tmx

from aligner.tmx import read_tmx
from service.config import Settings
from service.web.app import create_app
from tests.test_api import AUTH, KEY, import_file

DATA = Path(__file__).parent / "data"
STRUCTURAL = {"tmx", "header", "body", "tu", "tuv", "ude"}


def canonical(data: bytes) -> bytes:
    """The document as C14N, without comments and indentation between structural elements."""
    parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False,
                             remove_comments=True, remove_pis=True)
    root = etree.fromstring(data, parser)
    for elem in root.iter():
        if elem.tag in STRUCTURAL:
            if elem.text is not None and not elem.text.strip():
                elem.text = None
            for child in elem:
                if child.tail is not None and not child.tail.strip():
                    child.tail = None
    return etree.tostring(root, method="c14n")


@pytest.fixture
def client(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", api_key=KEY, encoder="none")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def round_trip(client: TestClient, name: str, data: bytes, rule: str = "keep_both") -> bytes:
    """Import ``data`` through the job path, export that import; the exported bytes."""
    done = import_file(client, {"file": (name, data, "application/x-tmx+xml")}, rule=rule)
    exported = client.get("/tm/export", params={"import_id": done["import_id"]})
    assert exported.status_code == 200, exported.text
    return exported.content


def assert_valid_tmx14(data: bytes, shared_data: Path) -> None:
    tree = etree.fromstring(data, etree.XMLParser(load_dtd=False, no_network=True))
    dtd = etree.DTD(str(shared_data / "tmx14.dtd"))
    assert dtd.validate(tree), dtd.error_log.filter_from_errors()[:3]


def test_every_element_and_attribute_of_tmx14_comes_back(client, shared_data):
    original = (DATA / "tmx14_every_element.tmx").read_bytes()
    assert_valid_tmx14(original, shared_data)
    exported = round_trip(client, "every.tmx", original)
    assert canonical(exported) == canonical(original)
    assert_valid_tmx14(exported, shared_data)
    # What lookups see: the plain text scores, the tags are numbered placeholders.
    match = client.post(
        "/tm/lookup",
        json={"text": "安全理事会第2370(2017)号决议获得通过,全体一致。见脚注", "source_lang": "zh"},
    ).json()["matches"][0]
    assert match["fuzzy"] == 100 and not match["identical"]
    shown = "安全理事会{1}第2370（2017）号决议{/1}获得通过{2/}，{3}全体一致{4/}{/3}。{5}见脚注"
    assert match["source"] == shown
    again = client.post("/tm/lookup", json={"text": shown, "source_lang": "zh"}).json()
    assert again["matches"][0]["fuzzy"] == 100  # a query with the placeholders: the same
    assert match["target_lang"] == "en-GB"
    assert match["attrs"]["tuid"] == "pv8017-001"


def test_a_translate_toolkit_file_comes_back_and_translate_toolkit_reads_the_export(client):
    store = tt_tmx.tmxfile(sourcelanguage="zh-CN", targetlanguage="en-GB")
    rows = [
        (
            "安全理事会通过了第2370（2017）号决议。",
            "The Security Council adopted resolution 2370 (2017).",
            "From S/PV.8017",
        ),
        ("会议于上午10时5分开始。", "The meeting was called to order at 10.05 a.m.", ""),
        ("主席：我宣布会议开始。", "The President: I call the meeting to order.", "zh & en"),
    ]
    for zh, en, note in rows:
        unit = store.addsourceunit(zh)
        unit.target = en
        if note:
            unit.addnote(note, origin="translator")
    original = bytes(store)
    exported = round_trip(client, "tt.tmx", original)
    assert canonical(exported) == canonical(original)
    back = tt_tmx.tmxfile.parsestring(exported)
    assert [(u.source, u.target, u.getnotes()) for u in back.units] == list(rows)
    assert client.get("/tm/stats").json()["directions"] == {"zh-CN>en-GB": 3}


def test_the_hand_written_omegat_level1_file_comes_back(client):
    original = (DATA / "tmx_omegat_level1.tmx").read_bytes()  # TMX 1.1, bare `lang`, comments
    exported = round_trip(client, "omegat.tmx", original)
    assert canonical(exported) == canonical(original)
    assert b'<tmx version="1.1">' in exported


def test_merged_duplicates_and_edits_are_what_changes(client):
    """Under the default rule a repeated unit is stored once (the export has it once); an
    edit sets changedate/changeid, a use usagecount/lastusagedate: the memory's additions."""
    original = (DATA / "tmx14_every_element.tmx").read_bytes()
    first = import_file(client, {"file": ("a.tmx", original, "application/xml")})
    again = import_file(client, {"file": ("b.tmx", original, "application/xml")})
    assert (first["imported"], again["imported"], again["merged"]) == (3, 0, 3)
    unit = client.get("/tm/units/3").json()
    assert unit["zh"] == "会议于上午10时5分开始。"
    edited = client.patch(
        "/tm/units/3", json={"version": unit["version"], "props": {"x-document": "Corr.2"},
                             "changeid": "reviser"}, headers=AUTH,
    ).json()["unit"]
    assert edited["attrs"]["changeid"] == "reviser" and edited["version"] == 2
    client.post("/tm/units/3/usage", headers=AUTH)
    exported = client.get("/tm/export", params={"import_id": first["import_id"]}).content
    tu = etree.fromstring(exported).findall("body/tu")[2]
    assert tu.get("usagecount") == "1" and tu.get("changeid") == "reviser"
    props = [(p.get("type"), p.text) for p in tu.findall("prop")]
    assert props == [("x-document", "S/PV.8017"), ("x-document", "Corr.2")]
    units = list(read_tmx(DATA / "tmx14_every_element.tmx"))
    assert units[2].props == {"x-document": "S/PV.8017/Corr.1"}  # the last of two props
