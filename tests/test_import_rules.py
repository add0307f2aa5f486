"""Each import rule on duplicates, through the import job over HTTP, and the memory read back
through the export: ``merge``, ``keep_both``, ``keep_newest`` (newer, older, the same date),
``by_tuid``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aligner.tmx import read_tmx
from service.config import Settings
from service.web.app import create_app

KEY = "rules-key-0123456789"
AUTH = {"X-API-Key": KEY}


def tu(zh: str, en: str, *, date: str = "20250101T000000Z", tuid: str = "",
       changedate: str = "", prop: str = "") -> str:
    attrs = f' creationdate="{date}"'
    if tuid:
        attrs += f' tuid="{tuid}"'
    if changedate:
        attrs += f' changedate="{changedate}"'
    props = f'<prop type="x-speaker">{prop}</prop>' if prop else ""
    return (f"<tu{attrs}>{props}<tuv xml:lang=\"zh-CN\"><seg>{zh}</seg></tuv>"
            f"<tuv xml:lang=\"en-US\"><seg>{en}</seg></tuv></tu>")


def tmx(*units: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4"><header creationtool="t" '
        'creationtoolversion="1" segtype="sentence" o-tmf="t" adminlang="en" srclang="zh-CN" '
        'datatype="plaintext"/><body>' + "".join(units) + "</body></tmx>"
    ).encode()


def import_tmx(client: TestClient, data: bytes, rule: str) -> dict:
    """Import through the job path; what the import did, once the job is done."""
    answer = client.post("/tm/import", files={"file": ("t.tmx", data)}, data={"rule": rule},
                         headers=AUTH)
    assert answer.status_code == 202, answer.text
    job = answer.json()
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
        job = client.get(f"/jobs/{job['id']}").json()
    assert job["state"] == "done", job
    assert job["memory"]["rule"] == rule
    return job["memory"]


def stored(client: TestClient, tmp_path: Path) -> list[tuple[str, str, dict]]:
    """The memory's units as (zh, en, props), read back from the export."""
    path = tmp_path / "back.tmx"
    path.write_bytes(client.get("/tm/export").content)
    return sorted((u.source, u.target, u.props) for u in read_tmx(path))


@pytest.fixture
def client(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", api_key=KEY, encoder="none")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def counts(result: dict) -> tuple[int, int, int, int]:
    return result["imported"], result["merged"], result["replaced"], result["skipped"]


def test_merge_joins_identical_units_and_keeps_other_translations(client, tmp_path):
    assert counts(import_tmx(client, tmx(tu("你好。", "Hello."), tu("再见。", "Goodbye.")),
                             "merge")) == (2, 0, 0, 0)
    again = tmx(tu("你好。", "Hello.", prop="Mr. Li"), tu("你好。", "Hi."))
    assert counts(import_tmx(client, again, "merge")) == (1, 1, 0, 0)
    assert stored(client, tmp_path) == [
        ("你好。", "Hello.", {"x-speaker": "Mr. Li"}),  # gained the property it lacked
        ("你好。", "Hi.", {}),
        ("再见。", "Goodbye.", {}),
    ]


def test_keep_both_stores_every_copy(client, tmp_path):
    first = tmx(tu("你好。", "Hello."), tu("你好。", "Hello."))
    assert counts(import_tmx(client, first, "keep_both")) == (2, 0, 0, 0)
    assert counts(import_tmx(client, tmx(tu("你好。", "Hello.")), "keep_both")) == (1, 0, 0, 0)
    assert stored(client, tmp_path) == [("你好。", "Hello.", {})] * 3


def test_keep_newest_replaces_only_with_a_later_unit(client, tmp_path):
    import_tmx(client, tmx(tu("你好。", "Hello.", date="20250601T000000Z")), "keep_newest")
    older = import_tmx(client, tmx(tu("你好。", "Old hello.", date="20240101T000000Z")),
                       "keep_newest")
    assert counts(older) == (0, 0, 0, 1)
    assert older["skipped_reasons"] == {"older_than_stored": 1}
    same_day = import_tmx(client, tmx(tu("你好。", "Same day.", date="20250601T000000Z")),
                          "keep_newest")
    assert counts(same_day) == (0, 0, 0, 1)  # not newer: the stored one stays
    assert stored(client, tmp_path) == [("你好。", "Hello.", {})]
    newer = import_tmx(client, tmx(tu("你好。", "Hi there.", date="20250101T000000Z",
                                      changedate="20260101T000000Z")), "keep_newest")
    assert counts(newer) == (0, 0, 1, 0)  # its changedate is later than the stored date
    assert stored(client, tmp_path) == [("你好。", "Hi there.", {})]


def test_by_tuid_replaces_the_unit_with_that_tuid(client, tmp_path):
    import_tmx(client, tmx(tu("你好。", "Hello.", tuid="t1"), tu("再见。", "Goodbye.", tuid="t2")),
               "by_tuid")
    result = import_tmx(client, tmx(tu("您好。", "Good day.", tuid="t1"),
                                    tu("再见。", "Goodbye.")), "by_tuid")
    assert counts(result) == (0, 1, 1, 0)  # t1 replaced; the copy without a tuid merged
    assert stored(client, tmp_path) == [("再见。", "Goodbye.", {}), ("您好。", "Good day.", {})]
