"""The review surfaces under hostile input (issue 20): spreadsheets that declare a huge sheet,
zips that expand, damaged XML, long TSV fields, formulas in the sides, reviews acted on by
keys that do not own them, and a history that grows with edits that change nothing."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from service.config import Settings
from service.security.keys import hash_key
from service.web.app import create_app

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
ZH = DATA / "record_8017_excerpt.zh.txt"
EN = DATA / "record_8017_excerpt.en.txt"
KEYS = {"alice": ("alice-key-1", "write"), "bob": ("bob-key-22", "write"),
        "root": ("root-key-333", "admin"), "reader": ("reader-key-4444", "read")}


def auth(name: str) -> dict:
    return {"X-API-Key": KEYS[name][0]}


def keys_file(folder: Path) -> Path:
    path = folder / "keys.toml"
    path.write_text("".join(
        f'[keys.{name}]\nscopes = ["{scope}"]\nsha256 = "{hash_key(key)}"\n\n'
        for name, (key, scope) in KEYS.items()
    ))
    return path


def _files() -> dict:
    return {"zh": (ZH.name, ZH.read_bytes(), "text/plain"),
            "en": (EN.name, EN.read_bytes(), "text/plain")}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reviewhard")
    settings = Settings(data_dir=folder / "data", keys_file=keys_file(folder), encoder="none",
                        max_document_bytes=2 * 1024 * 1024)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def open_review(client, who: str = "alice") -> tuple[str, dict]:
    answer = client.post("/reviews", files=_files(), data={"name": "S/PV.8017"},
                         headers=auth(who))
    assert answer.status_code == 201, answer.text
    rid = answer.json()["id"]
    return rid, client.get(f"/reviews/{rid}").json()


def change(client, rid: str, version: int, who: str = "alice", **op):
    return client.post(f"/reviews/{rid}/changes", json={"version": version, **op},
                       headers=auth(who))


def send_sheet(client, rid: str, content: bytes, name: str = "r.xlsx", who: str = "alice"):
    return client.post(f"/reviews/{rid}/sheet", files={"file": (name, content)},
                       headers=auth(who))


def rezip(xlsx: bytes, replace: dict[str, bytes], extra: dict[str, bytes] | None = None) -> bytes:
    """The workbook with some parts replaced (and others added)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, zipfile.ZipFile(
        out, "w", zipfile.ZIP_DEFLATED
    ) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, replace.get(info.filename, src.read(info)))
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return out.getvalue()


