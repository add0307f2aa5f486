"""``/jobs``: batch alignment jobs and TMX imports, run by :class:`service.jobs.JobManager`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse

from aligner.batch import BatchSettings
from aligner.errors import InputError
from service.errors import ServiceError
from service.jobs import PAIRS_SHOWN, JobManager
from service.security.keys import check_key, require_align_key
from service.security.session import require_read  # the header key, or the pages' login cookie


def create_router(manager: JobManager) -> APIRouter:
    """``/jobs`` endpoints over ``manager``: starting and cancelling one needs the ``align``
    scope, ``write`` when it adds to the memory."""
    router = APIRouter(prefix="/jobs", tags=["jobs"])

    @router.post("", status_code=202)
    def submit_job(
        request: Request,
        file: Annotated[
            UploadFile | None, File(description="zip of NAME.zh.* / NAME.en.* pairs")
        ] = None,
        manifest: Annotated[
            UploadFile | None, File(description="CSV / JSON Lines manifest naming the files")
        ] = None,
        files: Annotated[
            list[UploadFile] | None, File(description="the documents the manifest names")
        ] = None,
        add_to_memory: Annotated[bool, Form()] = False,
        mode: Annotated[str, Form()] = "auto",
        min_score: Annotated[float | None, Form()] = None,
    ) -> dict:
        """Start a job: a zip in ``file``, or ``manifest`` plus ``files``; answers its id."""
        check_key(request, "write" if add_to_memory else "align")
        options = {"add_to_memory": add_to_memory, "mode": mode, "min_score": min_score}
        try:
            BatchSettings.create(min_score=min_score, mode=mode)
        except InputError as exc:
            raise ServiceError(400, "bad_option", str(exc)) from None
        if file is not None and (manifest is not None or files):
            raise ServiceError(400, "bad_upload", "send either a zip or a manifest with files")
        if file is None and (manifest is None or not files):
            raise ServiceError(400, "bad_upload", "send a zip in 'file', or 'manifest' and 'files'")
        slot = request.app.state.service.heavy.acquire(request.state.key.name)  # unpacking
        try:
            if file is not None:
                job = manager.submit_archive(file.file, options)
            else:
                job = manager.submit_files(
                    (manifest.filename or "", manifest.file.read()),
                    [(f.filename or "", f.file) for f in files],
                    options,
                )
        finally:
            slot.release()
        return {"id": job.id, "state": job.state, "pairs": job.total}

    @router.get("/{job_id}", dependencies=[Depends(require_read)])
    def get_job(
        job_id: str,
        offset: Annotated[int, Query(ge=0, le=10_000_000, description="first pair shown")] = 0,
        limit: Annotated[int, Query(ge=1, le=PAIRS_SHOWN, description="pairs shown")] = (
            PAIRS_SHOWN
        ),
    ) -> dict:
        """A job's state, progress and pair reports (``offset``/``limit`` page them)."""
        return manager.get(job_id, offset, limit).to_json()

    @router.get("/{job_id}/tmx", dependencies=[Depends(require_read)])
    def get_job_tmx(job_id: str) -> FileResponse:
        return FileResponse(
            manager.tmx_path(job_id),
            media_type="application/x-tmx+xml",
            filename=f"job-{job_id}.tmx",
        )

    @router.delete("/{job_id}", dependencies=[Depends(require_align_key)])
    def cancel_job(job_id: str) -> dict:
        return manager.cancel(job_id).to_json()

    return router
