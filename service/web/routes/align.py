"""Route of the aligner: two uploaded documents → sentence pairs, optionally into the memory.

An alignment costs CPU and memory, so it needs the ``align`` scope (``write`` to add to the
memory) unless the operator opened it, takes a heavy-work slot (429 when none is free), and
is bounded: each document's expanded size and parts before it is parsed, then characters
and sentences per side (413). A pair too large to align within a request (over
``align_sync_chars`` in all) becomes a batch job: the answer is 202 with the job's id. So
does one whose alignment runs past the request timeout: the job takes over the running work
(still in its heavy slot) and ends with its result.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from aligner.tmx import TMX_MEDIA
from service.documents import encoder_for, read_pair
from service.security.keys import check_key
from service.web.state import Handoff, Outcome, RequestTimeout, ServiceState, State, remove_tree


class _AlignAsJob(Exception):
    """The pair is over ``align_sync_chars``: it is aligned as a job, not in the request."""


def _new_job(
    request: Request,
    zh: tuple[bytes, str],
    en: tuple[bytes, str],
    options: dict,
    handed_over: bool = False,
):
    """A one-pair job of the two uploads; ``handed_over``: the request's own work ends it."""
    names = [f"{side}{Path(name).suffix.lower()}" for (_, name), side in ((zh, "zh"), (en, "en"))]
    manifest = f"id,zh,en\nalign,{names[0]},{names[1]}\n".encode()
    return request.app.state.jobs.submit_files(
        ("manifest.csv", manifest),
        [(names[0], io.BytesIO(zh[0])), (names[1], io.BytesIO(en[0]))],
        options,
        handed_over=handed_over,
        owner=request.state.key.name,
    )


def _job_answer(job, message: str) -> JSONResponse:
    """202 with the job to follow."""
    return JSONResponse(
        {
            "job": job.id,
            "state": job.state,
            "status": f"/jobs/{job.id}",
            "tmx": f"/jobs/{job.id}/tmx",
            "message": message,
        },
        status_code=202,
        headers={"Location": f"/jobs/{job.id}"},
    )


def _as_job(request: Request, zh: tuple[bytes, str], en: tuple[bytes, str], options: dict):
    """Hand a large pair to the job queue; 202 with the job to follow."""
    job = _new_job(request, zh, en, options)
    return _job_answer(job, "too large to align within a request: aligned as a job")


def _hand_over(
    request: Request,
    zh: tuple[bytes, str],
    en: tuple[bytes, str],
    options: dict,
    work: Handoff,
):
    """The alignment ran past the request timeout: a job takes over the running work and
    ends with its result, so nothing is aligned twice; 202 with the job to follow."""
    jobs = request.app.state.jobs
    job = _new_job(request, zh, en, options, handed_over=True)

    def finish(outcome: Outcome) -> None:
        if isinstance(outcome.error, _AlignAsJob):  # read, found large: the queue aligns it
            jobs.enqueue(job.id)
            return
        result, _, imported, _, tmx = outcome.value or (None, None, None, None, None)
        if tmx is not None:  # the job writes its own
            remove_tree(tmx.parent)
        jobs.finish_handed_over(job.id, result, outcome.error, imported, outcome.seconds)

    ended = work.hand_over(finish)
    if ended is not None:
        finish(ended)
    limit = request.app.state.service.settings.request_timeout_s
    return _job_answer(
        job, f"the alignment took longer than {limit:g} s: it goes on as a job"
    )


def _read_and_align(
    state: ServiceState,
    uploads: tuple[tuple[bytes, str], tuple[bytes, str]],
    mode: str,
    name: str,
    file_name: str,
    add_to_memory: bool,
    min_score: float,
    tmx: bool,
):
    """Read and check the pair, align it, and with ``tmx`` write the TMX (all within the
    request's time, or all handed over); ``_AlignAsJob`` when the pair is too large."""
    docs = read_pair(state.settings, *uploads)
    if sum(chars for _, chars in docs) > state.settings.align_sync_chars:
        raise _AlignAsJob
    result, name, imported, low = _align(
        state, docs, mode, name, file_name, add_to_memory, min_score
    )
    return result, name, imported, low, _tmx_file(state, result, name) if tmx else None


