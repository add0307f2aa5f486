"""Who is really calling, behind a reverse proxy: the client's address and whether it used
https. ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only when the connection
comes from an address in ``CONCORDIA_TRUSTED_PROXIES`` (anyone else could send them)."""

from __future__ import annotations

import ipaddress

from fastapi import Request

from service.config import Settings


def _networks(settings: Settings) -> list:
    raw = settings.trusted_proxies or ""
    return [ipaddress.ip_network(p.strip(), strict=False) for p in raw.split(",") if p.strip()]


def _trusted(address: str, settings: Settings) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(settings))


def _peer(request: Request) -> str:
    return request.client.host if request.client else ""


def client_address(request: Request) -> str:
    """The caller's address: the last one a trusted proxy added, else the peer's."""
    settings = request.app.state.settings
    peer = _peer(request)
    if not _trusted(peer, settings):
        return peer
    chain = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",")]
    for address in reversed([a for a in chain if a]):
        if not _trusted(address, settings):
            return address
    return peer


def is_https(request: Request) -> bool:
    """Whether the browser used https: the server's own scheme, or a trusted proxy's word."""
    if request.url.scheme == "https":
        return True
    if not _trusted(_peer(request), request.app.state.settings):
        return False
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return proto == "https"
