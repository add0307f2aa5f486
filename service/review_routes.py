"""JSON API of the alignment editor: open a review, read it, change it, finish it, and the
spreadsheet round trip. The editor page calls these same routes; ``review_data`` is the view
both render.

Changes name the version they were made on (``version``); a stale one is refused with 409
``review_changed`` and nothing is saved.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from service.errors import ServiceError
from service.memory_routes import TMX_MEDIA
from service.middleware import Slot
from service.review import (
    Conflict,
    ReviewStore,
    review_from_alignment,
    reviewed_units,
    summary,
)
from service.security import KeyInfo
from service.session import require_read, require_write
from service.state import ServiceState, State, heavy_work

DEFAULT_MIN_SCORE = 0.5


class Change(BaseModel):
    """One editor operation made on ``version`` of the review."""

    version: int = Field(ge=0)
    op: Literal[
        "merge", "split", "move", "pair", "unpair", "edit", "status", "confirm_turn",
        "undo", "redo",
    ]
    bead: int | None = Field(None, description="the pair the operation is on")
    section: int | None = Field(None, description="confirm_turn: the turn")
    side: Literal["zh", "en"] | None = None
    to: Literal["prev", "next"] | None = Field(None, description="move: where to")
    with_: int | None = Field(None, alias="with", description="pair: the other unpaired one")
    text: str | None = Field(None, description="edit: the new text of the side")
    status: Literal["pending", "confirmed", "rejected"] | None = None
    zh: int | None = Field(None, ge=0, description="split: character of the zh text")
    en: int | None = Field(None, ge=0, description="split: character of the en text")


class Finish(BaseModel):
    version: int = Field(ge=0)
    reviewer: str = Field(min_length=1, max_length=100)
    add_to_memory: bool = True


def reviews(state: ServiceState) -> ReviewStore:
    """The review table of this service (made on first use)."""
    store = getattr(state, "reviews", None)
    if store is None:
        store = state.reviews = ReviewStore(state.store)
    return store


def review_data(state: ServiceState, review_id: str) -> dict:
    """Everything the editor shows: the review's state, its name and version, counts."""
    store = reviews(state)
    info, review = store.load(review_id)
    return {
        "id": info.id,
        "name": info.name,
        "origin": info.origin,
        "version": info.version,
        "min_score": info.min_score,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "finished_at": info.finished_at,
        "finished_by": info.finished_by,
        "summary": summary(review, info.min_score),
        "history": store.history(review_id),
        **review.to_json(),
    }


def review_list_data(state: ServiceState, limit: int = 100) -> dict:
    """The reviews, most recently changed first (the list route and page)."""
    return {"reviews": [vars(r) for r in reviews(state).list(limit)]}


def open_review(
    state: ServiceState, zh: tuple[bytes, str], en: tuple[bytes, str],
    *, mode: str, name: str, min_score: float, origin: str,
) -> str:
    """Align two documents (within the alignment limits of ``/align``) and store the result
    as a new review; its id."""
    from aligner.pipeline import align_documents
    from service.align_routes import encoder_for, read_pair

    (zh_doc, _), (en_doc, _) = read_pair(state.settings, zh, en)
    result = align_documents(zh_doc, en_doc, mode=mode, encoder=encoder_for(state.settings))
    review = review_from_alignment(zh_doc, en_doc, result)
    name = name or zh_doc.symbol or en_doc.symbol or zh[1]
    return reviews(state).create(name, review, origin=origin, min_score=min_score)