def _align(
    state: ServiceState,
    docs,
    mode: str,
    name: str,
    file_name: str,
    add_to_memory: bool,
    min_score: float,
):
    """Align the pair; with ``add_to_memory``, only pairs at or above ``min_score`` go in (as
    the command line writes them), and the answer says how many were kept out and why.
    Returns the result, the document's name, what the memory took, and a warning when most
    pairs score below ``min_score``."""
    from aligner.pipeline import align_documents, confident_pairs
    from aligner.tmx import pairs_to_units

    (zh_doc, _), (en_doc, _) = docs
    result = align_documents(zh_doc, en_doc, mode=mode, encoder=encoder_for(state.settings))
    name = name or zh_doc.symbol or en_doc.symbol or file_name
    kept, low = confident_pairs(result.pairs, min_score)
    imported = None
    if add_to_memory:
        added = state.memory.store.import_units(
            pairs_to_units(kept, document=name), source=f"align:{name}"
        )
        state.after_write()
        out = len(result.pairs) - len(kept)
        imported = {
            **added.as_dict(),
            "min_score": min_score,
            "kept_out": out,
            "kept_out_reason": f"score below {min_score:g}" if out else None,
        }
    return result, name, imported, low


def _tmx_file(state: ServiceState, result, name: str) -> Path:
    from aligner.tmx import pairs_to_units, write_tmx

    tmp = Path(tempfile.mkdtemp(prefix="align-", dir=state.tmp_dir()))
    path = tmp / "aligned.tmx"
    write_tmx(path, pairs_to_units(result.pairs, document=name))
    return path


def create_router() -> APIRouter:
    router = APIRouter(tags=["alignment"])

    @router.post("/align", responses={202: {"description": "aligned as a job instead"}})
    async def align(
        request: Request,
        state: State,
        zh: Annotated[UploadFile, File(description="the Chinese document (.txt/.docx/.pdf)")],
        en: Annotated[UploadFile, File(description="the English document (.txt/.docx/.pdf)")],
        format: Annotated[Literal["json", "tmx"], Form()] = "json",
        mode: Annotated[Literal["auto", "record", "plain"], Form()] = "auto",
        add_to_memory: Annotated[bool, Form()] = False,
        min_score: Annotated[
            float | None,
            Form(ge=0, le=1, description="pairs below this score stay out of the memory"),
        ] = None,
        document: Annotated[str, Form(description="document name kept with the units")] = "",
    ):
        """Align two documents; answer the pairs as JSON or TMX, optionally adding them.

        Needs the ``align`` scope (``write`` with ``add_to_memory``). Too large a pair to
        align within a request, or one still aligning at the request timeout, answers 202
        with a job to follow (``GET /jobs/{id}``).
        """
        from aligner.align.sentence_align import DEFAULT_MIN_SCORE
        from aligner.pipeline import left_out

        threshold = DEFAULT_MIN_SCORE if min_score is None else min_score
        key = check_key(request, "write" if add_to_memory else "align")
        slot = state.heavy.acquire(key.name)
        try:
            uploads = (
                (await zh.read(), zh.filename or "zh.txt"),
                (await en.read(), en.filename or "en.txt"),
            )
            options = {"add_to_memory": add_to_memory, "mode": mode, "min_score": min_score}
            work = Handoff(
                _read_and_align, state, uploads, mode, document, zh.filename or "",
                add_to_memory, threshold, format == "tmx",
            )
            try:
                result, name, imported, low, tmx = await state.run(work, slot=slot)
            except _AlignAsJob:
                return await run_in_threadpool(_as_job, request, *uploads, options)
            except RequestTimeout:
                return await run_in_threadpool(_hand_over, request, *uploads, options, work)
            if tmx is not None:
                return FileResponse(
                    tmx,
                    media_type=TMX_MEDIA,
                    filename="aligned.tmx",
                    background=BackgroundTask(remove_tree, tmx.parent),
                )
        finally:
            slot.release()
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
            "warnings": result.warnings + low,
            "imported": imported,
            "min_score": threshold,
            **left_out(result, threshold),
        }

    return router
