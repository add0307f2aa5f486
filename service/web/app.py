"""The HTTP service assembled: state, middleware, error handlers and the routers.

Routes live by concern in their own modules (``service.web.routes``: memory, align, jobs, review);
this module only puts them together and launches uvicorn. Start it with ``aligner serve``,
``uvicorn --factory service.web.app:create_app``, or ``python -m service.web.app --workers N`` to
answer lookups on N cores; settings come from ``CONCORDIA_*`` environment variables (see
``service.config``). OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from service.config import ConfigError, Settings
from service.errors import install_error_handlers
from service.jobs import JobManager
from service.security.keys import API_KEY_HEADER, KeyRing, require
from service.security.session import SESSIONS_DB, SessionStore
from service.web import pages
from service.web.middleware import HeaderTimeoutProtocol, SecurityHeaders, UploadLimit
from service.web.routes import align as align_routes
from service.web.routes import jobs as jobs_routes
from service.web.routes import memory as memory_routes
from service.web.routes import review as review_routes
from service.web.state import ServiceState

log = logging.getLogger("concordia.service")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application over the store in ``settings.data_dir`` (environment when None)."""
    settings = settings or Settings.from_env()
    service = ServiceState(settings)
    manager = JobManager(settings, service.memory.store, on_memory_change=service.sync)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await run_in_threadpool(service.start)
        manager.start()
        try:
            yield
        finally:
            await run_in_threadpool(manager.stop)
            await run_in_threadpool(service.stop)

    app = FastAPI(
        title="Concordia",
        description="Chinese ↔ English translation memory and alignment for UN documents. "
        f"Keys go in the `{API_KEY_HEADER}` header; alignments, jobs and writes need one.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by service.web.pages from installed assets, not a CDN
    )
    app.state.settings = settings
    app.state.service = service
    app.state.keys = KeyRing.from_settings(settings)
    app.state.sessions = SessionStore(settings.data_dir / SESSIONS_DB, settings.session_hours)
    app.state.jobs = manager
    install_error_handlers(app)
    app.add_middleware(
        UploadLimit, limit=settings.max_upload_bytes, timeout_s=settings.body_timeout_s
    )
    app.add_middleware(SecurityHeaders)  # outermost: also on UploadLimit's own answers

    @app.get("/health", tags=["service"], responses={503: {"description": "not healthy"}})
    def health():
        """Liveness and readiness: the store answers, the job runner runs (503 when it has
        stopped: jobs would wait for ever), and whether semantic search is ready."""
        semantic = "off"
        if settings.semantic_enabled:
            semantic = "ready" if service.memory.semantic_ready else "indexing"
        runner = "running" if manager.alive() else "stopped"
        answer = {
            "status": "ok" if runner == "running" else "error",
            "units": len(service.memory.fuzzy),
            "generation": service.memory.store.generation,  # the database answers
            "semantic": semantic,
            "jobs": runner,
            "worker": os.getpid(),  # which process answered, with several uvicorn workers
        }
        return JSONResponse(answer, status_code=200 if runner == "running" else 503)

    @app.get("/admin/keys", tags=["service"], dependencies=[Depends(require("admin"))])
    def admin_keys() -> dict:
        """The configured keys' names and scopes (never the keys or their hashes), and the
        heavy work running now; needs the ``admin`` scope."""
        return {"keys": app.state.keys.names(), "heavy_running": service.heavy.running()}

    app.include_router(memory_routes.create_router())
    app.include_router(align_routes.create_router())
    app.include_router(jobs_routes.create_router(manager))
    app.include_router(review_routes.create_router())
    pages.install(app)  # the web pages, their static files and the offline /docs
    return app


def check_data_folder(data_dir: Path) -> None:
    """Exit with one clear line (no traceback) when the data folder cannot be written: a
    read-only mount, or a bind-mounted folder owned by another user than the server's."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        owner = ""
        try:
            owner = f", owned by uid {data_dir.stat().st_uid}"
        except OSError:
            pass
        raise SystemExit(
            f"concordia: cannot write the data folder {data_dir} ({exc.strerror}{owner}); the "
            f"server runs as uid {os.getuid()}: make the folder writable for it, or set "
            "CONCORDIA_DATA_DIR (or --data) to a folder it can write"
        ) from None


def serve(
    host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info"
) -> None:
    """Run the service with uvicorn; with ``workers`` > 1, processes share one socket.

    Lookups are CPU-bound Python, so one process uses one core; more workers answer more
    lookups at once (each keeps its own indexes in memory, kept in step through the store).
    The server's own limits (connections, header time and size, keep-alive) come from the
    settings (``CONCORDIA_MAX_CONNECTIONS`` …); the body timeout is the ``UploadLimit``'s.
    The shared socket is made here rather than by uvicorn: uvicorn's lacks the TCP protocol
    number, so asyncio leaves Nagle's algorithm on for its connections and every response
    waits ~40 ms for a delayed ACK.
    """
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    try:
        settings = Settings.from_env()
    except ConfigError as exc:  # one line naming the setting, no traceback
        raise SystemExit(f"concordia: {exc}") from None
    check_data_folder(settings.data_dir)
    config = uvicorn.Config(
        "service.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        http=HeaderTimeoutProtocol,  # header deadline and size (CONCORDIA_HEADER_*)
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=int(settings.keep_alive_s),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        backlog=settings.max_connections,
    )
    if workers <= 1:
        uvicorn.Server(config).run()
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    log.warning("Concordia on http://%s:%d with %d workers", host, port, workers)
    Multiprocess(config, sockets=[sock]).run()


def main(argv: list[str] | None = None) -> int:
    """``python -m service.web.app [--host H] [--port P] [--workers N] [--data DIR]
    [--store URL]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m service.web.app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="processes (one per core)")
    parser.add_argument("--data", type=Path, help="data folder (default $CONCORDIA_DATA_DIR)")
    parser.add_argument(
        "--store", help="postgresql://user@host:port/db to share a memory between replicas "
        "(default $CONCORDIA_STORE, else SQLite in the data folder)"
    )
    parser.add_argument("--log-level", default="info", help="uvicorn's (warning: no access log)")
    args = parser.parse_args(argv)
    if args.data is not None:
        os.environ["CONCORDIA_DATA_DIR"] = str(args.data)
    if args.store is not None:
        os.environ["CONCORDIA_STORE"] = args.store
    serve(args.host, args.port, args.workers, args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
