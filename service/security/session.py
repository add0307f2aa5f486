"""Who is asking, for pages and the fetches they make: the API key from the header, or a
login session from its cookie, and CSRF protection for everything a page changes.

Logging in with a key opens a server-side session: the cookie holds a random token, the
server keeps the token's SHA-256 with the key's SHA-256 and an expiry (``CONCORDIA_SESSION_HOURS``)
in ``sessions.sqlite`` in the data folder, shared by the server's workers. Logging out deletes
the session, so a copied cookie stops working at once; so does revoking or changing the key
(the session names the key by its hash and the key is looked up on every request). The cookie
is ``HttpOnly``, ``SameSite=Strict``, and ``Secure`` when the browser used https (also behind
a reverse proxy listed in ``CONCORDIA_TRUSTED_PROXIES``).

A request that authenticates with the session and changes data must also carry the page's CSRF
token (header ``X-CSRF-Token`` or form field ``csrf``) equal to the ``concordia_csrf`` cookie: a
double-submitted token that another site can neither read nor set, given a new value at login.
API clients sending ``X-API-Key`` need no token (a browser never adds that header by itself).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from service.errors import ServiceError
from service.security.keys import (
    API_KEY_HEADER,
    KeyInfo,
    authorize,
    hash_key,
    keyring,
    permit,
)
from service.security.proxy import client_address, is_https

SESSION_COOKIE = "concordia_session"
CSRF_COOKIE = "concordia_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SESSIONS_DB = "sessions.sqlite"
MAX_SESSIONS_PER_KEY = 100  # logins kept per key (the oldest end beyond)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Login sessions: token hash → key hash, until they expire or are ended."""

    def __init__(self, path: Path, hours: float):
        self.path = Path(path)
        self.seconds = hours * 3600
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS session (token TEXT PRIMARY KEY, key TEXT NOT NULL, "
                "expires REAL NOT NULL)"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def open(self, key: str) -> str:
        """A new session for ``key`` (already checked); its token, for the cookie."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._conn() as conn:
            conn.execute("DELETE FROM session WHERE expires < ?", (now,))
            conn.execute("INSERT INTO session VALUES (?, ?, ?)",
                         (_digest(token), hash_key(key), now + self.seconds))
            conn.execute(
                "DELETE FROM session WHERE key = ? AND token NOT IN (SELECT token FROM session "
                "WHERE key = ? ORDER BY expires DESC LIMIT ?)",
                (hash_key(key), hash_key(key), MAX_SESSIONS_PER_KEY),
            )
        return token

    def key_of(self, token: str) -> str | None:
        """The SHA-256 of the session's key, or None when it has ended or expired."""
        row = self._conn().execute(
            "SELECT key FROM session WHERE token = ? AND expires >= ?",
            (_digest(token), time.time()),
        ).fetchone()
        return row[0] if row else None

    def end(self, token: str) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM session WHERE token = ?", (_digest(token),))


def sessions(request: Request) -> SessionStore:
    """The application's session store (``create_app`` puts it on ``app.state.sessions``)."""
    return request.app.state.sessions


def session_key(request: Request) -> tuple[KeyInfo | None, bool]:
    """The key of the request's login session, and whether a session cookie came at all
    (a cookie whose session ended gives ``(None, True)``)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None, False
    digest = sessions(request).key_of(token)
    return (keyring(request).find_digest(digest) if digest else None), True


def csrf_token(request: Request) -> str:
    """The token pages put in their forms and fetches (the cookie's, or a new one)."""
    token = getattr(request.state, "new_csrf", None) or request.cookies.get(CSRF_COOKIE)
    if not token:
        token = request.state.new_csrf = secrets.token_urlsafe(24)
    return token


def set_cookies(request: Request, response, session: str | None = None) -> None:
    """Set the CSRF cookie a page's token needs, and the session cookie after a login
    (with a new CSRF token: one seen before the login is worth nothing after it)."""
    secure = is_https(request)
    if session is not None:
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict",
                            secure=secure)
        request.state.new_csrf = secrets.token_urlsafe(24)
    new = getattr(request.state, "new_csrf", None)
    if new:
        response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="strict", secure=secure)


def check_csrf(request: Request, sent: str | None) -> None:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise ServiceError(
            403,
            "csrf_failed",
            "the page's security token is missing or stale: reload the page and try again",
        )


def who(request: Request, scope: str) -> KeyInfo:
    """The caller if its key (header, or login session) has ``scope``; else a 401/403 error.

    A write by login session must also carry the page's CSRF token. A session that has ended
    counts as no key where the scope is open, and is refused (401 ``session_ended``) where not.
    """
    ring = keyring(request)
    header = request.headers.get(API_KEY_HEADER)
    info, from_cookie = (None, False) if header else session_key(request)
    if not from_cookie:
        info = authorize(ring, header, scope, client=client_address(request))
    elif info is None:
        info = authorize(ring, None, scope) if scope in ring.open_scopes else None
        if info is None:
            raise ServiceError(401, "session_ended",
                               "your login has ended (logged out, expired or the key changed); "
                               "log in again")
    else:
        permit(ring, info, scope)
        if scope != "read":
            check_csrf(request, request.headers.get(CSRF_HEADER))
    request.state.key = info
    return info


# Declared so that the OpenAPI document shows these routes take the key in the header.
_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="an API key")


def require_read(request: Request, _: str | None = Security(_header)) -> KeyInfo:
    """Dependency: reads, by header key or login session, where reads are not open."""
    return who(request, "read")


def require_write(request: Request, _: str | None = Security(_header)) -> KeyInfo:
    """Dependency: a change, by header key, or by login session with the CSRF token."""
    return who(request, "write")

