"""``aligner review ZH EN``: open a document pair in the service's alignment editor.

The service aligns the pair and keeps the review; this command finds the service on
``--host``/``--port`` (its ``/health``), starts it there in the background when none answers
(``python -m service.web.app``, the same launcher as ``aligner serve``: the library never imports
the service), uploads the two documents and prints the editor's address. Writes need the key
in ``CONCORDIA_API_KEY``; a service started here with no key set gets a new one, printed to
log in with.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from aligner.errors import InputError

START_TIMEOUT_S = 120


def add_command(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser(
        "review",
        help="align two documents and open them in the browser's alignment editor",
        description="Align a Chinese document with its English version for review in the "
        "service's editor (started here when not running) and print the page's address.",
    )
    review.add_argument("zh", type=Path, help="Chinese document (.txt, .docx or .pdf)")
    review.add_argument("en", type=Path, help="English document (.txt, .docx or .pdf)")
    review.add_argument("--name", default="", help="document name kept with the units")
    review.add_argument("--mode", choices=("auto", "record", "plain"), default="auto")
    review.add_argument("--host", default="127.0.0.1")
    review.add_argument("--port", type=int, default=8000)
    review.add_argument("--data", type=Path, help="data folder of a service started here")
    review.set_defaults(func=run_review)


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _start_service(args: argparse.Namespace, key: str) -> subprocess.Popen:
    data = args.data or Path(os.environ.get("CONCORDIA_DATA_DIR", "data"))
    data.mkdir(parents=True, exist_ok=True)
    log = (data / "service.log").open("ab")
    argv = [sys.executable, "-m", "service.web.app", "--host", args.host, "--port", str(args.port),
            "--data", str(data), "--log-level", "warning"]
    env = {**os.environ, "CONCORDIA_API_KEY": key}
    return subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)


def _multipart(fields: dict[str, str], files: dict[str, Path]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f"{value}\r\n".encode())
    for name, path in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n')
        parts.append(head.encode() + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def run_review(args: argparse.Namespace) -> int:
    for path in (args.zh, args.en):
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    base = f"http://{args.host}:{args.port}"
    key = os.environ.get("CONCORDIA_API_KEY", "").strip()
    started = None
    if not _healthy(base):
        new_key = not key
        key = key or secrets.token_urlsafe(18)
        started = _start_service(args, key)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(base):
            if started.poll() is not None or time.monotonic() > deadline:
                raise InputError(f"the service did not start on {base}: see its log in the "
                                 "data folder (service.log)")
            time.sleep(0.3)
        print(f"started the service on {base} (process {started.pid}; stop it with "
              f"`kill {started.pid}`)")
        if new_key:
            print(f"log in on the page with this key: {key}")
    elif not key:
        raise InputError("a service is running there: set CONCORDIA_API_KEY to its write key")
    body, content_type = _multipart({"mode": args.mode, "name": args.name},
                                    {"zh": args.zh, "en": args.en})
    request = urllib.request.Request(base + "/reviews", data=body, method="POST",
                                     headers={"Content-Type": content_type, "X-API-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            review = json.load(answer)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise InputError(f"the service refused the pair: {message}") from None
    print(f"review: {base}{review['page']}")
    counts = review.get("summary")
    if counts:
        print(f"{counts['beads']} pairs: {counts['doubtful']} doubtful (score below "
              f"{review['min_score']}), {counts['unpaired']} unpaired sentences")
    return 0
