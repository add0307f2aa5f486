"""``GET /tm/export``: both directions read back, and the filters as the Memory page's form
sends them (an empty field is no filter)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from service.config import Settings
from service.web.app import create_app
from tests.test_import_rules import AUTH, KEY, import_tmx, tmx, tu

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
HAN = re.compile(r"[\u4e00-\u9fff]")


def en_source_tu(en: str, zh: str) -> str:
    """A unit stored English → Chinese (its TMX says srclang en-US)."""
    return (f'<tu srclang="en-US" creationdate="20250101T000000Z"><tuv xml:lang="en-US">'
            f'<seg>{en}</seg></tuv><tuv xml:lang="zh-CN"><seg>{zh}</seg></tuv></tu>')


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("export") / "data", api_key=KEY,
                        encoder="none")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        first = tmx(tu("你好。", "Hello.", prop="Mr. Li"), tu("再见。", "Goodbye."))
        import_tmx(c, first, "merge")
        second = tmx(en_source_tu("Thank you.", "谢谢。"))
        import_tmx(c, second, "merge")
        yield c


def source_and_target(data: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The header's srclang, and each unit's (source seg, target seg) as the file says."""
    root = etree.fromstring(data)
    srclang = root.find("header").get("srclang")
    pairs = []
    for unit in root.iter("tu"):
        src = unit.get("srclang", srclang).lower()
        tuvs = {tuv.get(XML_LANG).lower(): "".join(tuv.find("seg").itertext())
                for tuv in unit.iter("tuv")}
        (other,) = set(tuvs) - {src}
        pairs.append((tuvs[src], tuvs[other]))
    return srclang, pairs


@pytest.mark.parametrize("lang, srclang", [("zh", "zh-CN"), ("en", "en-US")])
def test_each_direction_has_its_language_as_source(client, lang, srclang):
    answer = client.get("/tm/export", params={"source_lang": lang})
    assert answer.status_code == 200
    header_lang, pairs = source_and_target(answer.content)
    assert header_lang == srclang
    assert len(pairs) == 3
    for source, target in pairs:
        assert bool(HAN.search(source)) is (lang == "zh"), (source, target)
        assert bool(HAN.search(target)) is (lang == "en"), (source, target)
    expected = {("你好。", "Hello."), ("再见。", "Goodbye."), ("谢谢。", "Thank you.")}
    if lang == "en":
        expected = {(en, zh) for zh, en in expected}
    assert set(pairs) == expected


def test_without_a_direction_units_keep_their_own(client):
    _, pairs = source_and_target(client.get("/tm/export").content)
    assert set(pairs) == {("你好。", "Hello."), ("再见。", "Goodbye."), ("Thank you.", "谢谢。")}


def test_empty_fields_are_no_filter(client):
    """What the Memory page's form sends with nothing typed in."""
    for query in ("document=&speaker=&source_lang=zh", "speaker=", "document=",
                  "since=&import_id=&source_lang=", "speaker=%20"):
        answer = client.get(f"/tm/export?{query}")
        assert answer.status_code == 200, (query, answer.text)
        assert len(source_and_target(answer.content)[1]) == 3, query
    answer = client.get("/tm/export?speaker=Mr.%20Li&document=")
    assert source_and_target(answer.content)[1] == [("你好。", "Hello.")]


def test_bad_filters_are_still_refused(client):
    for query in ("since=yesterday", "import_id=0", "source_lang=fr", "speaker=" + "x" * 201):
        answer = client.get(f"/tm/export?{query}")
        assert answer.status_code == 422, query
        assert "error" in answer.json()


def test_concordance_and_lookup_take_empty_filters_as_none(client):
    answer = client.get("/tm/concordance?term=你好&document=&speaker=&lang=")
    assert answer.status_code == 200, answer.text
    assert [u["source"] for u in answer.json()["units"]] == ["你好。"]
    body = {"text": "你好。", "source_lang": "zh", "document": "", "speaker": ""}
    matches = client.post("/tm/lookup", json=body, headers=AUTH).json()["matches"]
    assert [m["target"] for m in matches] == ["Hello."]
