"""Who is asking, for pages and the fetches they make: the API key from the header or from
the login cookie, and CSRF protection for everything a page changes.

The login form keeps the key in a session cookie (``HttpOnly``, ``SameSite=Strict``, no
expiry: it goes when the browser closes). A request that authenticates with that cookie and
changes data must also carry the page's CSRF token (header ``X-CSRF-Token`` or form field
``csrf``) equal to the ``concordia_csrf`` cookie: a double-submitted token that another site can
neither read nor set. API clients sending ``X-API-Key`` need no token (a browser never adds
that header by itself). The key itself is checked by ``service.security.keys.authorize`` on every
request, so a key changed or revoked on the server stops working at once ("expired").
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from service.errors import ServiceError
from service.security.keys import API_KEY_HEADER, KeyInfo, authorize, keyring

KEY_COOKIE = "concordia_key"
CSRF_COOKIE = "concordia_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"


def sent_key(request: Request) -> tuple[str | None, bool]:
    """The key sent, and whether it came from the login cookie."""
    header = request.headers.get(API_KEY_HEADER)
    if header:
        return header, False
    cookie = request.cookies.get(KEY_COOKIE)
    return cookie or None, bool(cookie)


def csrf_token(request: Request) -> str:
    """The token pages put in their forms and fetches (the cookie's, or a new one)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token:
        token = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(24)
        request.state.new_csrf = token
    return token


def set_cookies(request: Request, response, key: str | None = None) -> None:
    """Set the CSRF cookie a page's token needs, and the key cookie after a login."""
    secure = request.url.scheme == "https"
    new = getattr(request.state, "new_csrf", None)
    if new:
        response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="strict", secure=secure)
    if key is not None:
        response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict", secure=secure)


def check_csrf(request: Request, sent: str | None) -> None:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise ServiceError(
            403,
            "csrf_failed",
            "the page's security token is missing or stale: reload the page and try again",
        )


def who(request: Request, scope: str) -> KeyInfo:
    """The caller if its key (header or login cookie) has ``scope``; else a 401/403 error.

    A write by login cookie must also carry the page's CSRF token.
    """
    key, from_cookie = sent_key(request)
    info = authorize(keyring(request), key, scope)
    if from_cookie and scope != "read":
        check_csrf(request, request.headers.get(CSRF_HEADER))
    request.state.key = info
    return info


# Declared so that the OpenAPI document shows these routes take the key in the header.
_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="an API key")


def require_read(request: Request, _: str | None = Security(_header)) -> KeyInfo:
    """Dependency: reads, by header key or login cookie, where reads are not open."""
    return who(request, "read")


def require_write(request: Request, _: str | None = Security(_header)) -> KeyInfo:
    """Dependency: a change, by header key, or by login cookie with the CSRF token."""
    return who(request, "write")
