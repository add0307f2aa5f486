"""Route of the aligner: two uploaded documents → sentence pairs, optionally into the memory.

An alignment costs CPU and memory, so it needs the ``align`` scope (``write`` to add to the
memory) unless the operator opened it, takes a heavy-work slot (429 when none is free), and
is bounded: each document's expanded size and parts before it is parsed, then characters
and sentences per side (413). A pair too large to align within a request (over
``align_sync_chars`` in all) becomes a batch job: the answer is 202 with the job's id.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from aligner.errors import InputTooLarge
from service.config import Settings
from service.memory_routes import TMX_MEDIA
from service.security import check_key
from service.state import ServiceState, State, remove_tree


def read_limits(settings: Settings):
    """The reading limits of one uploaded document."""
    from aligner.ingest import ReadLimits

    return ReadLimits(
        max_bytes=settings.max_document_bytes, max_parts=settings.max_document_parts
    )


def read_pair(settings: Settings, zh: tuple[bytes, str], en: tuple[bytes, str]):
    """Both documents read and checked against the per-alignment limits."""
    from aligner.ingest import read_bytes
    from aligner.segment import split_paragraphs

    limits = read_limits(settings)
    docs = []
    for (data, name), lang in ((zh, "zh"), (en, "en")):
        doc = read_bytes(data, name, lang, limits)
        chars = sum(len(p) for p in doc.paragraphs)
        if chars > settings.max_align_chars:
            raise InputTooLarge(
                f"{name}: {chars} characters; an alignment takes at most "
                f"{settings.max_align_chars} a side"
            )
        sentences = len(split_paragraphs(doc.paragraphs, lang))
        if sentences > settings.max_align_sentences:
            raise InputTooLarge(
                f"{name}: {sentences} sentences; an alignment takes at most "
                f"{settings.max_align_sentences} a side"
            )
        docs.append((doc, chars))
    return docs


def encoder_for(settings: Settings):
    from aligner.embed import DEFAULT_ENCODER, load_encoder

    return load_encoder(settings.encoder if settings.semantic_enabled else DEFAULT_ENCODER)


def _as_job(request: Request, zh: tuple[bytes, str], en: tuple[bytes, str], options: dict):
    """Hand a large pair to the job queue; 202 with the job to follow."""
    names = [f"{side}{Path(name).suffix.lower()}" for (_, name), side in ((zh, "zh"), (en, "en"))]
    manifest = f"id,zh,en\nalign,{names[0]},{names[1]}\n".encode()
    job = request.app.state.jobs.submit_files(
        ("manifest.csv", manifest),
        [(names[0], io.BytesIO(zh[0])), (names[1], io.BytesIO(en[0]))],
        options,
    )
    return JSONResponse(
        {
            "job": job.id,
            "state": job.state,
            "status": f"/jobs/{job.id}",
            "tmx": f"/jobs/{job.id}/tmx",
            "message": "too large to align within a request: aligned as a job",
        },
        status_code=202,
        headers={"Location": f"/jobs/{job.id}"},
    )


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
    the command line writes them), and the answer says how many were kept out and why."""
    from aligner.pipeline import align_documents, confident_pairs
    from aligner.tmx import pairs_to_units

    (zh_doc, _), (en_doc, _) = docs
    result = align_documents(zh_doc, en_doc, mode=mode, encoder=encoder_for(state.settings))
    name = name or zh_doc.symbol or en_doc.symbol or file_name
    kept, low = confident_pairs(result.pairs, min_score)
    result.warnings += low
    imported = None
    if add_to_memory:
        added = state.store.import_units(
            pairs_to_units(kept, document=name), source=f"align:{name}"
        )
        state.sync()
        out = len(result.pairs) - len(kept)
        imported = {
            **added.as_dict(),
            "min_score": min_score,
            "kept_out": out,
            "kept_out_reason": f"score below {min_score:g}" if out else None,
        }
    return result, name, imported


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
        align within a request answers 202 with a job to follow (``GET /jobs/{id}``).
        """
        from aligner.align import DEFAULT_MIN_SCORE
        from aligner.pipeline import left_out

        settings = state.settings
        threshold = DEFAULT_MIN_SCORE if min_score is None else min_score
        key = check_key(request, "write" if add_to_memory else "align")
        slot = state.heavy.acquire(key.name)
        try:
            uploads = (
                (await zh.read(), zh.filename or "zh.txt"),
                (await en.read(), en.filename or "en.txt"),
            )
            docs = await state.run(read_pair, settings, *uploads, slot=slot)
            if sum(chars for _, chars in docs) > settings.align_sync_chars:
                options = {"add_to_memory": add_to_memory, "mode": mode, "min_score": min_score}
                return await state.run(_as_job, request, *uploads, options, slot=slot)
            result, name, imported = await state.run(
                _align, state, docs, mode, document, zh.filename or "", add_to_memory, threshold,
                slot=slot,
            )
            if format == "tmx":
                path = await state.run(_tmx_file, state, result, name, slot=slot)
                return FileResponse(
                    path,
                    media_type=TMX_MEDIA,
                    filename="aligned.tmx",
                    background=BackgroundTask(remove_tree, path.parent),
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
            "warnings": result.warnings,
            "imported": imported,
            "min_score": threshold,
            **left_out(result, threshold),
        }

    return router
