"""Who is asking, for pages and the fetches they make: the API key from the header or from
the login cookie, and CSRF protection for everything a page changes.

The login form keeps the key in a session cookie (``HttpOnly``, ``SameSite=Strict``, no
expiry: it goes when the browser closes). A request that authenticates with that cookie and
changes data must also carry the page's CSRF token (header ``X-CSRF-Token`` or form field
``csrf``) equal to the ``concordia_csrf`` cookie: a double-submitted token that another site can
neither read nor set. API clients sending ``X-API-Key`` need no token (a browser never adds
that header by itself). The key itself is checked by ``service.security`` on every request, so
a key changed or revoked on the server stops working at once ("expired").
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

from service.errors import ServiceError
from service.security import API_KEY_HEADER, check_key

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


def can_read(request: Request) -> bool:
    """Whether reads are allowed to this request (open, or a valid key)."""
    settings = request.app.state.settings
    if settings.open_reads:
        return True
    key, _ = sent_key(request)
    try:
        check_key(settings, key, "reads")
    except ServiceError:
        return False
    return True


def require_read(request: Request) -> None:
    """Dependency: reads, by header key or login cookie, when reads are closed."""
    settings = request.app.state.settings
    if not settings.open_reads:
        key, _ = sent_key(request)
        check_key(settings, key, "reads")


def require_write(request: Request) -> str:
    """Dependency: a write by header key, or by login cookie with the CSRF token.

    Returns who is writing, for the edit history ("key" or "login").
    """
    key, from_cookie = sent_key(request)
    check_key(request.app.state.settings, key, "writes")
    if from_cookie:
        check_csrf(request, request.headers.get(CSRF_HEADER))
        return "login"
    return "key"
