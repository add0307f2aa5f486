"""API keys: named keys with scopes, hashed at rest, re-read when their file changes.

Scopes, each including the ones before it:

- ``read``: lookups, concordance, export, stats, job status;
- ``align``: ``POST /align`` and jobs that do not touch the memory (they cost CPU and memory);
- ``write``: imports, deletions, alignments and jobs that add to the memory;
- ``admin``: everything.

Keys come from ``CONCORDIA_KEYS_FILE``, a TOML file holding only each key's SHA-256::

    [keys.translator]
    scopes = ["read"]
    sha256 = "…"            # python -m service.security.keys add NAME --scopes read --file FILE

and ``CONCORDIA_API_KEY``, one key with every scope. The file is read again whenever it
changes, so a key is revoked by deleting its entry (or ``revoked = true``) without a restart;
a file that cannot be read refuses every key from it until it is fixed. Keys are trimmed of
surrounding white space, where they are configured and where they are sent (HTTP drops a
trailing space from a header value anyway).

Reads are open without a key unless ``CONCORDIA_OPEN_READS`` is false; ``/align`` only when
``CONCORDIA_OPEN_ALIGN`` is true. Wrong keys are slowed down per client and per key sent
(:mod:`service.security.throttle`): 429 with ``Retry-After``. Routes ask for a scope with
``Depends(require("write"))`` and get the caller's :class:`KeyInfo`; pages and forms check a
key with :func:`authorize`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from service.config import Settings
from service.errors import ServiceError
from service.security.proxy import client_address
from service.security.throttle import FailureThrottle

log = logging.getLogger("concordia.service")

API_KEY_HEADER = "X-API-Key"
SCOPES = ("read", "align", "write", "admin")
ANONYMOUS = "anonymous"
ENV_KEY_NAME = "env"  # the name of the CONCORDIA_API_KEY key

_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="an API key")


@dataclass(frozen=True)
class KeyInfo:
    """Who is calling: a key's name and what it may do (``anonymous`` for no key)."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def anonymous(self) -> bool:
        return self.name == ANONYMOUS


def scopes_up_to(scope: str) -> frozenset[str]:
    """A scope with those it includes: ``write`` → read, align, write."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    return frozenset(SCOPES[: SCOPES.index(scope) + 1])


def hash_key(key: str) -> str:
    """The SHA-256 (hex) a key is stored as; the key is trimmed first."""
    return hashlib.sha256(key.strip().encode()).hexdigest()


class KeysFileError(ValueError):
    """The keys file is not what ``KeyRing`` expects; the message says where."""


def read_keys_file(path: Path) -> dict[str, KeyInfo]:
    """``{sha256: KeyInfo}`` of the unrevoked keys in a keys file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KeysFileError(f"cannot read the keys file: {exc}") from None
    table = data.get("keys", {})
    if not isinstance(table, dict):
        raise KeysFileError("the keys file needs [keys.NAME] tables")
    keys = {}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise KeysFileError(f"key {name!r}: expected a table")
        if entry.get("revoked", False):
            continue
        digest = str(entry.get("sha256", "")).strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise KeysFileError(f"key {name!r}: sha256 must be 64 hexadecimal digits")
        scopes = entry.get("scopes", [])
        if isinstance(scopes, str):
            scopes = [scopes]
        granted: set[str] = set()
        for scope in scopes:
            try:
                granted |= scopes_up_to(str(scope))
            except ValueError as exc:
                raise KeysFileError(f"key {name!r}: {exc}") from None
        if not granted:
            raise KeysFileError(f"key {name!r}: no scopes")
        if digest in keys:
            raise KeysFileError(f"key {name!r}: same key as {keys[digest].name!r}")
        keys[digest] = KeyInfo(str(name), frozenset(granted))
    return keys


class KeyRing:
    """The configured keys and which scopes are open; re-reads the keys file when it changes."""

    def __init__(
        self,
        api_key: str | None = None,
        keys_file: Path | None = None,
        *,
        open_scopes: frozenset[str] = frozenset({"read"}),
    ):
        self.keys_file = Path(keys_file) if keys_file is not None else None
        self.open_scopes = open_scopes
        self._env: dict[str, KeyInfo] = {}
        if api_key and api_key.strip():
            self._env[hash_key(api_key)] = KeyInfo(ENV_KEY_NAME, frozenset(SCOPES))
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._file_keys: dict[str, KeyInfo] = {}
        self._file_error: str | None = None
        self.throttle = FailureThrottle()
        if self.keys_file is not None:
            self._refresh()
            if self._file_error:
                raise KeysFileError(f"{self.keys_file}: {self._file_error}")

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        opened = {"read"} if settings.open_reads else set()
        if settings.open_align:
            opened.add("align")
        return cls(settings.api_key, settings.keys_file, open_scopes=frozenset(opened))

    @property
    def configured(self) -> bool:
        """Whether any key can be accepted (else keyed scopes are disabled)."""
        return bool(self._env) or self.keys_file is not None

    def _refresh(self) -> None:
        """Read the keys file again if its size, time or inode changed."""
        assert self.keys_file is not None
        try:
            info = self.keys_file.stat()
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        except OSError as exc:
            stamp = ("missing", str(exc))
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                self._file_keys, self._file_error = read_keys_file(self.keys_file), None
            except KeysFileError as exc:
                self._file_keys, self._file_error = {}, str(exc)
                log.error("%s: %s; its keys are refused until it is fixed", self.keys_file, exc)
            self._stamp = stamp

    def find(self, sent: str) -> KeyInfo | None:
        """The key ``sent`` is, or None."""
        return self.find_digest(hash_key(sent))

    def find_digest(self, digest: str) -> KeyInfo | None:
        """The key whose SHA-256 is ``digest`` (a login session's), or None when it is gone."""
        if self.keys_file is not None:
            self._refresh()
        for table in (self._env, self._file_keys):
            for stored, info in table.items():
                if hmac.compare_digest(stored, digest):
                    return info
        return None

    def names(self) -> list[dict]:
        """Names and scopes of the keys (never their hashes), for administrators."""
        if self.keys_file is not None:
            self._refresh()
        infos = list(self._env.values()) + list(self._file_keys.values())
        return [{"name": i.name, "scopes": [s for s in SCOPES if s in i.scopes]} for i in infos]


