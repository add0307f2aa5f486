"""Guards between the network and the routes: body size and time, header time, heavy work.

- ``UploadLimit``: 413 for a body over the upload limit (declared or streamed), 408 for one
  that takes longer than the body timeout to arrive.
- ``SecurityHeaders``: a Content-Security-Policy fitting the pages (scripts, styles and
  images from the service itself only; no frames), ``X-Frame-Options``, ``nosniff`` and a
  ``Referrer-Policy`` on every answer.
- ``HeavyLimiter``: alignments, imports, job uploads and exports at once, in total and per
  key; beyond, 429 with ``Retry-After``. A slot is held until the work really ends, even
  when the request has already answered 504.
- ``header_timeout_protocol``: uvicorn's HTTP protocol closing connections that have not
  sent a request's headers within the header timeout (uvicorn itself only times out idle
  kept-alive connections, so a client sending a header byte every few seconds, or nothing
  at all, would hold its connection for ever).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

from fastapi import HTTPException

from service.errors import error_body, too_busy


class UploadLimit:
    """413 for request bodies over the limit, declared or streamed; 408 for slow ones."""

    def __init__(self, app, limit: int, timeout_s: float = 120.0):
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _send_json(send, 413, error_body("payload_too_large", self._message()))
            return
        seen = 0
        body_done = False
        deadline = time.monotonic() + self.timeout_s

        async def limited():
            nonlocal seen, body_done
            if body_done:  # after the body: disconnect notices, waited for without limit
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise HTTPException(
                    408, f"the request body took longer than {self.timeout_s:g} s to arrive"
                ) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, self._message())
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"request body larger than the upload limit of {self.limit} bytes"


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Security headers on every answer; a route may set its own Content-Security-Policy
    (the API docs page allows its one inline script by hash)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {name.lower() for name, _ in headers}
                extra = [(k, v) for k, v in _SECURITY_HEADERS if k not in names]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _send_json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class Slot:
    """A place taken in a ``HeavyLimiter``: freed when every holder has released it."""

    def __init__(self, limiter: HeavyLimiter, who: str):
        self._limiter = limiter
        self.who = who
        self._holders = 1
        self._lock = threading.Lock()

    def share(self) -> Slot:
        """One more holder (the thread doing the work); each holder calls ``release`` once."""
        with self._lock:
            self._holders += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            self._limiter._free(self.who)


class HeavyLimiter:
    """Counts heavy work in progress, per caller and in all; refuses beyond with 429."""

    def __init__(self, total: int, per_key: int, retry_after_s: int):
        self.total = total
        self.per_key = per_key
        self.retry_after_s = retry_after_s
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, who: str) -> Slot:
        """A slot for ``who`` (a key's name), or a 429 ``ServiceError``."""
        with self._lock:
            if self._running.get(who, 0) >= self.per_key:
                raise too_busy(
                    f"{self.per_key} heavy request(s) of this key are running; try again later",
                    self.retry_after_s,
                )
            if sum(self._running.values()) >= self.total:
                raise too_busy(
                    "the server is busy with other alignments, imports or exports; "
                    "try again later",
                    self.retry_after_s,
                )
            self._running[who] = self._running.get(who, 0) + 1
        return Slot(self, who)

    def _free(self, who: str) -> None:
        with self._lock:
            left = self._running.get(who, 0) - 1
            if left > 0:
                self._running[who] = left
            else:
                self._running.pop(who, None)

    def running(self) -> int:
        with self._lock:
            return sum(self._running.values())


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol

    _HTTPTOOLS = True
except ImportError:  # uvicorn without httptools
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol

    _HTTPTOOLS = False


_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
    b"connection: close\r\n\r\n"
)


class HeaderTimeoutProtocol(_Protocol):
    """uvicorn's HTTP protocol (httptools, else h11) with a deadline for request headers.

    The deadline is ``CONCORDIA_HEADER_TIMEOUT``, read from the environment when the first
    connection comes (server workers are new processes: a class attribute set in the
    parent would not reach them).
    """

    timeout_s: float | None = None
    max_bytes: int = 0
    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0

    @classmethod
    def _timeout(cls) -> float:
        if cls.timeout_s is None:
            from service.config import Settings

            settings = Settings.from_env()
            cls.timeout_s, cls.max_bytes = settings.header_timeout_s, settings.max_header_bytes
        return cls.timeout_s

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(self._timeout(), self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()  # a new connection must send its first request in time

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._arm()  # a new request begins: its headers have the timeout to arrive
        super().data_received(data)
        if not _HTTPTOOLS and self.conn.their_state.__name__ != "IDLE":
            self._disarm()
        if self._header_timer is not None:  # the headers are still incomplete
            self._header_bytes += len(data)
            if self._header_bytes > self.max_bytes and not self.transport.is_closing():
                self._disarm()
                self.transport.write(_HEADERS_TOO_LARGE)
                self.transport.close()

    if _HTTPTOOLS:

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
