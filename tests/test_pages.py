"""The web pages over a real memory (UNPC pairs): search, concordance, memory, reviews, login,
offline docs. Pages are parsed as HTML and compared with the JSON routes they share data with."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from lxml import html

from aligner.models import TranslationUnit
from service.config import Settings
from service.security.keys import KeyInfo
from service.web.app import create_app
from service.web.pages import signed_in_as, size, stat_value, tmx_date
from tests.test_store import unpc_units

KEY = "pages-key-1"
AUTH = {"X-API-Key": KEY}
ROOT = Path(__file__).resolve().parents[1]


def page(client: TestClient, url: str, **kw):
    answer = client.get(url, **kw)
    return answer, html.fromstring(answer.text)


@pytest.fixture(scope="module")
def memory(tmp_path_factory, shared_data):
    """A semantic service with 120 UNPC pairs, one unit with markup-like text; (client, units)."""
    data = tmp_path_factory.mktemp("pages") / "data"
    units = unpc_units(shared_data, 120)
    units.append(TranslationUnit("<script>alert(1)</script> 第2370(2017)号决议",
                                 "<script>alert(1)</script> resolution 2370 (2017)",
                                 props={"x-document": "S/PV.9999", "x-speaker": "Mr. Test"}))
    settings = Settings(data_dir=data, api_key=KEY, encoder="use-m3")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.app.state.service.memory.store.import_units(units)
        client.app.state.service.sync()
        yield client, units


def test_search_page_shows_the_lookup_with_differences(memory):
    client, units = memory
    unit = units[5]
    words = unit.target.split()
    query = " ".join(words[:-1] + ["Assembly"]) if words[-1] != "Assembly" else unit.target + " x"
    answer, doc = page(client, "/search", params={"q": query, "lang": "en", "min_fuzzy": 50})
    assert answer.status_code == 200
    api = client.post("/tm/lookup", json={"text": query, "source_lang": "en", "limit": 10,
                                          "min_fuzzy": 50}).json()["matches"]
    shown = [int(li.get("data-unit")) for li in doc.cssselect("li.match")]
    assert shown == [m["id"] for m in api]  # same data, same order
    top = doc.cssselect("li.match")[0]
    assert top.cssselect(".badge.fuzzy")[0].text_content() == f"{api[0]['fuzzy']}%"
    source = top.cssselect(".pair > p.seg")[0]
    changed = [e.text_content() for e in source.cssselect("ins")]
    missing = [e.text_content() for e in source.cssselect("del")]
    assert changed or missing  # the differences are marked
    for element in source.cssselect("del"):
        element.drop_tree()  # keeps the text after it
    assert source.text_content() == api[0]["source_plain"]  # the rest is the stored source
    assert "".join(missing) in query or "Assembly" in "".join(missing)
    assert api[0]["document"] in top.cssselect(".prov")[0].text_content()


def test_numbers_that_differ_are_flagged_and_markup_escaped(memory):
    client, _ = memory
    answer, doc = page(client, "/search", params={"q": "<script>alert(1)</script> resolution "
                                                       "2371 (2017)", "min_fuzzy": 50})
    assert "<script>alert(1)" not in answer.text  # escaped, never markup
    top = doc.cssselect("li.match")[0]
    flag = top.cssselect(".badge.warn")[0].text_content()
    assert "2371" in flag and "2370" in flag
    assert "2371" in top.cssselect(".adapted")[0].text_content()  # the query's number put in
    assert "Mr. Test" in top.cssselect(".prov")[0].text_content()


def test_semantic_matches_are_marked(memory):
    client, units = memory
    paraphrase = "Any reform of the Organization must not redefine the principles of the Charter."
    _, doc = page(client, "/search", params={"q": paraphrase, "lang": "en", "min_fuzzy": 75})
    first = doc.cssselect("li.match")[0]
    assert "semantic" in first.get("class")
    assert first.cssselect(".badge.semantic")[0].text_content().startswith("semantic 0.")


def test_concordance_page_kwic_filters_paging_total(memory):
    client, units = memory
    term = "the"
    _, doc = page(client, "/concordance", params={"term": term, "lang": "en"})
    count = doc.cssselect("p.count")[0].text_content()
    total = sum(1 for u in units if term in u.target.lower())
    assert f"{total} units" in count
    rows = doc.cssselect("table.kwic tbody tr")
    assert len(rows) == 20
    api = client.get("/tm/concordance", params={"term": term, "lang": "en", "limit": 20,
                                                "total": True}).json()
    assert [int(r.get("data-unit")) for r in rows] == [u["id"] for u in api["units"]]
    assert api["total"] == total
    assert all(r.cssselect("td.hit mark")[0].text_content().lower() == term for r in rows)
    second = doc.cssselect(".pager a[rel=next]")[0].get("href")
    _, doc2 = page(client, second)
    ids2 = [int(r.get("data-unit")) for r in doc2.cssselect("table.kwic tbody tr")]
    assert ids2 and not set(ids2) & {u["id"] for u in api["units"]}
    document = units[0].props["x-document"]
    _, doc3 = page(client, "/concordance", params={"term": term, "document": document})
    provs = [r.cssselect("td.prov")[0].text_content() for r in
             doc3.cssselect("table.kwic tbody tr")]
    assert provs and all(document in p for p in provs)


def test_pages_behind_the_read_key_and_login(tmp_path):
    settings = Settings(data_dir=tmp_path / "d", api_key=KEY, encoder="none", open_reads=False)
    with TestClient(create_app(settings)) as client:
        first = client.get("/search", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].startswith("/login")
        _, form = page(client, "/login?next=/memory")
        csrf = form.cssselect("input[name=csrf]")[0].get("value")
        assert "concordia_csrf" in client.cookies
        wrong = client.post("/login", data={"key": "nope", "csrf": csrf, "next": "/memory"})
        assert wrong.status_code == 403 and "wrong" in wrong.text
        forged = client.post("/login", data={"key": KEY, "csrf": "forged", "next": "/memory"})
        assert forged.status_code == 403
        ok = client.post("/login", data={"key": KEY, "csrf": csrf, "next": "/memory"},
                         follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == "/memory"
        cookie = [v for k, v in ok.headers.multi_items() if k == "set-cookie"
                  and v.startswith("concordia_session=")][0]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert KEY not in cookie  # the cookie is a session token, never the key
        assert client.cookies["concordia_csrf"] != csrf  # a new token after login
        assert client.post("/tm/units/1/usage", headers={"X-CSRF-Token": csrf}).status_code \
            == 403
        csrf = client.cookies["concordia_csrf"]
        assert client.get("/memory").status_code == 200
        # the page's writes go through the API with the CSRF token
        assert client.delete("/tm/units/1").status_code == 403
        assert client.delete("/tm/units/1", headers={"X-CSRF-Token": csrf}).status_code == 404
        # the session ended (a cookie the server does not know): the login has expired
        client.cookies.clear()
        client.cookies.set("concordia_session", "old-token")
        expired = client.get("/memory", follow_redirects=False)
        assert expired.status_code == 303 and "why=expired" in expired.headers["location"]
        _, login = page(client, expired.headers["location"])
        assert "no longer accepted" in login.text_content()


def test_docs_work_offline(memory):
    client, _ = memory
    answer = client.get("/docs")
    assert answer.status_code == 200
    assert "cdn" not in answer.text.lower()
    assert "/static/swagger/swagger-ui-bundle.js" in answer.text
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/swagger/swagger-ui.css").status_code == 200
    assert "/reviews/{review_id}/changes" in client.get("/openapi.json").json()["paths"]


def test_review_pages(memory, tmp_path):
    client, _ = memory
    data = Path(__file__).parent / "data"
    files = {lang: (f"r.{lang}.txt", (data / f"record_8017_excerpt.{lang}.txt").read_bytes())
             for lang in ("zh", "en")}
    review = client.post("/reviews", files=files, data={"name": "S/PV.8017"}, headers=AUTH)
    assert review.status_code == 201
    _, listing = page(client, "/review")
    links = [a.get("href") for a in listing.cssselect("table.list a")]
    assert review.json()["page"] in links
    answer, editor = page(client, review.json()["page"])
    assert answer.status_code == 200
    assert editor.cssselect("#editor")[0].get("data-review") == review.json()["id"]
    assert editor.cssselect("meta[name=csrf-token]")[0].get("content")
    missing, doc = page(client, "/review/nothing-here")
    assert missing.status_code == 404 and "review_not_found" in doc.text_content()


def test_wheel_ships_templates_and_static(tmp_path):
    # Built from a copy: building in the checkout would leave build/ and *.egg-info there.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "tests", "bench", "tmx_out", "build", "*.egg-info",
        "__pycache__", "mutants", ".ruff_cache", ".pytest_cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "out"),
         str(source)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = (tmp_path / "out").glob("concordia-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("service/web/templates/base.html", "service/web/templates/review.html",
                 "service/web/static/editor.js", "service/web/static/concordia.css",
                 "aligner/samples/meeting.zh.txt"):
        assert name in names, name


def test_concordance_page_whole_words(memory):
    client, units = memory
    inside = [u for u in units if "the" in u.target.lower()]
    whole = [u for u in units if re.search(r"(?<!\w)the(?!\w)", u.target.lower())]
    assert len(whole) < len(inside)  # "other", "there"… hold "the" inside a word
    _, doc = page(client, "/concordance", params={"term": "the", "lang": "en", "whole": True})
    assert f"{len(whole)} units" in doc.cssselect("p.count")[0].text_content()
    following = doc.cssselect(".pager a[rel=next]")[0].get("href")
    assert "whole=true" in following


def test_memory_statistics_are_written_for_people(memory):
    client, _ = memory
    _, doc = page(client, "/memory")
    shown = {dt.text_content(): dd.text_content()
             for dt, dd in zip(doc.cssselect("dl.stats dt"), doc.cssselect("dl.stats dd"),
                               strict=True)}
    assert shown["units"] == "121"
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]+ 20\d\d, \d\d:\d\d UTC", shown["last import"])
    assert re.fullmatch(r"[\d.,]+ (KiB|MiB)", shown["database size"]), shown
    assert shown["language directions"] == "zh-CN → en-US: 121"
    assert not re.search(r"\d{8}T\d{6}Z", doc.text_content())


def test_statistics_formatting():
    assert tmx_date("20261207T185551Z") == "7 December 2026, 18:55 UTC"
    assert tmx_date("not a date") == "not a date"
    assert [size(n) for n in (0, 1023, 1024, 209_648, 5 * 2**20, 3 * 2**30)] == [
        "0 bytes", "1,023 bytes", "1 KiB", "204.7 KiB", "5 MiB", "3 GiB"]
    assert stat_value("semantic_index", None) == "off"
    assert stat_value("last_import", "") == "never"
    assert stat_value("units", 1_000_000) == "1,000,000"
    assert stat_value("database_bytes", 2048) == "2 KiB"
    assert stat_value("fuzzy_index", {"units": 3, "exact": True}) == "units: 3 · exact: yes"
    assert stat_value("x", {}) == "none"


def test_the_header_says_who_is_signed_in(memory):
    client, _ = memory
    _, doc = page(client, "/search", headers=AUTH)
    who = doc.cssselect("header.top .who")[0].text_content()
    assert "signed in with the server's key (admin)" in who and "env" not in who
    assert signed_in_as(KeyInfo("translator", frozenset({"read"}))) == "key “translator” (read)"
    assert signed_in_as(KeyInfo("anonymous", frozenset({"read"}))) == ""
    _, anonymous = page(client, "/search")
    assert anonymous.cssselect("header.top .who a[href^='/login']")


def test_docs_lead_back_to_the_pages(memory):
    client, _ = memory
    doc = html.fromstring(client.get("/docs").text)
    assert [a.text_content() for a in doc.cssselect("body > nav a[href='/search']")] == [
        "← Concordia pages"]


def test_concordance_left_context_is_isolated_for_right_alignment(memory):
    client, _ = memory
    _, doc = page(client, "/concordance", params={"term": "第2370"})
    (row,) = doc.cssselect("table.kwic tbody tr")
    left = row.cssselect("td.left")[0]
    assert left.get("lang") == "zh" and row.cssselect("td.other")[0].get("lang") == "en"
    assert left.cssselect("span[dir=ltr]")[0].text_content().endswith("</script> ")
