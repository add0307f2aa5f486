"""Bad input to the memory: a clear error, nothing half-imported, nothing overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aligner.tmx import TMXError, read_tmx
from service.config import Settings
from service.memory.factory import open_store
from service.web.app import create_app
from tests.test_api import AUTH, KEY, finished, import_file

DATA = Path(__file__).parent / "data"
HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4"><header creationtool="t" '
    'creationtoolversion="1" segtype="sentence" o-tmf="t" adminlang="en" srclang="zh-CN" '
    'datatype="plaintext"/><body>\n'
)
GOOD_TU = (
    '<tu><tuv xml:lang="zh-CN"><seg>一。</seg></tuv><tuv xml:lang="en"><seg>One.</seg></tuv></tu>\n'
)


def tmx(*tus: str) -> bytes:
    return (HEADER + GOOD_TU + "".join(tus) + "</body></tmx>\n").encode()


@pytest.fixture
def client(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", api_key=KEY, encoder="none")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def failed_import(client, data: bytes) -> str:
    job = finished(client, client.post("/tm/import", files={"file": ("bad.tmx", data)},
                                       headers=AUTH))
    assert job["state"] == "failed", job
    assert client.get("/tm/stats").json()["units"] == 0  # not even the good first unit
    assert client.get("/tm/imports").json()["imports"][0]["state"] == "failed"
    return job["error"]


def test_inline_tags_that_do_not_pair(client):
    error = failed_import(client, tmx(
        '<tu><tuv xml:lang="zh-CN"><seg>二<ept i="3">&lt;/b&gt;</ept></seg></tuv>'
        '<tuv xml:lang="en"><seg>Two</seg></tuv></tu>'
    ))
    assert error == 'line 4: inline tags do not pair: an <ept i="3"> with no <bpt i="3"> before it'


def test_a_tuv_in_a_language_the_memory_does_not_hold(client):
    error = failed_import(client, tmx(
        '<tu><tuv xml:lang="zh-CN"><seg>二。</seg></tuv><tuv xml:lang="en"><seg>Two.</seg></tuv>'
        '<tuv xml:lang="fr-FR"><seg>Deux.</seg></tuv></tu>'
    ))
    assert "a <tuv> in 'fr-FR'; this memory holds en and zh only" in error


def test_a_huge_note_is_refused_quickly(tmp_path):
    store = open_store(tmp_path / "data")
    path = tmp_path / "note.tmx"
    note = "x" * (50 * 2**20)
    path.write_bytes(tmx(
        f'<tu><note>{note}</note><tuv xml:lang="zh-CN"><seg>二。</seg></tuv>'
        '<tuv xml:lang="en"><seg>Two.</seg></tuv></tu>'
    ))
    del note
    with pytest.raises(TMXError, match="line 4: a text of over 10,000,000 bytes"):
        store.import_tmx(path)
    assert store.count() == 0
    small = tmp_path / "small-note.tmx"
    small.write_bytes(tmx(
        f'<tu><note>{"y" * 200_000}</note><tuv xml:lang="zh-CN"><seg>二。</seg></tuv>'
        '<tuv xml:lang="en"><seg>Two.</seg></tuv></tu>'
    ))
    with pytest.raises(TMXError, match="a <note> of 200,000 characters; the limit is 100,000"):
        list(read_tmx(small))
    store.close()


def test_edits_of_a_deleted_unit_and_two_edits_at_once(client):
    import_file(client, {"file": ("good.tmx", tmx())})
    unit = client.get("/tm/units/1")
    assert unit.headers["etag"] == '"1-1"'
    version = unit.json()["version"]
    first = client.patch("/tm/units/1", json={"version": version, "props": {"a": "1"}},
                         headers=AUTH)
    second = client.patch("/tm/units/1", json={"version": version, "props": {"b": "2"}},
                          headers=AUTH)
    assert first.status_code == 200
    assert (second.status_code, second.json()["error"]["code"]) == (409, "edit_conflict")
    assert "version 2, not 1" in second.json()["error"]["message"]
    assert client.get("/tm/units/1").json()["props"] == {"a": "1"}  # not overwritten
    huge = client.patch("/tm/units/1", json={"version": 2, "props": {"x": "y" * 200_000}},
                        headers=AUTH)
    assert (huge.status_code, huge.json()["error"]["code"]) == (422, "invalid_request")
    bad_tag = client.patch("/tm/units/1", json={"version": 2, "en": "One{1/}."}, headers=AUTH)
    assert (bad_tag.status_code, bad_tag.json()["error"]["code"]) == (422, "bad_markup")
    assert client.delete("/tm/units/1", headers=AUTH).status_code == 200
    late = client.patch("/tm/units/1", json={"version": 2, "en": "One!"}, headers=AUTH)
    assert (late.status_code, late.json()["error"]["code"]) == (404, "unit_not_found")
    assert client.post("/tm/units/1/usage", headers=AUTH).status_code == 404


def test_a_text_edit_gives_a_new_id_that_lookups_find(client):
    import_file(client, {"file": ("good.tmx", tmx())})
    answer = client.patch("/tm/units/1", json={"version": 1, "en": "One, edited."}, headers=AUTH)
    new = answer.json()["unit"]
    assert answer.json()["replaced"] == 1 and new["id"] != 1 and new["en"] == "One, edited."
    found = client.post("/tm/lookup", json={"text": "One, edited.", "source_lang": "en"}).json()
    assert [m["id"] for m in found["matches"]] == [new["id"]]
    old = client.get("/tm/units/1")
    assert old.status_code == 404 and f"now unit {new['id']}" in old.json()["error"]["message"]
    stale = client.patch("/tm/units/1", json={"version": 1, "en": "Again."}, headers=AUTH)
    assert (stale.status_code, stale.json()["error"]["code"]) == (409, "edit_conflict")


def test_delete_by_query_needs_a_condition(client):
    import_file(client, {"file": ("good.tmx", tmx())})
    empty = client.delete("/tm/units", headers=AUTH)
    assert (empty.status_code, empty.json()["error"]["code"]) == (400, "empty_query")
    gone = client.delete("/tm/units", params={"origin": "good.tmx"}, headers=AUTH).json()
    assert gone == {"deleted": 1, "ids": [1]}


def test_a_cancelled_import_job_leaves_nothing(tmp_path, shared_data):
    """The runner checks for a cancel between chunks of units: the transaction is rolled back
    and the audit says the import did not finish."""
    import io

    from aligner.tmx import write_tmx
    from service.jobs import JobManager
    from tests.test_store import unpc_units

    settings = Settings(data_dir=tmp_path / "data", api_key=KEY, encoder="none")
    store = open_store(settings.data_dir)
    manager = JobManager(settings, store)
    path = tmp_path / "many.tmx"
    write_tmx(path, unpc_units(shared_data, 3000))
    job = manager.submit_import(io.BytesIO(path.read_bytes()), "many.tmx", "merge")
    assert job.total == 3000
    claimed = manager.table.claim(manager.worker, 30)  # as the runner does
    manager.table.request_cancel(job.id)  # as DELETE /jobs/{id} does, through the row
    manager._run_import(claimed, manager._hold(job.id))
    assert store.count() == 0
    audit = store.imports()[0]
    assert audit.state == "failed" and "the import was cancelled" in audit.error
    assert manager.get(job.id).state == "cancelled"
    assert not (settings.data_dir / "jobs" / job.id / "input" / "import.tmx").exists()
    manager.stop()
    store.close()
