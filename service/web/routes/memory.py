"""Routes of the translation memory: lookup, concordance, import (as a job) and its audit,
export, stats, unit maintenance (read, edit, usage, deletion).

Each view's data comes from a plain function of :mod:`service.memory.views` that the JSON
routes here and the pages render alike.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, BeforeValidator, Field, StringConstraints, field_validator

from aligner.markup import (
    MarkupError,
    runs_from_placeholders,
)
from aligner.tmx import MAX_EXTRA_CHARS, TMX_MEDIA, TmxHeader
from service.errors import ServiceError, not_found
from service.memory.lookup import MIN_SEMANTIC
from service.memory.store import (
    MergeRule,
    StoreError,
    UnitGone,
    UnitQuery,
    lang_family,
    tags_from_data,
)
from service.memory.views import (
    LookupQuery,
    check_segment,
    concordance_data,
    lookup_view,
    stats_data,
    unit_data,
)
from service.security.session import require_read, require_write
from service.web.state import ServiceState, State, heavy_work

MAX_ID = 2**63 - 1  # SQLite's largest integer: beyond, a 422, not an overflow
LANG_CODES = {"zh": "zh-CN", "en": "en-US"}
LANG_PATTERN = r"^(?i:zh|en)(?:[-_][A-Za-z0-9]{1,8})*$"
UnitId = Annotated[int, Path(ge=1, le=MAX_ID)]
STAMP = r"^\d{8}T\d{6}Z$"


def _blank_is_none(value: object) -> object:
    """A filter sent empty (``?document=``, as a form sends an empty field) is no filter."""
    return None if isinstance(value, str) and not value.strip() else value


# Optional filters of the read routes: blank means "not given", not "equal to ''".
TextFilter = Annotated[
    Annotated[str, StringConstraints(max_length=200)] | None, BeforeValidator(_blank_is_none)
]
StampFilter = Annotated[
    Annotated[str, StringConstraints(pattern=STAMP)] | None, BeforeValidator(_blank_is_none)
]
IdFilter = Annotated[
    Annotated[int, Field(ge=1, le=MAX_ID)] | None, BeforeValidator(_blank_is_none)
]


class LookupRequest(BaseModel):
    text: str = Field(
        min_length=1, description="the segment to look up; numbered tags ({1}) are ignored"
    )
    source_lang: str = Field(
        pattern=LANG_PATTERN,
        description="language of `text`: zh or en, or a variant (en-GB) preferred among equals",
    )
    target_lang: str | None = Field(
        None, pattern=LANG_PATTERN, description="variant of the translation preferred"
    )
    limit: int = Field(5, ge=1, le=50, description="number of matches")
    min_fuzzy: int = Field(70, ge=0, le=100, description="lowest fuzzy match % returned")
    semantic: bool = Field(True, description="also search by meaning (when enabled)")
    min_semantic: float = Field(
        MIN_SEMANTIC,
        ge=-1,
        le=1,
        description="lowest cosine for a semantic-only match (default calibrated so that "
        "unrelated segments stay out)",
    )
    document: TextFilter = Field(None, description="only units from this document")
    speaker: TextFilter = Field(None, description="only units from this speaker")


class Placeables(BaseModel):
    differ: bool = Field(description="numbers, dates, symbols or tags differ from the query's")
    missing: list[str] = Field(description="the query's placeables the stored source lacks")
    extra: list[str] = Field(description="the stored source's placeables the query lacks")


class EditOp(BaseModel):
    op: Literal["equal", "replace", "insert", "delete"]
    q: list[int] = Field(description="[start, end) in the query")
    s: list[int] = Field(description="[start, end) in source_plain")


class LookupMatch(BaseModel):
    id: int
    version: int
    source: str = Field(description="the unit's segment in the query's language, tags as {n}")
    target: str = Field(description="its translation, tags as {n}")
    source_plain: str
    target_plain: str
    source_lang: str
    target_lang: str
    fuzzy: int = Field(description="CAT fuzzy match % on normalised text, 100 = the same")
    identical: bool = Field(description="the stored source is the query character for character")
    semantic: float | None = Field(description="cosine of the embeddings; null when off")
    kind: Literal["fuzzy", "semantic"] = Field(description="how the match was found")
    edits: list[EditOp] = Field(description="edit operations from the query to source_plain")
    placeables: Placeables
    adapted_target: str | None = Field(
        description="the target with the query's numbers put in, when they differ and can be"
    )
    document: str
    speaker: str
    props: dict[str, str]
    attrs: dict[str, str] = Field(description="TMX attributes: tuid, changedate, usagecount…")
    creationdate: str
    origin: str


class LookupResponse(BaseModel):
    matches: list[LookupMatch] = Field(description="best first")


async def lookup_json(state: ServiceState, req: LookupRequest) -> dict:
    """The lookup view for an API request, computed on the lookup thread."""
    query = LookupQuery(**req.model_dump())
    work = lookup_view(state.memory, query, state.settings.max_segment_chars)
    return await state.run(work, on_lookup_thread=True)


MAX_PROPS = 100  # properties a unit edit may set
MAX_PROPS_CHARS = MAX_EXTRA_CHARS  # their types and values together, as one TMX prop may hold


class UnitEdit(BaseModel):
    version: int = Field(ge=1, le=MAX_ID, description="the version the edit was made on")
    zh: str | None = Field(None, min_length=1, description="new Chinese segment, tags as {n}")
    en: str | None = Field(None, min_length=1, description="new English segment, tags as {n}")
    props: dict[str, str] | None = Field(
        None, max_length=MAX_PROPS, description="the unit's properties, all of them"
    )
    changeid: str = Field("", max_length=200, description="who made the change")

    @field_validator("props")
    @classmethod
    def _short_props(cls, props: dict[str, str] | None) -> dict[str, str] | None:
        total = 0
        for kind, value in (props or {}).items():
            if not 0 < len(kind) <= 200 or len(value) > MAX_EXTRA_CHARS:
                raise ValueError(
                    f"property {kind[:40]!r}: a type of 1-200 characters and a value of at "
                    f"most {MAX_EXTRA_CHARS:,} are allowed"
                )
            total += len(kind) + len(value)
        if total > MAX_PROPS_CHARS:
            raise ValueError(
                f"the properties hold {total:,} characters; a unit's hold at most "
                f"{MAX_PROPS_CHARS:,}"
            )
        return props


def _store_error(exc: StoreError) -> ServiceError:
    return ServiceError(exc.status, exc.code, str(exc))


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
        return JSONResponse(await lookup_json(state, req))

    @router.get("/tm/concordance", dependencies=reads)
    async def tm_concordance(
        state: State,
        term: Annotated[str, Query(min_length=1, max_length=200, description="text to find")],
        lang: Annotated[
            Literal["zh", "en"] | None, BeforeValidator(_blank_is_none),
            Query(description="side to search"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
        whole_word: Annotated[bool, Query(description="English: whole words only")] = False,
        document: Annotated[TextFilter, Query(description="only units of this document")] = None,
        speaker: Annotated[TextFilter, Query(description="only units of this speaker")] = None,
        total: Annotated[
            bool, Query(description="count the matches (exact up to 10,000)")
        ] = False,
    ) -> dict:
        """Units whose source or target contains `term` (width and case ignored), a page of
        them with the hits as spans and `<mark>`ed text; with `total`, how many in all."""
        if not term.strip():
            raise ServiceError(422, "invalid_request", "term: blank")
        return await state.run(
            concordance_data, state.memory, term, lang, limit, offset,
            whole_word=whole_word, document=document, speaker=speaker, with_total=total,
        )

    @router.post("/tm/import", dependencies=[*writes, Depends(heavy_work)], status_code=202)
    def tm_import(
        request: Request,
        file: Annotated[UploadFile, File(description="a TMX file")],
        rule: Annotated[MergeRule, Form(description="what to do with duplicates")] = (
            MergeRule.MERGE
        ),
    ) -> dict:
        """Start importing a TMX as a job (one transaction); answers at once with the job.
        Follow it at `GET /jobs/{id}`: progress in units read, then what it added, merged,
        replaced and skipped, and how long it took (import, then indexing)."""
        jobs = request.app.state.jobs
        job = jobs.submit_import(
            file.file, file.filename or "upload.tmx", rule.value, owner=request.state.key.name
        )
        return job.to_json()

    @router.get("/tm/imports", dependencies=reads)
    def tm_imports(
        state: State, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> dict:
        """The audit of the latest imports: what each added, merged, replaced and skipped."""
        return {"imports": [r.to_json() for r in state.memory.store.imports(limit)]}

    @router.get("/tm/imports/{import_id}", dependencies=reads)
    def tm_import_record(import_id: Annotated[int, Path(ge=1, le=MAX_ID)], state: State) -> dict:
        record = state.memory.store.import_record(import_id)
        if record is None:
            raise not_found(f"no import {import_id}")
        return record.to_json()

    @router.get("/tm/export", dependencies=[*reads, Depends(heavy_work)])
    def tm_export(
        state: State,
        document: Annotated[TextFilter, Query(description="only units of this document")] = None,
        speaker: Annotated[TextFilter, Query(description="only units of this speaker")] = None,
        since: Annotated[StampFilter, Query(description="imported at or after")] = None,
        import_id: Annotated[
            IdFilter, Query(description="only the units of this import, under its header")
        ] = None,
        source_lang: Annotated[
            Literal["zh", "en"] | None,
            BeforeValidator(_blank_is_none),
            Query(description="write every unit with this language as source; default: as stored"),
        ] = None,
    ) -> StreamingResponse:
        """The memory (or the units matching the filters) as a TMX 1.4b file, sent as it is
        written: the first units arrive at once, however large the memory. Units keep what
        their TMX said (attributes, notes, props, inline markup, language variants). A filter
        sent empty is no filter."""
        from aligner.tmx import tmx_chunks

        header = None
        if import_id is not None:
            record = state.memory.store.import_record(import_id)
            if record is None:
                raise not_found(f"no import {import_id}")
            if record.header:
                h = record.header
                header = TmxHeader(h["attrs"], tags_from_data(h["extras"]), h["version"])
        src = source_lang or "zh"
        src_code, tgt_code = LANG_CODES[src], LANG_CODES["en" if src == "zh" else "zh"]
        units = (
            _oriented(unit.to_translation_unit(), source_lang)
            for unit in state.memory.store.iter_units(
                document=document, speaker=speaker, created_since=since, import_id=import_id
            )
        )
        return StreamingResponse(
            tmx_chunks(units, source_lang=src_code, target_lang=tgt_code, header=header),
            media_type=TMX_MEDIA,
            headers={"Content-Disposition": 'attachment; filename="concordia-memory.tmx"'},
        )

    @router.get("/tm/stats", dependencies=reads)
    async def tm_stats(state: State) -> dict:
        """Size of the memory and state of its indexes."""

        return await state.run(stats_data, state.memory)

    @router.get("/tm/units/{unit_id}", dependencies=reads)
    def tm_unit(unit_id: UnitId, state: State, response: Response) -> dict:
        """One unit, with its version (also as the ETag) for editing."""
        unit = state.memory.store.get([unit_id]).get(unit_id)
        if unit is None:
            now = state.memory.store.replaced_by(unit_id)
            hint = f"; it is now unit {now}" if now else ""
            raise ServiceError(404, "unit_not_found", f"no unit {unit_id}{hint}")
        response.headers["ETag"] = f'"{unit.id}-{unit.version}"'
        return unit_data(unit)

    @router.patch("/tm/units/{unit_id}", dependencies=writes)
    def tm_edit_unit(unit_id: UnitId, edit: UnitEdit, state: State) -> dict:
        """Edit a unit's segments (placeholder text: the unit's own tags as {n}) or its
        properties. `version` must be the one read: an edit made meanwhile gives 409. A
        changed segment gives the unit a new id (the answer has it)."""
        unit = state.memory.store.get([unit_id]).get(unit_id)
        if unit is None:
            raise _store_error(UnitGone(unit_id, state.memory.store.replaced_by(unit_id)))
        runs = {}
        for lang in ("zh", "en"):
            text = getattr(edit, lang)
            if text is not None:
                check_segment(text, state.settings.max_segment_chars)
                try:
                    runs[lang] = runs_from_placeholders(text, unit.runs(lang))
                except MarkupError as exc:
                    raise ServiceError(422, "bad_markup", f"{lang}: {exc}") from None
        try:
            edited = state.memory.store.edit(
                unit_id, edit.version, props=edit.props, changeid=edit.changeid, **runs
            )
        except StoreError as exc:
            raise _store_error(exc) from None
        state.after_write()
        return {"unit": unit_data(edited), "replaced": unit_id if edited.id != unit_id else None}

    @router.post("/tm/units/{unit_id}/usage", dependencies=writes)
    def tm_unit_used(unit_id: UnitId, state: State) -> dict:
        """Record that a match of this unit was used: usagecount + 1, lastusagedate now."""
        try:
            return unit_data(state.memory.store.record_usage(unit_id))
        except StoreError as exc:
            raise _store_error(exc) from None

    @router.delete("/tm/units/{unit_id}", dependencies=writes)
    def tm_delete_unit(unit_id: UnitId, state: State) -> dict:
        """Delete one unit."""
        deleted = state.memory.store.delete([unit_id])
        if not deleted:
            raise not_found(f"no unit {unit_id}")
        state.after_write()
        return {"deleted": len(deleted), "ids": deleted}

    @router.delete("/tm/units", dependencies=writes)
    def tm_delete_where(
        state: State,
        document: Annotated[str | None, Query(min_length=1)] = None,
        speaker: Annotated[str | None, Query(min_length=1)] = None,
        origin: Annotated[str | None, Query(min_length=1, description="file or job")] = None,
        import_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        since: Annotated[str | None, Query(pattern=r"^\d{8}T\d{6}Z$")] = None,
        before: Annotated[str | None, Query(pattern=r"^\d{8}T\d{6}Z$")] = None,
        contains: Annotated[str | None, Query(min_length=2, max_length=200)] = None,
    ) -> dict:
        """Delete every unit matching all the conditions given (at least one)."""
        query = UnitQuery(
            document=document, speaker=speaker, origin=origin, import_id=import_id,
            created_since=since, created_before=before, contains=contains,
        )
        try:
            deleted = state.memory.store.delete_where(query)
        except StoreError as exc:
            raise _store_error(exc) from None
        state.after_write()
        return {"deleted": len(deleted), "ids": deleted}

    return router


def _oriented(unit, source_lang: str | None):
    """``unit`` with ``source_lang`` ("zh"/"en") as its source; as it is when None. A ``tu``
    that names its source (its own ``srclang``) names the new one."""
    if source_lang is None:
        return unit
    if lang_family(unit.source_lang) != source_lang:
        unit.source, unit.target = unit.target, unit.source
        unit.source_lang, unit.target_lang = unit.target_lang, unit.source_lang
        unit.source_runs, unit.target_runs = unit.target_runs, unit.source_runs
        unit.source_tuv, unit.target_tuv = unit.target_tuv, unit.source_tuv
        unit.target_first = not unit.target_first
    if unit.attrs.get("srclang", "*all*").lower() != "*all*":
        unit.attrs = {**unit.attrs, "srclang": unit.source_lang}
    return unit