def create_router() -> APIRouter:
    router = APIRouter(tags=["review"])
    reads = [Depends(require_read)]

    @router.post("/reviews", status_code=201)
    async def create(
        state: State,
        _: Annotated[KeyInfo, Depends(require_write)],
        slot: Annotated[Slot, Depends(heavy_work)],
        zh: Annotated[UploadFile, File(description="the Chinese document (.txt/.docx/.pdf)")],
        en: Annotated[UploadFile, File(description="the English document (.txt/.docx/.pdf)")],
        mode: Annotated[Literal["auto", "record", "plain"], Form()] = "auto",
        name: Annotated[str, Form(max_length=200)] = "",
        min_score: Annotated[float, Form(ge=0, le=1)] = DEFAULT_MIN_SCORE,
    ) -> dict:
        """Align two documents and open the result for review (the limits of ``/align``)."""
        uploads = ((await zh.read(), zh.filename or "zh.txt"),
                   (await en.read(), en.filename or "en.txt"))
        review_id = await state.run(
            open_review, state, *uploads, mode=mode, name=name, min_score=min_score,
            origin="upload", slot=slot,
        )
        return {"id": review_id, "page": f"/review/{review_id}", "api": f"/reviews/{review_id}"}

    @router.post("/reviews/from-job/{job_id}/{pair_id}", status_code=201)
    async def from_job(
        job_id: str, pair_id: str, request: Request, state: State,
        _: Annotated[KeyInfo, Depends(require_write)],
        slot: Annotated[Slot, Depends(heavy_work)],
    ) -> dict:
        """Open one pair of a finished batch job for review (aligned again from its inputs)."""
        jobs = request.app.state.jobs
        zh_path, en_path, symbol = jobs.pair_inputs(job_id, pair_id)
        review_id = await state.run(
            open_review, state, (zh_path.read_bytes(), zh_path.name),
            (en_path.read_bytes(), en_path.name),
            mode=jobs.get(job_id).options.get("mode", "auto"), name=symbol or pair_id,
            min_score=DEFAULT_MIN_SCORE, origin=f"job:{job_id}/{pair_id}", slot=slot,
        )
        return {"id": review_id, "page": f"/review/{review_id}", "api": f"/reviews/{review_id}"}

    @router.get("/reviews", dependencies=reads)
    def list_reviews(state: State) -> dict:
        """Reviews, most recently changed first."""
        return review_list_data(state)

    @router.get("/reviews/{review_id}", dependencies=reads)
    async def get_review(review_id: str, state: State) -> JSONResponse:
        """The whole review: sections (speaker turns), beads in order, version, counts."""
        return JSONResponse(await state.run(review_data, state, review_id))

    @router.post("/reviews/{review_id}/changes")
    async def change(
        review_id: str, body: Change, state: State, who: Annotated[KeyInfo, Depends(require_write)]
    ) -> dict:
        """Apply one operation; answers the new version and the splice of the bead list
        (``start``, how many beads were ``removed``, the new ``beads``)."""
        op = body.model_dump(by_alias=True, exclude_none=True)
        version = op.pop("version")

        def run() -> dict:
            store = reviews(state)
            done = store.change(
                review_id, version, op, max_chars=state.settings.max_segment_chars, by=who.name
            )
            return {
                "version": done.version,
                **done.splice.to_json(),
                "summary": summary(done.review, done.min_score),
                "history": store.history(review_id),
            }

        return await state.run(run)

    @router.post("/reviews/{review_id}/finish")
    async def finish(
        review_id: str, body: Finish, state: State, _: Annotated[KeyInfo, Depends(require_write)]
    ) -> dict:
        """Mark the review finished by ``reviewer``; add its confirmed pairs to the memory."""
        from aligner.tmx import tmx_date

        def run() -> dict:
            info, review = reviews(state).finish(review_id, body.version, body.reviewer)
            units = list(reviewed_units(info, review, body.reviewer, tmx_date()))
            out = {"confirmed": len(units), "tmx": f"/reviews/{review_id}/tmx", "imported": None}
            if body.add_to_memory and units:
                result = state.store.import_units(units, source=f"review:{review_id}")
                state.sync()
                out["imported"] = result.as_dict()
            return out

        return await state.run(run)

    @router.get("/reviews/{review_id}/tmx", dependencies=reads)
    def review_tmx(review_id: str, state: State) -> StreamingResponse:
        """The confirmed pairs as TMX, with ``x-reviewed``, ``x-reviewer``, ``x-review-date``."""
        from aligner.tmx import tmx_chunks, tmx_date

        info, review = reviews(state).load(review_id)
        reviewer = info.finished_by or "unfinished"
        when = tmx_date() if not info.finished_at else info.finished_at.replace("-", "").replace(
            ":", "")
        units = reviewed_units(info, review, reviewer, when)
        return StreamingResponse(
            tmx_chunks(units, source_lang="zh-CN", target_lang="en-US"),
            media_type=TMX_MEDIA,
            headers={"Content-Disposition": f'attachment; filename="review-{review_id}.tmx"'},
        )

    @router.get("/reviews/{review_id}/sheet", dependencies=reads)
    def export_sheet(
        review_id: str, state: State, format: Literal["xlsx", "tsv"] = "xlsx"
    ) -> Response:
        """The review as a spreadsheet to edit texts and statuses in Excel."""
        from service.review_sheet import TSV_MEDIA, XLSX_MEDIA, to_tsv, to_xlsx

        info, review = reviews(state).load(review_id)
        write, media = (to_xlsx, XLSX_MEDIA) if format == "xlsx" else (to_tsv, TSV_MEDIA)
        return Response(
            write(review_id, info.version, review),
            media_type=media,
            headers={
                "Content-Disposition": f'attachment; filename="review-{review_id}.{format}"'
            },
        )

    @router.post("/reviews/{review_id}/sheet")
    async def import_sheet(
        review_id: str,
        state: State,
        who: Annotated[KeyInfo, Depends(require_write)],
        file: Annotated[UploadFile, File(description="a sheet exported by GET .../sheet")],
    ) -> dict:
        """Bring back a reviewed spreadsheet: its texts and statuses, as one undoable change."""
        from service.review_sheet import beads_from_sheet, read_sheet

        def run() -> dict:
            sheet_id, version, rows = read_sheet(file.file, file.filename or "")
            if sheet_id != review_id:
                raise ServiceError(
                    422, "bad_sheet",
                    f"this sheet belongs to review {sheet_id}, not {review_id}. Nothing was "
                    "changed.",
                )
            limit = state.settings.max_segment_chars
            try:
                done = reviews(state).change(
                    review_id, version,
                    {"op": "import", "build": lambda r: beads_from_sheet(r, rows, limit)},
                    max_chars=limit, by=who.name,
                )
            except Conflict as exc:
                raise ServiceError(
                    409, "review_changed",
                    f"the review changed after this sheet was exported (sheet version "
                    f"{version}, review now at {exc.current}). Nothing was changed: export "
                    "it again and redo the edits there.",
                ) from None
            pairs = zip(done.splice.removed, done.splice.added, strict=True)
            return {"version": done.version, "changed": sum(a is not b for a, b in pairs)}

        return await state.run(run)

    @router.delete("/reviews/{review_id}")
    def delete_review(
        review_id: str, state: State, _: Annotated[KeyInfo, Depends(require_write)]
    ) -> dict:
        reviews(state).delete(review_id)
        return {"deleted": review_id}

    return router
