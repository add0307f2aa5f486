"""Route of the aligner: two uploaded documents → sentence pairs, optionally into the memory."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from service.memory_routes import TMX_MEDIA
from service.security import check_key
from service.state import State, remove_tree


def create_router() -> APIRouter:
    router = APIRouter(tags=["alignment"])

    @router.post("/align")
    def align(
        request: Request,
        state: State,
        zh: Annotated[UploadFile, File(description="the Chinese document (.txt/.docx/.pdf)")],
        en: Annotated[UploadFile, File(description="the English document (.txt/.docx/.pdf)")],
        format: Annotated[Literal["json", "tmx"], Form()] = "json",
        mode: Annotated[Literal["auto", "record", "plain"], Form()] = "auto",
        add_to_memory: Annotated[bool, Form()] = False,
        document: Annotated[str, Form(description="document name kept with the units")] = "",
    ):
        """Align two documents; answer the pairs as JSON or TMX, optionally adding them."""
        settings = state.settings
        check_key(request, "write" if add_to_memory else "align")
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
            added = state.store.import_units(
                pairs_to_units(result.pairs, document=name), source=f"align:{name}"
            )
            state.sync()
            imported = added.as_dict()
        if format == "tmx":
            tmp = Path(tempfile.mkdtemp(prefix="align-", dir=state.tmp_dir()))
            path = tmp / "aligned.tmx"
            write_tmx(path, pairs_to_units(result.pairs, document=name))
            return FileResponse(
                path,
                media_type=TMX_MEDIA,
                filename="aligned.tmx",
                background=BackgroundTask(remove_tree, tmp),
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

    return router