_WHAT = {"read": "reads", "align": "alignments", "write": "writes", "admin": "administration"}


def _open_or_disabled(ring: KeyRing, scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    if not ring.configured and scope not in ring.open_scopes:
        what = _WHAT[scope]
        raise ServiceError(
            403,
            f"{what}_disabled",
            f"{what} are disabled: no API key is configured on the server "
            "(set CONCORDIA_API_KEY or CONCORDIA_KEYS_FILE)",
        )


def authorize(
    keys: KeyRing | Settings, sent: str | None, scope: str, *, client: str = ""
) -> KeyInfo:
    """Who ``sent`` is, if it may use ``scope``; raises a 401/403 ``ServiceError`` if not.

    No key (or a blank one) is ``anonymous``, allowed only where the operator opened the
    scope. A wrong key is refused even where no key is needed, so that a client learns it;
    after a few, the ``client`` (its address) and that key must wait (429).
    """
    ring = keys if isinstance(keys, KeyRing) else KeyRing.from_settings(keys)
    _open_or_disabled(ring, scope)
    sent = (sent or "").strip()
    if not sent:
        if scope in ring.open_scopes:
            return KeyInfo(ANONYMOUS, ring.open_scopes)
        raise ServiceError(
            401, "missing_api_key", f"{_WHAT[scope]} need an API key in {API_KEY_HEADER}"
        )
    digest = hash_key(sent)
    subjects = (f"client:{client}" if client else "", f"key:{digest}")
    ring.throttle.check(*subjects)
    info = ring.find_digest(digest)
    if info is None:
        ring.throttle.failed(*subjects)
        raise ServiceError(403, "invalid_api_key", f"the API key in {API_KEY_HEADER} is wrong")
    return permit(ring, info, scope)


def permit(ring: KeyRing, info: KeyInfo, scope: str) -> KeyInfo:
    """``info`` if its key may use ``scope``; else a 403 ``ServiceError``."""
    _open_or_disabled(ring, scope)
    what = _WHAT[scope]
    if not info.allows(scope):
        raise ServiceError(
            403, "insufficient_scope", f"key {info.name!r} may not do {what} (needs '{scope}')"
        )
    return info


def keyring(request: Request) -> KeyRing:
    """The application's key ring (``create_app`` puts it on ``app.state.keys``)."""
    ring = getattr(request.app.state, "keys", None)
    if ring is None:
        ring = request.app.state.keys = KeyRing.from_settings(request.app.state.settings)
    return ring


def require(scope: str) -> Callable[..., KeyInfo]:
    """A dependency that lets the request through if its key has ``scope``; gives the key."""
    scopes_up_to(scope)

    def dependency(request: Request, key: str | None = Security(_header)) -> KeyInfo:
        info = authorize(keyring(request), key, scope, client=client_address(request))
        request.state.key = info
        return info

    dependency.__name__ = f"require_{scope}"
    return dependency


def check_key(request: Request, scope: str) -> KeyInfo:
    """The same check inside a route, when the scope depends on the request's fields."""
    info = authorize(keyring(request), request.headers.get(API_KEY_HEADER), scope,
                     client=client_address(request))
    request.state.key = info
    return info


require_read_access = require("read")
require_align_key = require("align")
require_write_key = require("write")
require_admin_key = require("admin")


def _add_key(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", args.name):
        raise SystemExit("a key name is letters, digits, '_' and '-'")
    key = secrets.token_urlsafe(24)
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    for scope in scopes:
        scopes_up_to(scope)
    entry = (
        f"\n[keys.{args.name}]\nscopes = {scopes!r}\nsha256 = \"{hash_key(key)}\"\n"
    ).replace("'", '"')
    if args.file is None:
        print(entry.strip())
    else:
        existing = read_keys_file(args.file) if args.file.exists() else {}
        if any(info.name == args.name for info in existing.values()):
            raise SystemExit(f"{args.file}: a key named {args.name!r} exists already")
        with args.file.open("a", encoding="utf-8") as handle:
            handle.write(entry)
        os.chmod(args.file, 0o600)
        print(f"added key {args.name!r} ({', '.join(scopes)}) to {args.file}")
    print(f"the key (shown once, keep it secret): {key}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m service.security.keys add NAME --scopes read[,…] [--file keys.toml]``."""
    parser = argparse.ArgumentParser(prog="python -m service.security.keys")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="make a new key and append its hash to a keys file")
    add.add_argument("name")
    add.add_argument("--scopes", default="read", help=f"comma-separated, of {', '.join(SCOPES)}")
    add.add_argument("--file", type=Path, help="keys file to append to (else printed)")
    args = parser.parse_args(argv)
    return _add_key(args)


if __name__ == "__main__":
    raise SystemExit(main())