def huge_dimension_sheet(xlsx: bytes) -> bytes:
    """The export with its review sheet declaring A1:XFD1048576 and one cell at row 1048576:
    a few KB that padded rows would make gigabytes of."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
        part = z.read("xl/worksheets/sheet1.xml").decode()
    part = re.sub(r'<dimension ref="[^"]*"/>', '<dimension ref="A1:XFD1048576"/>', part)
    part = part.replace(
        "</sheetData>",
        '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
        "</sheetData>",
    )
    return rezip(xlsx, {"xl/worksheets/sheet1.xml": part.encode()})


def test_a_sheet_declaring_a_million_rows_is_read_within_bounds(tmp_path):
    """Run in a child process held to 3 GiB of address space: reading the padded sheet
    (as openpyxl does by its declared dimension) would take gigabytes; bounded reading
    stops after the review's rows and answers in moments."""
    script = textwrap.dedent(f"""
        import resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        sys.path.insert(0, {str(ROOT)!r})
        from fastapi.testclient import TestClient
        from service.config import Settings
        from service.web.app import create_app
        from tests.test_review_hardening import _files, huge_dimension_sheet
        settings = Settings(data_dir={str(tmp_path / "data")!r}, api_key="k", encoder="none")
        with TestClient(create_app(settings), raise_server_exceptions=False) as c:
            rid = c.post("/reviews", files=_files(), headers={{"X-API-Key": "k"}}).json()["id"]
            bomb = huge_dimension_sheet(c.get(f"/reviews/{{rid}}/sheet").content)
            assert len(bomb) < 20_000, len(bomb)
            started = time.monotonic()
            answer = c.post(f"/reviews/{{rid}}/sheet", files={{"file": ("r.xlsx", bomb)}},
                            headers={{"X-API-Key": "k"}})
            print(answer.status_code, round(time.monotonic() - started, 1), answer.text)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr[-2000:]
    status, seconds, body = run.stdout.strip().split(" ", 2)
    assert status == "200" and '"changed":0' in body, body  # rows past the review's are not read
    assert float(seconds) < 20


def test_sheet_zip_bad_xml_and_long_tsv_fields_are_clear_errors(client):
    rid, state = open_review(client)
    xlsx = client.get(f"/reviews/{rid}/sheet").content
    # expands beyond the document limit (2 MiB here): refused before openpyxl reads it
    zeros = rezip(xlsx, {}, {"xl/media/padding.bin": b"\0" * (3 * 1024 * 1024)})
    assert len(zeros) < 100_000
    answer = send_sheet(client, rid, zeros)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "sheet_too_large"
    many = rezip(xlsx, {}, {f"xl/extra/{n}.txt": b"" for n in range(300)})
    answer = send_sheet(client, rid, many)
    assert answer.status_code == 413, answer.text
    # damaged XML in the sheet: 422, not a 500 that drops the connection
    broken = rezip(xlsx, {"xl/worksheets/sheet1.xml": b"<worksheet><sheetData><row"})
    answer = send_sheet(client, rid, broken)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "bad_sheet"
    # a TSV field over csv's 131,072 characters
    tsv = client.get(f"/reviews/{rid}/sheet?format=tsv").content.decode()
    lines = tsv.split("\n")
    cells = lines[2].split("\t")
    cells[4] = '"' + "x" * 140_000
    lines[2] = "\t".join(cells)
    answer = send_sheet(client, rid, "\n".join(lines).encode(), "r.tsv")
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "bad_sheet"
    assert client.get(f"/reviews/{rid}").json()["version"] == state["version"]


def _formula_review(client) -> tuple[str, int, dict[int, str]]:
    """A review whose first pairs' English sides start with = + - @ and a quote."""
    rid, state = open_review(client)
    version = state["version"]
    texts = ["=HYPERLINK(\"http://evil\",\"x\")", "+1 212 963 1234", "-3 degrees",
             "@UN said so", "'quoted'"]
    sides = {}
    paired = [b for b in state["beads"] if b["zh"] and b["en"]][: len(texts)]
    for bead, text in zip(paired, texts, strict=True):
        done = change(client, rid, version, op="edit", bead=bead["id"], side="en", text=text)
        assert done.status_code == 200, done.text
        version = done.json()["version"]
        sides[done.json()["beads"][0]["id"]] = text
    return rid, version, sides


def test_sides_starting_with_formula_characters_round_trip_as_text(client):
    rid, version, sides = _formula_review(client)
    xlsx = client.get(f"/reviews/{rid}/sheet").content
    with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
        assert b"<f>" not in z.read("xl/worksheets/sheet1.xml")  # no live formula
    book = load_workbook(io.BytesIO(xlsx))
    by_id = {str(row[0].value): row for row in book["review"].iter_rows(min_row=2)}
    for bead_id, text in sides.items():
        cell = by_id[str(bead_id)][4]
        assert cell.value == text and cell.data_type == "s"
    unchanged = send_sheet(client, rid, xlsx)
    assert unchanged.status_code == 200, unchanged.text
    assert unchanged.json()["changed"] == 0
    now = client.get(f"/reviews/{rid}").json()
    assert now["version"] == version  # nothing changed, nothing saved
    texts = {b["id"]: " ".join(b["en"]) for b in now["beads"]}
    assert all(texts[i] == t for i, t in sides.items())

    tsv = client.get(f"/reviews/{rid}/sheet?format=tsv").content.decode()
    fields = [line.split("\t")[4] for line in tsv.split("\n")[2:] if line]
    assert not any(f.startswith(("=", "+", "-", "@")) for f in fields)
    assert "'=HYPERLINK" in tsv and "''quoted'" in tsv
    back = send_sheet(client, rid, tsv.encode(), "r.tsv")
    assert back.status_code == 200 and back.json()["changed"] == 0, back.text
    texts = {b["id"]: " ".join(b["en"]) for b in client.get(f"/reviews/{rid}").json()["beads"]}
    assert all(texts[i] == t for i, t in sides.items())


def test_a_sheet_import_takes_a_heavy_slot(client):
    rid, _ = open_review(client)
    xlsx = client.get(f"/reviews/{rid}/sheet").content
    heavy = client.app.state.service.heavy
    held = heavy.acquire("alice")  # alice's one heavy request is running
    try:
        answer = send_sheet(client, rid, xlsx)
        assert answer.status_code == 429 and answer.headers["Retry-After"]
    finally:
        held.release()
    assert send_sheet(client, rid, xlsx).status_code == 200


def test_reviews_belong_to_the_key_that_opened_them(client):
    rid, state = open_review(client, "alice")
    assert state["owner"] == "alice"
    pair = next(b for b in state["beads"] if b["zh"] and b["en"])
    v = state["version"]
    xlsx = client.get(f"/reviews/{rid}/sheet", headers=auth("bob")).content  # bob may read
    for answer in (
        change(client, rid, v, "bob", op="status", bead=pair["id"], status="rejected"),
        send_sheet(client, rid, xlsx, who="bob"),
        client.post(f"/reviews/{rid}/finish", json={"version": v}, headers=auth("bob")),
        client.delete(f"/reviews/{rid}", headers=auth("bob")),
    ):
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "not_your_review"
    assert client.get(f"/reviews/{rid}").json()["version"] == v
    confirmed = change(client, rid, v, "alice", op="status", bead=pair["id"],
                       status="confirmed")
    assert confirmed.status_code == 200
    v = confirmed.json()["version"]
    edited = change(client, rid, v, "root", op="undo")  # an admin may act on all
    assert edited.status_code == 200
    done = client.post(f"/reviews/{rid}/finish",
                       json={"version": edited.json()["version"], "reviewer": "Anyone"},
                       headers=auth("alice"))
    assert done.status_code == 200 and done.json()["reviewer"] == "alice"
    assert client.get(f"/reviews/{rid}").json()["finished_by"] == "alice"
    assert client.delete(f"/reviews/{rid}", headers=auth("root")).status_code == 200


def test_history_logs_only_changes_and_is_bounded(client, monkeypatch):
    from service.review import model

    rid, state = open_review(client)
    section = state["beads"][0]["section"]
    done = change(client, rid, state["version"], op="confirm_turn", section=section)
    assert done.status_code == 200
    v = done.json()["version"]
    kept = client.get(f"/reviews/{rid}").json()["history"]["edits"]
    db = client.app.state.settings.data_dir / "tm.sqlite"
    import sqlite3

    def logged() -> int:
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT COALESCE(SUM(LENGTH(removed) + LENGTH(added)), 0) FROM review_edit "
                "WHERE review_id = ?", (rid,)).fetchone()[0]

    before = logged()
    for _ in range(5):  # nothing left to confirm: nothing saved, nothing logged
        again = change(client, rid, v, op="confirm_turn", section=section)
        assert again.status_code == 200 and again.json()["version"] == v
        assert again.json()["removed"] == 0 and again.json()["beads"] == []
    assert logged() == before
    assert client.get(f"/reviews/{rid}").json()["history"]["edits"] == kept
    # a status change in a turn logs that pair only, not the whole turn
    bead = next(b for b in client.get(f"/reviews/{rid}").json()["beads"]
                if b["section"] == section and b["zh"] and b["en"])
    one = change(client, rid, v, op="status", bead=bead["id"], status="rejected").json()
    assert one["removed"] == 1
    monkeypatch.setattr(model, "HISTORY_KEPT", 3)
    v, pos = one["version"], one["start"]
    for status in ("pending", "confirmed", "rejected", "pending"):
        bead_id = client.get(f"/reviews/{rid}").json()["beads"][pos]["id"]
        v = change(client, rid, v, op="status", bead=bead_id, status=status).json()["version"]
    assert client.get(f"/reviews/{rid}").json()["history"]["edits"] == 3
