"""The HTTP API: translation-memory lookups, concordance, import/export, alignment, jobs.

Start it with ``aligner serve``, ``uvicorn --factory service.api:create_app``, or
``python -m service.api --workers N`` to answer lookups on N cores; settings come from
``CONCORDIA_*`` environment variables (see ``service.config``). OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from aligner.models import TranslationUnit
from service.config import Settings
from service.errors import ServiceError, error_body, install_error_handlers, not_found
from service.jobs import JobManager, create_router
from service.lookup import LANGS, FuzzyIndex, lookup
from service.security import API_KEY_HEADER, check_key, require_read_access, require_write_key
from service.store import TMStore

if TYPE_CHECKING:
    from service.semantic import SemanticQuery

log = logging.getLogger("concordia.service")

TMX_MEDIA = "application/x-tmx+xml"
LANG_CODES = {"zh": "zh-CN", "en": "en-US"}
_SYNC_INTERVAL_S = 1.0


class LookupRequest(BaseModel):
    text: str = Field(min_length=1, description="the segment to look up")
    source_lang: Literal["zh", "en"] = Field(description="language of `text`")
    limit: int = Field(5, ge=1, le=50, description="number of matches")
    min_fuzzy: int = Field(70, ge=0, le=100, description="lowest fuzzy match % returned")
    semantic: bool = Field(True, description="also search by meaning (when enabled)")
    min_semantic: float = Field(
        0.5, ge=-1, le=1, description="lowest cosine for a semantic-only match"
    )
    document: str | None = Field(None, description="only units from this document")
    speaker: str | None = Field(None, description="only units from this speaker")


class LookupMatch(BaseModel):
    id: int
    source: str = Field(description="the unit's segment in the query's language")
    target: str = Field(description="its translation")
    source_lang: str
    target_lang: str
    fuzzy: int = Field(description="CAT fuzzy match %, 100 = identical")
    semantic: float | None = Field(description="cosine of the embeddings; null when off")
    kind: Literal["fuzzy", "semantic"] = Field(description="how the match was found")
    document: str
    speaker: str
    props: dict[str, str]
    creationdate: str
    origin: str


class LookupResponse(BaseModel):
    matches: list[LookupMatch] = Field(description="best first")


class _UploadLimit:
    """ASGI middleware: 413 for request bodies over the limit, declared or streamed."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _send_json(send, 413, error_body("payload_too_large", self._message()))
            return
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"request body larger than the upload limit of {self.limit} bytes"


async def _send_json(send, status: int, body: dict) -> None:
    import json

    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length",
                        str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


