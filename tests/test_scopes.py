"""Who may do what, over HTTP: every API route against no key and a read, align, write and
admin key, with reads closed; then the defaults (open reads) and ``CONCORDIA_OPEN_ALIGN``.

Each request is one the route would act on once let through (empty documents, a file that is
no TMX, ids that do not exist), so a key that is let through gets the route's own answer
(400, 404, ...) and nothing heavy runs. A route added to the app without a row here fails
``test_every_route_is_in_the_matrix``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.security.keys import hash_key
from service.web.app import create_app

SCOPES = ("read", "align", "write", "admin")
KEYS = {scope: f"{scope}-key-0123456789" for scope in SCOPES}
EMPTY_DOCS = {"zh": ("a.zh.txt", b""), "en": ("a.en.txt", b"")}
NOT_TMX = {"file": ("x.tmx", b"not a tmx file")}

# (method, path as the app declares it, the request made, the scope it needs)
ROUTES: list[tuple[str, str, dict, str]] = [
    ("POST", "/tm/lookup", {"json": {"text": "Hello.", "source_lang": "en"}}, "read"),
    ("GET", "/tm/concordance", {"params": {"term": "Hello"}}, "read"),
    ("GET", "/tm/export", {}, "read"),
    ("GET", "/tm/stats", {}, "read"),
    ("GET", "/tm/imports", {}, "read"),
    ("GET", "/tm/imports/{import_id}", {"url": "/tm/imports/99"}, "read"),
    ("GET", "/tm/units/{unit_id}", {"url": "/tm/units/99"}, "read"),
    ("POST", "/tm/import", {"files": NOT_TMX}, "write"),
    ("PATCH", "/tm/units/{unit_id}", {"url": "/tm/units/99", "json": {"version": 1, "en": "x"}},
     "write"),
    ("POST", "/tm/units/{unit_id}/usage", {"url": "/tm/units/99/usage"}, "write"),
    ("DELETE", "/tm/units/{unit_id}", {"url": "/tm/units/99"}, "write"),
    ("DELETE", "/tm/units", {"params": {"document": "no such document"}}, "write"),
    ("POST", "/align", {"files": EMPTY_DOCS}, "align"),
    ("POST", "/align", {"files": EMPTY_DOCS, "data": {"add_to_memory": "true"}}, "write"),
    ("POST", "/jobs", {"files": {"file": ("j.zip", b"")}, "data": {"mode": "bad"}}, "align"),
    ("POST", "/jobs", {"files": {"file": ("j.zip", b"")},
                       "data": {"mode": "bad", "add_to_memory": "true"}}, "write"),
    ("GET", "/jobs/{job_id}", {"url": "/jobs/nojob"}, "read"),
    ("GET", "/jobs/{job_id}/tmx", {"url": "/jobs/nojob/tmx"}, "read"),
    ("DELETE", "/jobs/{job_id}", {"url": "/jobs/nojob"}, "align"),
    ("POST", "/reviews", {"files": EMPTY_DOCS}, "write"),
    ("POST", "/reviews/from-job/{job_id}/{pair_id}", {"url": "/reviews/from-job/nojob/p"},
     "write"),
    ("GET", "/reviews", {}, "read"),
    ("GET", "/reviews/{review_id}", {"url": "/reviews/norev"}, "read"),
    ("POST", "/reviews/{review_id}/changes",
     {"url": "/reviews/norev/changes", "json": {"version": 1, "op": "undo"}}, "write"),
    ("POST", "/reviews/{review_id}/finish",
     {"url": "/reviews/norev/finish", "json": {"version": 1, "reviewer": "me"}}, "write"),
    ("GET", "/reviews/{review_id}/tmx", {"url": "/reviews/norev/tmx"}, "read"),
    ("GET", "/reviews/{review_id}/sheet", {"url": "/reviews/norev/sheet"}, "read"),
    ("POST", "/reviews/{review_id}/sheet",
     {"url": "/reviews/norev/sheet", "files": {"file": ("s.tsv", b"x")}}, "write"),
    ("DELETE", "/reviews/{review_id}", {"url": "/reviews/norev"}, "write"),
    ("GET", "/admin/keys", {}, "admin"),
    ("GET", "/health", {}, "none"),
]


def _keys_file(path: Path) -> Path:
    lines = []
    for scope, key in KEYS.items():
        lines += [f"[keys.{scope}er]", f'scopes = ["{scope}"]', f'sha256 = "{hash_key(key)}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _client(tmp: Path, **settings) -> TestClient:
    config = Settings(data_dir=tmp / "data", keys_file=_keys_file(tmp / "keys.toml"),
                      encoder="none", **settings)
    return TestClient(create_app(config), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def closed(tmp_path_factory):
    """A service whose reads need a key too."""
    with _client(tmp_path_factory.mktemp("scopes"), open_reads=False) as client:
        yield client


def _send(client: TestClient, method: str, path: str, request: dict, key: str | None):
    request = dict(request)
    url = request.pop("url", path)
    headers = {"X-API-Key": key} if key else {}
    return client.request(method, url, headers=headers, **request)


def _allowed(needed: str, scope: str | None) -> bool:
    if needed == "none":
        return True
    if scope is None:
        return False
    return SCOPES.index(scope) >= SCOPES.index(needed)


def _row_id(row) -> str:
    method, path, request, needed = row
    return f"{method} {path} ({needed})"


def test_every_route_is_in_the_matrix(closed):
    declared = {
        (method.upper(), path)
        for path, item in closed.app.openapi()["paths"].items()
        for method in item
    }
    assert declared == {(method, path) for method, path, _, _ in ROUTES}


@pytest.mark.parametrize("row", ROUTES, ids=_row_id)
@pytest.mark.parametrize("scope", [None, *SCOPES], ids=lambda s: s or "no key")
def test_scope_matrix(closed, row, scope):
    method, path, request, needed = row
    answer = _send(closed, method, path, request, KEYS.get(scope))
    if _allowed(needed, scope):
        assert answer.status_code not in (401, 403), answer.text
        assert answer.status_code < 500, answer.text
    elif scope is None:
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == "missing_api_key"
    else:
        assert answer.status_code == 403, answer.text
        error = answer.json()["error"]
        assert error["code"] == "insufficient_scope"
        assert f"needs '{needed}'" in error["message"]


def test_a_wrong_key_is_refused_even_where_none_is_needed(closed):
    answer = closed.get("/tm/stats", headers={"X-API-Key": "not-a-key"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "invalid_api_key")


@pytest.mark.parametrize(
    "open_align, expected",
    [(False, {"read": True, "align": False, "write": False}),
     (True, {"read": True, "align": True, "write": False})],
    ids=["defaults", "CONCORDIA_OPEN_ALIGN"],
)
def test_what_anonymous_callers_may_do(tmp_path, open_align, expected):
    """Reads are open by default; ``CONCORDIA_OPEN_ALIGN`` opens alignments, never writes
    (an alignment into the memory still needs a write key)."""
    with _client(tmp_path, open_align=open_align) as client:
        for method, path, request, needed in ROUTES:
            if needed not in expected:
                continue
            answer = _send(client, method, path, request, None)
            if expected[needed]:
                assert answer.status_code not in (401, 403), (path, needed, answer.text)
            else:
                assert answer.status_code == 401, (path, needed, answer.text)
