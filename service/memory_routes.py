"""Routes of the translation memory: lookup, concordance, import, export, stats, deletion.

Each view's data comes from a plain function (``lookup_data``, ``concordance_data``) that the
JSON routes here and any page render alike.
"""

from __future__ import annotations

import functools
import html
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, File, Path, Query, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from aligner.models import TranslationUnit
from service.errors import ServiceError, not_found
from service.lookup import LANGS, lookup
from service.session import require_read, require_write
from service.state import ServiceState, State, heavy_work

TMX_MEDIA = "application/x-tmx+xml"
MAX_ID = 2**63 - 1  # SQLite's largest integer: beyond, a 422, not an overflow
LANG_CODES = {"zh": "zh-CN", "en": "en-US"}


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


async def lookup_data(state: ServiceState, req: LookupRequest) -> dict:
    """``{"matches": [...]}`` for a lookup request, best first."""
    state.check_segment(req.text)
    if not req.text.strip():
        raise ServiceError(422, "invalid_request", "text: the segment is blank")
    # Registered now, so that the lookups queued meanwhile are embedded in one batch.
    sem = state.semantic
    query = None
    if req.semantic and sem is not None and len(sem):
        query = sem.query(req.text, req.source_lang)

    def run() -> dict:
        matches = lookup(
            state.store,
            state.fuzzy,
            req.text,
            req.source_lang,
            limit=req.limit,
            min_fuzzy=req.min_fuzzy,
            semantic=query,
            min_semantic=req.min_semantic,
            document=req.document,
            speaker=req.speaker,
        )
        return {"matches": [m.to_json() for m in matches]}

    return await state.run(run, on_lookup_thread=True)


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


COUNT_CAP = 1000  # concordance totals are exact up to this many units, then "more than"


def concordance_data(
    state: ServiceState,
    term: str,
    lang: str | None,
    limit: int,
    offset: int,
    *,
    document: str | None = None,
    speaker: str | None = None,
    with_total: bool = False,
) -> dict:
    """Units whose source or target holds ``term``, with the hits as spans and marked HTML.

    Filtering by ``document`` or ``speaker``, or asking ``with_total``, reads up to
    ``COUNT_CAP`` matching units: ``total`` is exact below it and ``total_capped`` says so.
    """
    # The fuzzy index names the few units a rare term can be in; without it, finding
    # that it is in none meant reading every unit (0.9 s at 1,000,000 units).
    indexed = state.fuzzy.max_id
    found = [state.fuzzy.containing(term, side) for side in ((lang,) if lang else LANGS)]
    among = None
    if all(ids is not None for ids in found):
        among = functools.reduce(np.union1d, found)
        among = among[among <= indexed]
    total = None
    if document or speaker or with_total:
        units = state.store.concordance(
            term, lang, limit=COUNT_CAP + 1, offset=0, among=among, after=indexed
        )
        units = [
            u for u in units
            if (not document or u.document == document) and (not speaker or u.speaker == speaker)
        ]
        total = min(len(units), COUNT_CAP)
        capped = len(units) > COUNT_CAP
        units = units[offset : min(offset + limit, COUNT_CAP)]
    else:
        units = state.store.concordance(
            term, lang, limit=limit, offset=offset, among=among, after=indexed
        )
    out = []
    for unit in units:
        entry = {"id": unit.id, "source_lang": unit.source_lang, "target_lang": unit.target_lang}
        for role, text, code in (("source", unit.source, unit.source_lang),
                                 ("target", unit.target, unit.target_lang)):
            spans = _marks(text, term, fold=not code.lower().startswith("zh"))
            entry[role] = text
            entry[f"{role}_hits"] = spans
            entry[f"{role}_marked"] = _marked(text, spans)
        entry.update(document=unit.document, speaker=unit.speaker, props=unit.props)
        out.append(entry)
    answer = {"term": term, "units": out}
    if total is not None:
        answer.update(total=total, total_capped=capped)
    return answer


def create_router() -> APIRouter:
    router = APIRouter(tags=["memory"])
    # The header key, or the pages' login cookie (with the CSRF token for writes).
    reads = [Depends(require_read)]
    writes = [Depends(require_write)]

    @router.post(
        "/tm/lookup", dependencies=reads, response_model=LookupResponse,
        response_class=JSONResponse,
    )
    async def tm_lookup(req: LookupRequest, state: State) -> JSONResponse:
        """Best matches for a segment: fuzzy (CAT %) first, then semantic-only ones."""
        # Plain JSON: the generic encoder would walk every match again.
        return JSONResponse(await lookup_data(state, req))

    @router.get("/tm/concordance", dependencies=reads)
    async def tm_concordance(
        state: State,
        term: Annotated[str, Query(min_length=1, max_length=200, description="text to find")],
        lang: Annotated[Literal["zh", "en"] | None, Query(description="side to search")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
        document: Annotated[str | None, Query(max_length=200)] = None,
        speaker: Annotated[str | None, Query(max_length=200)] = None,
        total: Annotated[bool, Query(description="count the matches (up to 1,000)")] = False,
    ) -> dict:
        """Units whose source or target contains `term`; hits as spans and `<mark>`ed text."""
        return await state.run(
            concordance_data, state, term, lang, limit, offset,
            document=document, speaker=speaker, with_total=total,
        )

    @router.post("/tm/import", dependencies=[*writes, Depends(heavy_work)])
    def tm_import(
        state: State,
        file: Annotated[UploadFile, File(description="a TMX file")],
    ) -> dict:
        """Import a TMX in one transaction; duplicates are merged into the stored units."""
        result = state.store.import_tmx(file.file, source=file.filename or "upload")
        state.sync()
        return {**result.as_dict(), "units": state.store.count()}

    @router.get("/tm/export", dependencies=[*reads, Depends(heavy_work)])
    def tm_export(
        state: State,
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
            for unit in state.store.iter_units(
                document=document, speaker=speaker, created_since=since
            )
        )
        return StreamingResponse(
            tmx_chunks(oriented, source_lang=src_code, target_lang=tgt_code),
            media_type=TMX_MEDIA,
            headers={"Content-Disposition": 'attachment; filename="concordia-memory.tmx"'},
        )

    @router.get("/tm/stats", dependencies=reads)
    async def tm_stats(state: State) -> dict:
        """Size of the memory and state of its indexes."""

        def collect() -> dict:
            stats = state.store.stats()
            stats["fuzzy_index"] = {"units": len(state.fuzzy)}
            stats["semantic_index"] = (
                state.semantic.stats() if state.semantic is not None else None
            )
            return stats

        return await state.run(collect)

    @router.delete("/tm/units/{unit_id}", dependencies=writes)
    def tm_delete_unit(unit_id: Annotated[int, Path(ge=1, le=MAX_ID)], state: State) -> dict:
        """Delete one unit."""
        deleted = state.store.delete([unit_id])
        if not deleted:
            raise not_found(f"no unit {unit_id}")
        state.sync()
        return {"deleted": len(deleted), "ids": deleted}

    @router.delete("/tm/units", dependencies=writes)
    def tm_delete_document(
        state: State,
        document: Annotated[str, Query(min_length=1, description="delete this document's units")],
    ) -> dict:
        """Delete every unit of a document."""
        deleted = state.store.delete(document=document)
        state.sync()
        return {"deleted": len(deleted), "ids": deleted}

    return router
