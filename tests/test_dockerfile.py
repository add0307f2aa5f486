"""The Dockerfile, checked without a Docker engine: what it copies exists and is not ignored,
its settings are the documented ones, and its CMD and HEALTHCHECK run the real service."""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PORT = "8000"
DATA = "/data"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result, pending = [], ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def first(keyword: str) -> str:
    found = [args for key, args in instructions() if key == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def ignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    return any(
        fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(parts[0], pattern) for pattern in patterns
    )


def env_of_image() -> dict[str, str]:
    env = {}
    for key, args in instructions():
        if key == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def test_copied_files_exist_and_reach_the_build_context():
    sources = []
    for key, args in instructions():
        if key == "COPY":
            words = shlex.split(args)
            assert not any(w.startswith("--from") for w in words)
            sources += words[:-1]
    assert sources, "the Dockerfile copies nothing"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not ignored(source), f"COPY {source}: excluded by .dockerignore"
    # pip install . needs every file pyproject.toml names, and both packages
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["readme"] in sources
    assert {"pyproject.toml", "constraints.txt", "aligner", "service"} <= set(sources)


def test_image_settings():
    base = first("FROM")
    assert base.startswith("python:3.11-slim")
    user = first("USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    assert DATA in exec_form(first("VOLUME"))
    assert first("EXPOSE").split() == [PORT]
    assert env_of_image()["CONCORDIA_DATA_DIR"] == DATA
    install = " ".join(args for key, args in instructions() if key == "RUN")
    # dependencies come from pyproject.toml, at the versions the tests passed with
    assert "pip install -c constraints.txt . " in install
    assert "torch" not in install  # the default image needs no torch
    healthcheck = first("HEALTHCHECK")
    assert "/health" in healthcheck and "curl" not in healthcheck


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _localised(command: list[str], port: int, data: Path) -> list[str]:
    """The image's command with only the host, port and data folder changed for this machine."""
    swap = {"0.0.0.0": "127.0.0.1", PORT: str(port), DATA: str(data)}
    return [swap.get(word, word.replace(f":{PORT}/", f":{port}/")) for word in command]


def test_cmd_starts_the_service_and_healthcheck_passes(tmp_path):
    command = exec_form(first("CMD"))
    assert command[:2] == ["aligner", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == PORT
    assert command[command.index("--data") + 1] == DATA
    script = Path(sys.executable).parent / "aligner"  # installed by pip install -e .
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "aligner"]
    port = _free_port()
    data = tmp_path / "data"
    env = {**os.environ}
    for name, value in env_of_image().items():
        env[name] = value.replace(DATA, str(data))
    run = launcher + _localised(command, port, data)[1:]
    process = subprocess.Popen(
        run, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    status = r.status
                    break
            except OSError:
                time.sleep(0.3)
        if status is None:
            process.terminate()
            pytest.fail(f"the service did not answer /health:\n{process.communicate()[0]}")
        assert status == 200
        healthcheck = first("HEALTHCHECK")
        probe = _localised(exec_form(healthcheck[healthcheck.index("CMD") + 3 :]), port, data)
        assert probe[0] == "python"
        probe[0] = sys.executable
        assert subprocess.run(probe, timeout=30).returncode == 0
        assert data.is_dir()  # the service made its data folder where --data said
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_stopping_and_starting_fit_docker():
    """Docker kills a container 10 s after SIGTERM: the documented run gives the shutdown save
    60 s; the health check waits for a large memory's first start; the image's user is named
    where a bind-mounted /data must be writable."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    readme = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")  # Docker's section
    assert "--stop-timeout 60" in text and "--stop-timeout 60" in readme
    assert "stop_grace_period: 60s" in readme
    healthcheck = first("HEALTHCHECK")
    period = healthcheck.split("--start-period=")[1].split()[0]
    assert period.endswith("s") and int(period[:-1]) >= 300
    install = " ".join(args for key, args in instructions() if key == "RUN")
    uid = install.split("--uid ")[1].split()[0]
    assert f"uid {uid}" in text and f"uid {uid}" in readme
