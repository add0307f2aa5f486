"""The review step: an alignment of a real record excerpt opened for review, edited through the
JSON API (every operation, undo and redo, two tabs), finished into TMX and the memory, and the
spreadsheet round trip with the sheets people really send back."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook

from aligner.align.segment import split_sentences
from aligner.read.ingest import read_document
from aligner.record.turns import parse_turns
from aligner.tmx import read_tmx
from service.config import Settings
from service.web.app import create_app

KEY = "review-key-1"
AUTH = {"X-API-Key": KEY}
DATA = Path(__file__).parent / "data"
ZH = DATA / "record_8017_excerpt.zh.txt"
EN = DATA / "record_8017_excerpt.en.txt"


def _files() -> dict:
    return {
        "zh": (ZH.name, ZH.read_bytes(), "text/plain"),
        "en": (EN.name, EN.read_bytes(), "text/plain"),
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    data = tmp_path_factory.mktemp("review") / "data"
    settings = Settings(data_dir=data, api_key=KEY, encoder="none")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture()
def opened(service):
    answer = service.post("/reviews", files=_files(), data={"name": "S/PV.8017"}, headers=AUTH)
    assert answer.status_code == 201, answer.text
    review_id = answer.json()["id"]
    return service, review_id, service.get(f"/reviews/{review_id}").json()


def change(client, review_id: str, version: int, **op):
    return client.post(f"/reviews/{review_id}/changes", json={"version": version, **op},
                       headers=AUTH)


def test_every_sentence_is_in_the_review_once(opened):
    _, _, state = opened
    for lang, path in (("zh", ZH), ("en", EN)):
        doc = read_document(path, lang)
        expected = [s for t in parse_turns(doc) for p in t.paragraphs
                    for s in split_sentences(p, lang)]
        got = [s for b in state["beads"] for s in b[lang]]
        assert sorted(got) == sorted(expected)
    speakers = {s["en_speaker"] for s in state["sections"]}
    assert any("Rycroft" in s or "President" in s for s in speakers), speakers
    assert state["summary"]["beads"] == len(state["beads"])
    assert all(b["status"] == "pending" for b in state["beads"])


def _paired_run(state: dict) -> tuple[dict, dict]:
    """Two neighbouring pairs of one turn, each with one sentence a side."""
    beads = state["beads"]
    for a, b in zip(beads, beads[1:], strict=False):
        if a["section"] == b["section"] and all(len(x[s]) == 1 for x in (a, b)
                                                 for s in ("zh", "en")):
            return a, b
    raise AssertionError("no two neighbouring 1-1 pairs")


def test_merge_split_move_pair_unpair_edit_undo_redo(opened):
    client, rid, state = opened
    a, b = _paired_run(state)
    v = state["version"]
    merged = change(client, rid, v, op="merge", bead=a["id"])
    assert merged.status_code == 200, merged.text
    out = merged.json()
    assert out["removed"] == 2 and len(out["beads"]) == 1
    m = out["beads"][0]
    assert m["zh"] == a["zh"] + b["zh"] and m["en"] == a["en"] + b["en"]
    v = out["version"]

    # split back at the sentence ends: zh has no space between sentences, en one
    at_zh, at_en = len(a["zh"][0]), len(a["en"][0]) + 1
    split = change(client, rid, v, op="split", bead=m["id"], zh=at_zh, en=at_en).json()
    first, second = split["beads"]
    assert (first["zh"], first["en"]) == (a["zh"], a["en"])
    assert (second["zh"], second["en"]) == (b["zh"], b["en"])
    v = split["version"]

    # split inside a sentence: "anywhere"
    inside = change(client, rid, v, op="split", bead=first["id"], zh=3, en=None).json()
    assert inside["beads"][0]["zh"] == [a["zh"][0][:3]]
    assert inside["beads"][1]["zh"] == [a["zh"][0][3:]] and inside["beads"][1]["en"] == []
    v = change(client, rid, inside["version"], op="undo").json()["version"]

    moved = change(client, rid, v, op="move", bead=second["id"], side="en", to="prev").json()
    assert moved["removed"] == 2
    assert moved["beads"][0]["en"] == a["en"] + b["en"] and moved["beads"][1]["en"] == []
    v = moved["version"]
    lone_zh = moved["beads"][1]

    unpaired = change(client, rid, v, op="unpair", bead=moved["beads"][0]["id"]).json()
    zh_only, en_only = unpaired["beads"]
    assert zh_only["en"] == [] and en_only["zh"] == []
    v = unpaired["version"]
    paired = change(client, rid, v, op="pair", bead=en_only["id"], **{"with": lone_zh["id"]})
    assert paired.status_code == 200, paired.text
    assert paired.json()["beads"][0]["zh"] == b["zh"]
    v = paired.json()["version"]

    edited = change(client, rid, v, op="edit", bead=zh_only["id"], side="en",
                    text="A corrected sentence. And a second one.").json()
    assert edited["beads"][0]["en"] == ["A corrected sentence.", "And a second one."]
    v = edited["version"]
    undone = change(client, rid, v, op="undo").json()
    assert undone["beads"][0]["en"] == [] and undone["beads"][0]["id"] == zh_only["id"]
    redone = change(client, rid, undone["version"], op="redo").json()
    assert redone["beads"][0]["en"] == ["A corrected sentence.", "And a second one."]

    # the server state is what the splices say (a reload sees the same)
    reloaded = client.get(f"/reviews/{rid}").json()
    assert reloaded["version"] == redone["version"]
    ids = [x["id"] for x in reloaded["beads"]]
    assert redone["beads"][0]["id"] in ids and a["id"] not in ids
    assert reloaded["history"]["edits"] >= 6


def test_status_and_confirm_turn_and_doubtful_counts(opened):
    client, rid, state = opened
    pair = next(b for b in state["beads"] if b["zh"] and b["en"])
    lone = next((b for b in state["beads"] if not (b["zh"] and b["en"])), None)
    v = state["version"]
    out = change(client, rid, v, op="status", bead=pair["id"], status="confirmed").json()
    assert out["beads"][0]["status"] == "confirmed" and out["summary"]["confirmed"] == 1
    v = out["version"]
    if lone is not None:
        refused = change(client, rid, v, op="status", bead=lone["id"], status="confirmed")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_paired"
    section = state["beads"][-1]["section"]
    turn = change(client, rid, v, op="confirm_turn", section=section).json()
    assert all(b["status"] == "confirmed" for b in turn["beads"] if b["zh"] and b["en"])
    assert all(b["section"] == section for b in turn["beads"])


def test_two_tabs_and_bad_changes_save_nothing(opened):
    client, rid, state = opened
    pair = next(b for b in state["beads"] if b["zh"] and b["en"])
    v = state["version"]
    first = change(client, rid, v, op="status", bead=pair["id"], status="rejected")
    assert first.status_code == 200
    stale = change(client, rid, v, op="merge", bead=pair["id"])  # the other tab, same version
    assert stale.status_code == 409
    err = stale.json()["error"]
    assert err["code"] == "review_changed" and "reload" in err["message"]

    now = client.get(f"/reviews/{rid}").json()
    pasted = change(client, rid, now["version"], op="edit", bead=now["beads"][0]["id"],
                    side="en", text="x" * 100_000)
    assert pasted.status_code == 422
    assert pasted.json()["error"]["code"] == "segment_too_long"
    assert "Nothing was saved" in pasted.json()["error"]["message"]
    after = client.get(f"/reviews/{rid}").json()
    assert after["version"] == now["version"] and after["beads"] == now["beads"]
    for bad in ({"op": "merge", "bead": 10**9}, {"op": "split", "bead": pair["id"], "zh": 10**6},
                {"op": "fly", "bead": pair["id"]}):
        answer = change(client, rid, now["version"], **bad)
        assert answer.status_code in (404, 409, 422), answer.text
        assert "Traceback" not in answer.text
    assert client.get(f"/reviews/{rid}").json()["version"] == now["version"]


def test_finish_writes_reviewed_tmx_and_feeds_the_memory(opened, tmp_path):
    client, rid, state = opened
    pair = next(b for b in state["beads"] if len(b["zh"]) == 1 and b["en"])
    out = change(client, rid, state["version"], op="edit", bead=pair["id"], side="en",
                 text="The Council reviewed this sentence carefully.").json()
    edited = out["beads"][0]  # an edit makes a new pair (new id) in the old one's place
    v = change(client, rid, out["version"], op="status", bead=edited["id"],
               status="confirmed").json()["version"]
    refused = client.post(f"/reviews/{rid}/finish", json={"version": v})
    assert refused.status_code == 401
    done = client.post(f"/reviews/{rid}/finish", json={"version": v}, headers=AUTH)
    assert done.status_code == 200, done.text
    assert done.json()["confirmed"] == 1 and done.json()["imported"]["imported"] == 1
    tmx = client.get(f"/reviews/{rid}/tmx")
    path = tmp_path / "r.tmx"
    path.write_bytes(tmx.content)
    (unit,) = list(read_tmx(path))
    assert unit.target == "The Council reviewed this sentence carefully."
    assert unit.props["x-reviewed"] == "yes" and unit.props["x-reviewer"] == "env"
    assert unit.props["x-document"] == "S/PV.8017" and unit.props["x-review-date"]
    found = client.post("/tm/lookup", json={"text": unit.source, "source_lang": "zh"}).json()
    assert found["matches"][0]["target"] == unit.target


def _sheet_bytes(book: Workbook) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_spreadsheet_round_trip_and_bad_sheets(opened):
    client, rid, state = opened
    xlsx = client.get(f"/reviews/{rid}/sheet?format=xlsx")
    assert xlsx.status_code == 200
    book = load_workbook(io.BytesIO(xlsx.content))
    rows = book["review"]
    assert [c.value for c in rows[1]] == ["pair", "turn", "speaker", "zh", "en", "score", "status"]
    rows.cell(row=2, column=5, value="Edited in Excel.")
    rows.cell(row=3, column=7, value="rejected")

    def send(content: bytes, name: str = "r.xlsx"):
        return client.post(f"/reviews/{rid}/sheet", files={"file": (name, content)},
                           headers=AUTH)

    # rows removed: refused, nothing changed
    short = load_workbook(io.BytesIO(xlsx.content))
    short["review"].delete_rows(4)
    answer = send(_sheet_bytes(short))
    assert answer.status_code == 422 and "missing" in answer.json()["error"]["message"]
    longer = load_workbook(io.BytesIO(xlsx.content))
    longer["review"].append(["", "", "", "新句子", "New row", "", "pending"])
    answer = send(_sheet_bytes(longer))
    assert answer.status_code == 422 and "added" in answer.json()["error"]["message"]
    foreign = Workbook()
    foreign.active.append(["Source", "Target"])
    answer = send(_sheet_bytes(foreign))
    assert answer.status_code == 422 and "not exported by Concordia" in answer.text
    assert send(b"not a sheet at all", "x.xlsx").status_code == 422
    assert client.get(f"/reviews/{rid}").json()["version"] == state["version"]

    good = send(_sheet_bytes(book))
    assert good.status_code == 200, good.text
    assert good.json()["changed"] == 2
    now = client.get(f"/reviews/{rid}").json()
    assert now["beads"][0]["en"] == ["Edited in Excel."]
    assert now["beads"][1]["status"] == "rejected"
    # the same sheet again is stale now
    again = send(_sheet_bytes(book))
    assert again.status_code == 409 and "export it again" in again.json()["error"]["message"]

    tsv = client.get(f"/reviews/{rid}/sheet?format=tsv").content.decode()
    lines = tsv.split("\n")
    assert lines[0].startswith(f"# concordia review {rid} version ")
    cells = lines[2].split("\t")
    cells[4] = "Edited in a text editor."
    lines[2] = "\t".join(cells)
    back = send("\n".join(lines).encode(), "r.tsv")
    assert back.status_code == 200, back.text
    assert client.get(f"/reviews/{rid}").json()["beads"][0]["en"] == ["Edited in a text editor."]
    undone = change(client, rid, back.json()["version"], op="undo").json()
    assert undone["beads"][0]["en"] == ["Edited in Excel."]


def test_login_cookie_needs_csrf_and_a_current_key(opened):
    client, rid, state = opened
    pair = state["beads"][0]
    body = {"version": state["version"], "op": "status", "bead": pair["id"],
            "status": "rejected"}
    anonymous = TestClient(client.app)
    assert anonymous.post(f"/reviews/{rid}/changes", json=body).status_code == 401
    anonymous.cookies.set("concordia_session", client.app.state.sessions.open(KEY))
    no_token = anonymous.post(f"/reviews/{rid}/changes", json=body)
    assert no_token.status_code == 403 and no_token.json()["error"]["code"] == "csrf_failed"
    anonymous.cookies.set("concordia_csrf", "tok-1")
    wrong = anonymous.post(f"/reviews/{rid}/changes", json=body,
                           headers={"X-CSRF-Token": "tok-2"})
    assert wrong.status_code == 403
    ok = anonymous.post(f"/reviews/{rid}/changes", json=body, headers={"X-CSRF-Token": "tok-1"})
    assert ok.status_code == 200, ok.text
    anonymous.cookies.set("concordia_session", "an-old-session")  # ended, or never was
    body["version"] += 1
    expired = anonymous.post(f"/reviews/{rid}/changes", json=body,
                             headers={"X-CSRF-Token": "tok-1"})
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "session_ended"


def test_review_command_starts_the_service_and_prints_the_page(tmp_path):
    """``aligner review`` on the bundled sample: a service started in the background, the
    editor's address printed, and that page serving the review."""
    import json
    import os
    import re
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    samples = Path(__file__).resolve().parents[1] / "aligner" / "samples"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "CONCORDIA_API_KEY"}
    env.update(CONCORDIA_ENCODER="none", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(
        [sys.executable, "-m", "aligner", "review", str(samples / "meeting.zh.txt"),
         str(samples / "meeting.en.txt"), "--port", str(port), "--data", str(tmp_path / "d")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    pid = re.search(r"process (\d+)", done.stdout)
    try:
        assert done.returncode == 0, done.stderr
        assert re.search(r"log in on the page with this key: \S+", done.stdout)
        url = re.search(r"review: (http://127\.0\.0\.1:\d+/review/\S+)", done.stdout).group(1)
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and b'id="editor"' in page.read()
        counts = re.search(r"(\d+) pairs: (\d+) doubtful \(score below 0.5\), (\d+) unpaired "
                           r"sentences", done.stdout)
        assert counts, done.stdout
        api = url.replace("/review/", "/reviews/")
        with urllib.request.urlopen(api, timeout=10) as answer:
            summary = json.load(answer)["summary"]
        assert tuple(map(int, counts.groups())) == (
            summary["beads"], summary["doubtful"], summary["unpaired"])
    finally:
        if pid:
            os.kill(int(pid.group(1)), signal.SIGTERM)


def test_open_a_pair_of_a_finished_job(service):
    """A job's pair, listed on the job's review page, opens for review from its inputs."""
    import time

    from lxml import html

    samples = Path(__file__).resolve().parents[1] / "aligner" / "samples"
    files = [("files", (f"m.{lang}.txt", (samples / f"meeting.{lang}.txt").read_bytes()))
             for lang in ("zh", "en")]
    manifest = ("manifest", ("manifest.csv", b"id,zh,en,symbol\nmeet,m.zh.txt,m.en.txt,S/PV.1\n"))
    job = service.post("/jobs", files=[manifest, *files], headers=AUTH)
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    assert service.post(f"/reviews/from-job/{job_id}/meet", headers=AUTH).status_code in (
        409, 201)  # 409 while it runs
    for _ in range(600):
        if service.get(f"/jobs/{job_id}").json()["state"] == "done":
            break
        time.sleep(0.2)
    page = html.fromstring(service.get(f"/review?job={job_id}").text)
    button = page.cssselect("button[data-review-job]")
    assert not button  # the anonymous page has no write key: no button
    client = TestClient(service.app)
    client.headers.update(AUTH)
    page = html.fromstring(client.get(f"/review?job={job_id}").text)
    button = page.cssselect("button[data-review-job]")[0]
    assert button.get("data-review-pair") == "meet"
    opened = service.post(f"/reviews/from-job/{job_id}/meet", headers=AUTH)
    assert opened.status_code == 201, opened.text
    state = service.get(opened.json()["api"]).json()
    assert state["name"] == "S/PV.1" and state["origin"] == f"job:{job_id}/meet"
    assert len([b for b in state["beads"] if b["zh"] and b["en"]]) >= 15
    missing = service.post(f"/reviews/from-job/{job_id}/nope", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "pair_not_found"


def test_state_is_the_same_across_snapshots(opened):
    """Changes are journalled and folded into a snapshot every SNAPSHOT_EVERY: a client that
    applies the answered splices sees exactly what the server keeps, before and after."""
    from service.review.model import SNAPSHOT_EVERY

    client, rid, state = opened
    mirror = list(state["beads"])
    v = state["version"]
    paired = [i for i, b in enumerate(mirror) if b["zh"] and b["en"]]
    for n in range(SNAPSHOT_EVERY + 15):
        i = paired[n % len(paired)]
        op = ({"op": "undo"} if n % 7 == 6 else
              {"op": "status", "bead": mirror[i]["id"],
               "status": ("confirmed", "rejected", "pending")[n % 3]})
        out = change(client, rid, v, **op).json()
        mirror[out["start"] : out["start"] + out["removed"]] = out["beads"]
        v = out["version"]
        if n in (SNAPSHOT_EVERY - 3, SNAPSHOT_EVERY + 14):
            assert client.get(f"/reviews/{rid}").json()["beads"] == mirror


def test_a_review_holds_the_units_the_aligner_paired(shared_data):
    """Issue 19: a Chinese sentence cut at ``；`` where the English makes two sentences comes
    into the review as the aligner paired it (S/PV.10124: ``…难民；`` / ``…globally.``)."""
    from aligner.align.embed import load_encoder
    from aligner.pipeline import align_documents
    from service.review.model import review_from_alignment

    un = shared_data / "un"
    zh = read_document(un / "S-PV-10124.part1.zh.txt")
    en = read_document(un / "S-PV-10124.part1.en.txt")
    result = align_documents(zh, en, encoder=load_encoder())
    cut = [p for p in result.pairs if p.zh == "全球仍有超过670万名来自乌克兰的难民；"]
    assert [p.en for p in cut] == ["There are still more than 6.7 million refugees from Ukraine "
                                   "globally."]
    review = review_from_alignment(zh, en, result)
    zh_units = [s for bead in review.beads for s in bead.zh]
    assert "全球仍有超过670万名来自乌克兰的难民；" in zh_units
    assert sum(len(bead.zh) for bead in review.beads) == result.sentences["zh"]
