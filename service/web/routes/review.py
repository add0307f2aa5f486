"""JSON API of the alignment editor: open a review, read it, change it, finish it, and the
spreadsheet round trip. The editor page calls these same routes; ``review_data``
(:mod:`service.review.views`) is the view both render.

Changes name the version they were made on (``version``); a stale one is refused with 409
``review_changed`` and nothing is saved. A review belongs to the key that opened it: other
keys may read it, but only its owner or an ``admin`` key may change, finish or delete it
(403 ``not_your_review``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from aligner.tmx import TMX_MEDIA, tmx_chunks, tmx_date
from service.errors import ServiceError
from service.review.model import Conflict, reviewed_units, summary
from service.review.sheet import (
    TSV_MEDIA,
    XLSX_MEDIA,
    beads_from_sheet,
    read_sheet,
    sheet_limits,
    to_tsv,
    to_xlsx,
)
from service.review.views import open_review, review_data, review_list_data
from service.security.keys import KeyInfo
from service.security.session import require_read, require_write
from service.web.middleware import Slot
from service.web.state import ServiceState, State, heavy_work

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
    """Finishing names no reviewer: the finishing key's name is recorded."""

    version: int = Field(ge=0)
    add_to_memory: bool = True


def _opened(state: ServiceState, review_id: str) -> dict:
    """The answer to opening a review: where it is, and what it holds (pairs, doubtful,
    unpaired)."""
    row, review = state.reviews.load(review_id)
    return {"id": review_id, "page": f"/review/{review_id}", "api": f"/reviews/{review_id}",
            "summary": summary(review, row.min_score), "min_score": row.min_score}


def _may_all(who: KeyInfo) -> bool:
    return who.allows("admin")


def create_router() -> APIRouter:
    router = APIRouter(tags=["review"])
    reads = [Depends(require_read)]

    @router.post("/reviews", status_code=201)
    async def create(
        state: State,
        who: Annotated[KeyInfo, Depends(require_write)],
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
            open_review, state.reviews, state.settings, *uploads, mode=mode, name=name,
            min_score=min_score, origin="upload", owner=who.name, slot=slot,
        )
        return _opened(state, review_id)

    @router.post("/reviews/from-job/{job_id}/{pair_id}", status_code=201)
    async def from_job(
        job_id: str, pair_id: str, request: Request, state: State,
        who: Annotated[KeyInfo, Depends(require_write)],
        slot: Annotated[Slot, Depends(heavy_work)],
    ) -> dict:
        """Open one pair of a finished batch job for review (aligned again from its inputs)."""
        jobs = request.app.state.jobs
        zh_path, en_path, symbol = jobs.pair_inputs(job_id, pair_id)
        review_id = await state.run(
            open_review, state.reviews, state.settings, (zh_path.read_bytes(), zh_path.name),
            (en_path.read_bytes(), en_path.name),
            mode=jobs.get(job_id).options.get("mode", "auto"), name=symbol or pair_id,
            min_score=DEFAULT_MIN_SCORE, origin=f"job:{job_id}/{pair_id}", owner=who.name,
            slot=slot,
        )
        return _opened(state, review_id)

    @router.get("/reviews", dependencies=reads)
    def list_reviews(state: State) -> dict:
        """Reviews, most recently changed first."""
        return review_list_data(state.reviews)

    @router.get("/reviews/{review_id}", dependencies=reads)
    async def get_review(review_id: str, state: State) -> JSONResponse:
        """The whole review: sections (speaker turns), beads in order, version, counts."""
        return JSONResponse(await state.run(review_data, state.reviews, review_id))

    @router.post("/reviews/{review_id}/changes")
    async def change(
        review_id: str, body: Change, state: State, who: Annotated[KeyInfo, Depends(require_write)]
    ) -> dict:
        """Apply one operation; answers the new version and the splice of the bead list
        (``start``, how many beads were ``removed``, the new ``beads``)."""
        op = body.model_dump(by_alias=True, exclude_none=True)
        version = op.pop("version")

        def run() -> dict:
            store = state.reviews
            done = store.change(
                review_id, version, op, max_chars=state.settings.max_segment_chars, by=who.name,
                may_all=_may_all(who),
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
        review_id: str, body: Finish, state: State,
        who: Annotated[KeyInfo, Depends(require_write)],
    ) -> dict:
        """Mark the review finished by the calling key (its name is the reviewer recorded);
        add its confirmed pairs to the memory."""
        def run() -> dict:
            info, review = state.reviews.finish(review_id, body.version, who.name,
                                                may_all=_may_all(who))
            units = list(reviewed_units(info, review, who.name, tmx_date()))
            out = {"confirmed": len(units), "tmx": f"/reviews/{review_id}/tmx", "imported": None,
                   "reviewer": who.name}
            if body.add_to_memory and units:
                result = state.memory.store.import_units(units, source=f"review:{review_id}")
                state.after_write()
                out["imported"] = result.as_dict()
            return out

        return await state.run(run)

    @router.get("/reviews/{review_id}/tmx", dependencies=reads)
    def review_tmx(review_id: str, state: State) -> StreamingResponse:
        """The confirmed pairs as TMX, with ``x-reviewed``, ``x-reviewer``, ``x-review-date``."""
        info, review = state.reviews.load(review_id)
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
        info, review = state.reviews.load(review_id)
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
        slot: Annotated[Slot, Depends(heavy_work)],
        file: Annotated[UploadFile, File(description="a sheet exported by GET .../sheet")],
    ) -> dict:
        """Bring back a reviewed spreadsheet: its texts and statuses, as one undoable change.
        Reading it is bounded by the review's size (a heavy request: 429 when too many run)."""
        def run() -> dict:
            _, current = state.reviews.load(review_id)
            limits = sheet_limits(len(current.beads), state.settings.max_document_bytes)
            sheet_id, version, rows = read_sheet(file.file, file.filename or "", limits)
            if sheet_id != review_id:
                raise ServiceError(
                    422, "bad_sheet",
                    f"this sheet belongs to review {sheet_id}, not {review_id}. Nothing was "
                    "changed.",
                )
            limit = state.settings.max_segment_chars
            try:
                done = state.reviews.change(
                    review_id, version,
                    {"op": "import", "build": lambda r: beads_from_sheet(r, rows, limit)},
                    max_chars=limit, by=who.name, may_all=_may_all(who),
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

        return await state.run(run, slot=slot)

    @router.delete("/reviews/{review_id}")
    def delete_review(
        review_id: str, state: State, who: Annotated[KeyInfo, Depends(require_write)]
    ) -> dict:
        state.reviews.delete(review_id, by=who.name, may_all=_may_all(who))
        return {"deleted": review_id}

    return router
