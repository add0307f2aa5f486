"""API keys with scopes, from a file re-read when it changes; the settings registry."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aligner.models import TranslationUnit
from aligner.tmx import write_tmx
from service.config import REGISTRY, ConfigError, Settings, markdown_table
from service.errors import ServiceError
from service.security.keys import (
    KeyRing,
    KeysFileError,
    authorize,
    hash_key,
    main,
    read_keys_file,
)
from service.web.app import create_app

ROOT = Path(__file__).resolve().parents[1]


def keys_file(path: Path, entries: dict[str, tuple[str, list[str]]]) -> Path:
    lines = []
    for name, (key, scopes) in entries.items():
        quoted = ", ".join(f'"{s}"' for s in scopes)
        lines += [f"[keys.{name}]", f"scopes = [{quoted}]", f'sha256 = "{hash_key(key)}"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def tmx_upload(tmp_path: Path) -> dict:
    path = tmp_path / "one.tmx"
    write_tmx(path, [TranslationUnit("你好。", "Hello.")])
    return {"file": ("one.tmx", path.read_bytes())}


def test_scoped_keys_from_a_file(tmp_path):
    path = keys_file(
        tmp_path / "keys.toml",
        {"translator": ("t-key-1", ["read"]), "pipeline": ("p-key-2", ["write"]),
         "boss": ("b-key-3", ["admin"])},
    )
    assert "t-key-1" not in path.read_text()  # hashed at rest
    settings = Settings(data_dir=tmp_path / "data", keys_file=path, open_reads=False,
                        encoder="none")
    with TestClient(create_app(settings)) as client:
        body = {"text": "Hello.", "source_lang": "en"}
        assert client.post("/tm/lookup", json=body).status_code == 401
        for key in ("t-key-1", "p-key-2", "b-key-3"):
            assert client.post("/tm/lookup", json=body, headers={"X-API-Key": key}).status_code \
                == 200
        translator = client.post("/tm/import", files=tmx_upload(tmp_path),
                                 headers={"X-API-Key": "t-key-1"})
        assert (translator.status_code, translator.json()["error"]["code"]) == (
            403, "insufficient_scope")
        assert "translator" in translator.json()["error"]["message"]
        pipeline = client.post("/tm/import", files=tmx_upload(tmp_path),
                               headers={"X-API-Key": "p-key-2"})
        assert pipeline.status_code == 202, pipeline.text  # the import job
        assert client.get("/admin/keys", headers={"X-API-Key": "p-key-2"}).status_code == 403
        listed = client.get("/admin/keys", headers={"X-API-Key": "b-key-3"}).json()["keys"]
        assert {k["name"]: k["scopes"] for k in listed}["translator"] == ["read"]
        assert hash_key("t-key-1") not in str(listed)


def test_a_key_is_revoked_without_restart(tmp_path):
    path = keys_file(tmp_path / "keys.toml",
                     {"a": ("key-a", ["write"]), "b": ("key-b", ["write"])})
    settings = Settings(data_dir=tmp_path / "data", keys_file=path, encoder="none")
    with TestClient(create_app(settings)) as client:
        def delete_as(key):
            return client.delete("/tm/units/1", headers={"X-API-Key": key}).status_code

        assert (delete_as("key-a"), delete_as("key-b")) == (404, 404)  # allowed, no such unit
        keys_file(path, {"b": ("key-b", ["write"])})
        os.utime(path, ns=(1, 1))  # a changed file even within one clock tick
        assert (delete_as("key-a"), delete_as("key-b")) == (403, 404)
        path.write_text("[keys.b\n")  # broken: every key of the file refused, none let in
        assert delete_as("key-b") == 403


def test_trailing_space_in_a_key_is_trimmed_everywhere(tmp_path):
    # HTTP drops the space from the header; the configured key must not keep it.
    settings = Settings(data_dir=tmp_path / "data", api_key="secret ", encoder="none")
    with TestClient(create_app(settings)) as client:
        answer = client.delete("/tm/units/1", headers={"X-API-Key": "secret "})
        assert answer.status_code == 404  # past the key check
    from_env = Settings.from_env({"CONCORDIA_API_KEY": "secret \n"})
    assert authorize(from_env, " secret", "admin").name == "env"
    ring = KeyRing(keys_file=keys_file(tmp_path / "k.toml", {"x": ("spaced ", ["read"])}))
    assert authorize(ring, "spaced", "read").name == "x"


def test_authorize_for_pages_and_forms(tmp_path):
    ring = KeyRing(keys_file=keys_file(tmp_path / "k.toml", {"t": ("tk", ["align"])}),
                   open_scopes=frozenset({"read"}))
    assert authorize(ring, None, "read").anonymous
    assert authorize(ring, "tk", "align").scopes == {"read", "align"}
    with pytest.raises(ServiceError) as missing:
        authorize(ring, "", "align")
    assert missing.value.status == 401
    with pytest.raises(ServiceError) as wrong:
        authorize(ring, "nope", "read")
    assert (wrong.value.status, wrong.value.code) == (403, "invalid_api_key")
    with pytest.raises(ServiceError) as disabled:
        authorize(KeyRing(), "x", "write")
    assert disabled.value.code == "writes_disabled"


def test_keys_file_errors_are_reported(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[keys.a]\nscopes = ["root"]\nsha256 = "' + "0" * 64 + '"\n')
    with pytest.raises(KeysFileError, match="unknown scope"):
        read_keys_file(bad)
    bad.write_text('[keys.a]\nscopes = ["read"]\nsha256 = "plain-key"\n')
    with pytest.raises(KeysFileError, match="64 hexadecimal"):
        KeyRing(keys_file=bad)


def test_add_command_appends_a_hashed_key(tmp_path, capsys):
    path = tmp_path / "keys.toml"
    assert main(["add", "translator", "--scopes", "read", "--file", str(path)]) == 0
    key = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    assert key not in path.read_text()
    assert authorize(KeyRing(keys_file=path), key, "read").name == "translator"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_add_command_scopes_names_and_printing(tmp_path, capsys):
    path = tmp_path / "keys.toml"
    assert main(["add", "pipe-line_2", "--scopes", " read, write ,", "--file", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"added key 'pipe-line_2' (read, write) to {path}"
    key = out[1].removeprefix("the key (shown once, keep it secret): ")
    assert len(key) == 32  # 24 random bytes
    info = authorize(KeyRing(keys_file=path), key, "write")
    assert (info.name, info.scopes) == ("pipe-line_2", frozenset({"read", "align", "write"}))
    assert main(["add", "reader", "--file", str(path)]) == 0  # read is the default scope
    reader = capsys.readouterr().out.splitlines()[1].rsplit(" ", 1)[-1]
    assert authorize(KeyRing(keys_file=path), reader, "read").name == "reader"
    with pytest.raises(ServiceError):
        authorize(KeyRing(keys_file=path), reader, "align")
    with pytest.raises(SystemExit, match="a key named 'reader' exists already"):
        main(["add", "reader", "--file", str(path)])
    with pytest.raises(SystemExit, match="letters, digits"):
        main(["add", "Bad name", "--file", str(path)])
    with pytest.raises(SystemExit, match="letters, digits"):
        main(["add", "naïve", "--file", str(path)])
    assert len(read_keys_file(path)) == 2  # nothing added by the refusals
    with pytest.raises(SystemExit):
        main([])  # a command is needed
    # without --file the entry is printed, ready to paste
    assert main(["add", "Boss", "--scopes", "admin"]) == 0
    printed = capsys.readouterr().out
    entry, shown = printed.split("\nthe key (shown once, keep it secret): ")
    assert entry.startswith('[keys.Boss]\nscopes = ["admin"]\nsha256 = "')
    assert hash_key(shown.strip()) in entry


def test_registry_is_the_settings_and_the_readme():
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert fields == {s.field for s in REGISTRY}
    defaults = Settings()
    for setting in REGISTRY:
        assert getattr(defaults, setting.field) == setting.default, setting.field
    readme = (ROOT / "docs" / "api.md").read_text()
    assert markdown_table() in readme, "docs/api.md's settings table: python -m service.config"
    with pytest.raises(ConfigError, match="CONCORDIA_MAX_HEAVY"):
        Settings.from_env({"CONCORDIA_MAX_HEAVY": "0"})
    assert Settings.from_env({"CONCORDIA_MAX_HEAVY": "3"}).max_heavy == 3