class _Service:
    """What the endpoints share: settings, store, indexes, the background syncer."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = TMStore(settings.data_dir, max_segment_chars=settings.max_segment_chars)
        self.fuzzy = FuzzyIndex()
        self.semantic = None
        self.semantic_ready = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def _fuzzy_dir(self) -> Path:
        return self.settings.data_dir / "fuzzy-index"

    def start(self) -> None:
        if not self.fuzzy.load(self._fuzzy_dir, self.store):
            log.info("no usable saved fuzzy index: building it from the store")
        self.fuzzy.sync(self.store)
        if self.settings.semantic_enabled:
            from service.semantic import SemanticIndex

            self.semantic = SemanticIndex(
                self.settings.data_dir,
                self.settings.encoder,
                exact_below=self.settings.semantic_exact_below,
            )
            self.semantic.load(self.store)
        self._thread = threading.Thread(target=self._keep_up, name="concordia-sync", daemon=True)
        self._thread.start()

    def _keep_up(self) -> None:
        """Index units that arrive other ways (jobs feeding the memory); rebuilds at start."""
        while not self._stop.is_set():
            try:
                self.sync()
                self.semantic_ready = True
            except Exception:  # logged; the next round tries again
                log.exception("index sync failed")
            self._stop.wait(_SYNC_INTERVAL_S)

    def sync(self) -> None:
        self.fuzzy.sync(self.store)
        if self.semantic is not None:
            self.semantic.sync(self.store)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.fuzzy.save(self._fuzzy_dir)
        if self.semantic is not None:
            self.semantic.close()
        self.store.close()


def _marks(text: str, term: str, fold: bool) -> list[list[int]]:
    hay, needle = (text.lower(), term.lower()) if fold else (text, term)
    spans, start = [], hay.find(needle)
    while start >= 0 and needle:
        spans.append([start, start + len(needle)])
        start = hay.find(needle, start + len(needle))
    return spans


def _marked(text: str, spans: list[list[int]]) -> str:
    out, last = [], 0
    for start, end in spans:
        out += [html.escape(text[last:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application over the store in ``settings.data_dir`` (environment when None)."""
    settings = settings or Settings.from_env()
    service = _Service(settings)
    manager = JobManager(settings, service.store)

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
        f"Writes need the API key in the `{API_KEY_HEADER}` header.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(_UploadLimit, limit=settings.max_upload_bytes)
    app.include_router(create_router(manager))

    # Lookups are short and CPU-bound: run one at a time on their own thread. Several at
    # once in the shared thread pool only fight over the GIL (each switch waits up to 5 ms),
    # which made latency under 8 concurrent clients several times the CPU time.
    lookup_thread = ThreadPoolExecutor(1, thread_name_prefix="concordia-lookup")

    async def timed(fn: Callable, *args, executor: ThreadPoolExecutor | None = None, **kwargs):
        """Run blocking ``fn`` off the event loop, within the request timeout."""
        if executor is None:
            work = run_in_threadpool(fn, *args, **kwargs)
        else:
            work = asyncio.get_running_loop().run_in_executor(
                executor, functools.partial(fn, *args, **kwargs)
            )
        try:
            return await asyncio.wait_for(work, settings.request_timeout_s)
        except TimeoutError:
            raise ServiceError(
                504, "timeout", f"the request took longer than {settings.request_timeout_s:g} s"
            ) from None

    def check_segment(text: str) -> None:
        if len(text) > settings.max_segment_chars:
            raise ServiceError(
                422,
                "segment_too_long",
                f"segment of {len(text)} characters; the limit is {settings.max_segment_chars}",
            )

    reads = [Depends(require_read_access)]
    writes = [Depends(require_write_key)]

    @app.get("/health", tags=["service"])
    def health() -> dict:
        """Liveness and readiness: the store answers, and whether semantic search is ready."""
        semantic = "off"
        if settings.semantic_enabled:
            semantic = "ready" if service.semantic_ready else "indexing"
        return {
            "status": "ok",
            "units": len(service.fuzzy),
            "generation": service.store.generation,  # the database answers
            "semantic": semantic,
            "worker": os.getpid(),  # which process answered, with several uvicorn workers
        }

    def do_lookup(req: LookupRequest, query: SemanticQuery | None) -> JSONResponse:
        matches = lookup(
            service.store,
            service.fuzzy,
            req.text,
            req.source_lang,
            limit=req.limit,
            min_fuzzy=req.min_fuzzy,
            semantic=query,
            min_semantic=req.min_semantic,
            document=req.document,
            speaker=req.speaker,
        )
        # Plain JSON: the generic encoder would walk every match again.
        return JSONResponse({"matches": [m.to_json() for m in matches]})

    @app.post(
        "/tm/lookup",
        tags=["memory"],
        dependencies=reads,
        response_model=LookupResponse,
        response_class=JSONResponse,
    )
    async def tm_lookup(req: LookupRequest) -> JSONResponse:
        """Best matches for a segment: fuzzy (CAT %) first, then semantic-only ones."""
        check_segment(req.text)
        if not req.text.strip():
            raise ServiceError(422, "invalid_request", "text: the segment is blank")
        # Registered now, so that the lookups queued meanwhile are embedded in one batch.
        sem = service.semantic
        query = None
        if req.semantic and sem is not None and len(sem):
            query = sem.query(req.text, req.source_lang)
        return await timed(do_lookup, req, query, executor=lookup_thread)

    def do_concordance(term: str, lang: str | None, limit: int, offset: int) -> dict:
        # The fuzzy index names the few units a rare term can be in; without it, finding
        # that it is in none meant reading every unit (0.9 s at 1,000,000 units).
        indexed = service.fuzzy.max_id
        found = [service.fuzzy.containing(term, side) for side in ((lang,) if lang else LANGS)]
        among = None
        if all(ids is not None for ids in found):
            among = functools.reduce(np.union1d, found)
            among = among[among <= indexed]
        units = service.store.concordance(
            term, lang, limit=limit, offset=offset, among=among, after=indexed
        )
        out = []
        for unit in units:
            entry = {"id": unit.id, "source_lang": unit.source_lang,
                     "target_lang": unit.target_lang}
            for role, text, code in (("source", unit.source, unit.source_lang),
                                     ("target", unit.target, unit.target_lang)):
                spans = _marks(text, term, fold=not code.lower().startswith("zh"))
                entry[role] = text
                entry[f"{role}_hits"] = spans
                entry[f"{role}_marked"] = _marked(text, spans)
            entry.update(document=unit.document, speaker=unit.speaker, props=unit.props)
            out.append(entry)
        return {"term": term, "units": out}

    @app.get("/tm/concordance", tags=["memory"], dependencies=reads)
    async def tm_concordance(
        term: Annotated[str, Query(min_length=1, max_length=200, description="text to find")],
        lang: Annotated[Literal["zh", "en"] | None, Query(description="side to search")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict:
        """Units whose source or target contains `term`; hits as spans and `<mark>`ed text."""
        return await timed(do_concordance, term, lang, limit, offset)

    @app.post("/tm/import", tags=["memory"], dependencies=writes)
    def tm_import(
        file: Annotated[UploadFile, File(description="a TMX file")],
    ) -> dict:
        """Import a TMX in one transaction; duplicates are merged into the stored units."""
        result = service.store.import_tmx(file.file, source=file.filename or "upload")
        service.sync()
        return {**result.as_dict(), "units": service.store.count()}

    @app.get("/tm/export", tags=["memory"], dependencies=reads)
    def tm_export(
        document: str | None = None,
        speaker: str | None = None,
        since: Annotated[
            str | None, Query(pattern=r"^\d{8}T\d{6}Z$", description="imported at or after")
        ] = None,
        source_lang: Annotated[Literal["zh", "en"], Query(description="direction")] = "zh",
    ) -> StreamingResponse:
        """The memory (or the units matching the filters) as a TMX 1.4b file, sent as it is
        written: the first units arrive at once, however large the memory."""
        from aligner.tmx import tmx_chunks

        target = "en" if source_lang == "zh" else "zh"
        src_code, tgt_code = LANG_CODES[source_lang], LANG_CODES[target]
        oriented = (
            TranslationUnit(
                source=unit.side(source_lang),
                target=unit.side(target),
                source_lang=src_code,
                target_lang=tgt_code,
                props=unit.props,
                creationdate=unit.creationdate,
                creationid=unit.creationid,
            )
            for unit in service.store.iter_units(
                document=document, speaker=speaker, created_since=since
            )
        )
        return StreamingResponse(
            tmx_chunks(oriented, source_lang=src_code, target_lang=tgt_code),
            media_type=TMX_MEDIA,
            headers={"Content-Disposition": 'attachment; filename="concordia-memory.tmx"'},
        )

    @app.get("/tm/stats", tags=["memory"], dependencies=reads)
    async def tm_stats() -> dict:
        """Size of the memory and state of its indexes."""

        def collect() -> dict:
            stats = service.store.stats()
            stats["fuzzy_index"] = {"units": len(service.fuzzy)}
            stats["semantic_index"] = (
                service.semantic.stats() if service.semantic is not None else None
            )
            return stats

        return await timed(collect)

    @app.delete("/tm/units/{unit_id}", tags=["memory"], dependencies=writes)
    def tm_delete_unit(unit_id: int) -> dict:
        """Delete one unit."""
        deleted = service.store.delete([unit_id])
        if not deleted:
            raise not_found(f"no unit {unit_id}")
        service.sync()
        return {"deleted": len(deleted), "ids": deleted}

    @app.delete("/tm/units", tags=["memory"], dependencies=writes)
    def tm_delete_document(
        document: Annotated[str, Query(min_length=1, description="delete this document's units")],
    ) -> dict:
        """Delete every unit of a document."""
        deleted = service.store.delete(document=document)
        service.sync()
        return {"deleted": len(deleted), "ids": deleted}

    @app.post("/align", tags=["alignment"])
    def align(
        request: Request,
        zh: Annotated[UploadFile, File(description="the Chinese document (.txt/.docx/.pdf)")],
        en: Annotated[UploadFile, File(description="the English document (.txt/.docx/.pdf)")],
        format: Annotated[Literal["json", "tmx"], Form()] = "json",
        mode: Annotated[Literal["auto", "record", "plain"], Form()] = "auto",
        add_to_memory: Annotated[bool, Form()] = False,
        document: Annotated[str, Form(description="document name kept with the units")] = "",
    ):
        """Align two documents; answer the pairs as JSON or TMX, optionally adding them."""
        key = request.headers.get(API_KEY_HEADER)
        if add_to_memory:
            check_key(settings, key, "writes")
        elif not settings.open_reads:
            check_key(settings, key, "reads")
        from aligner.ingest import read_bytes
        from aligner.pipeline import align_documents
        from aligner.tmx import pairs_to_units, write_tmx

        zh_doc = read_bytes(zh.file.read(), zh.filename or "zh.txt", "zh")
        en_doc = read_bytes(en.file.read(), en.filename or "en.txt", "en")
        encoder = None
        if settings.semantic_enabled:
            from aligner.embed import load_encoder

            encoder = load_encoder(settings.encoder)
        result = align_documents(zh_doc, en_doc, mode=mode, encoder=encoder)
        name = document or zh_doc.symbol or en_doc.symbol or (zh.filename or "")
        imported = None
        if add_to_memory:
            added = service.store.import_units(
                pairs_to_units(result.pairs, document=name), source=f"align:{name}"
            )
            service.sync()
            imported = added.as_dict()
        if format == "tmx":
            tmp = Path(tempfile.mkdtemp(prefix="align-", dir=_tmp_dir(settings)))
            path = tmp / "aligned.tmx"
            write_tmx(path, pairs_to_units(result.pairs, document=name))
            return FileResponse(
                path,
                media_type=TMX_MEDIA,
                filename="aligned.tmx",
                background=BackgroundTask(_remove_tree, tmp),
            )
        return {
            "mode": result.mode,
            "pairs": [
                {
                    "zh": p.zh,
                    "en": p.en,
                    "score": round(p.score, 4),
                    "speaker": p.speaker,
                    "country": p.country,
                    "turn": p.turn,
                }
                for p in result.pairs
            ],
            "unmatched_zh": result.unmatched_zh,
            "unmatched_en": result.unmatched_en,
            "warnings": result.warnings,
            "imported": imported,
        }

    return app


def _tmp_dir(settings: Settings) -> Path:
    path = settings.data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def serve(
    host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info"
) -> None:
    """Run the service with uvicorn; with ``workers`` > 1, processes share one socket.

    Lookups are CPU-bound Python, so one process uses one core; more workers answer more
    lookups at once (each keeps its own indexes in memory, kept in step through the store).
    The shared socket is made here rather than by uvicorn: uvicorn's lacks the TCP protocol
    number, so asyncio leaves Nagle's algorithm on for its connections and every response
    waits ~40 ms for a delayed ACK.
    """
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "service.api:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
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
    """``python -m service.api [--host H] [--port P] [--workers N] [--data DIR]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m service.api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="processes (one per core)")
    parser.add_argument("--data", type=Path, help="data folder (default $CONCORDIA_DATA_DIR)")
    parser.add_argument("--log-level", default="info", help="uvicorn's (warning: no access log)")
    args = parser.parse_args(argv)
    if args.data is not None:
        os.environ["CONCORDIA_DATA_DIR"] = str(args.data)
    serve(args.host, args.port, args.workers, args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
