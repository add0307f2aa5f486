"""API-key checks as FastAPI dependencies.

Writes (import, delete, align-into-memory, jobs) always need the key configured in
``CONCORDIA_API_KEY``, sent in the ``X-API-Key`` header; with no key configured, writes are
refused. Reads are open unless ``CONCORDIA_OPEN_READS`` is false, then they need the key too.
The settings are taken from ``request.app.state.settings`` (set by ``create_app``).
"""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from service.config import Settings
from service.errors import ServiceError

API_KEY_HEADER = "X-API-Key"

_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="the service API key")


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def check_key(settings: Settings, sent: str | None, what: str) -> None:
    """Raise unless ``sent`` is the configured key; ``what`` ("writes"/"reads") names the error."""
    if settings.api_key is None:
        raise ServiceError(
            403,
            f"{what}_disabled",
            f"{what} are disabled: no API key is configured on the server "
            "(set CONCORDIA_API_KEY)",
        )
    if not sent:
        raise ServiceError(401, "missing_api_key", f"{what} need an API key in {API_KEY_HEADER}")
    if not hmac.compare_digest(sent.encode(), settings.api_key.encode()):
        raise ServiceError(403, "invalid_api_key", f"the API key in {API_KEY_HEADER} is wrong")


def require_write_key(request: Request, key: str | None = Security(_header)) -> None:
    """Dependency for every endpoint that changes the memory or starts work."""
    check_key(_settings(request), key, "writes")


def require_read_access(request: Request, key: str | None = Security(_header)) -> None:
    """Dependency for read endpoints: open by default, keyed when reads are closed."""
    settings = _settings(request)
    if not settings.open_reads:
        check_key(settings, key, "reads")
