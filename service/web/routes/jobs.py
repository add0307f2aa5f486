"""``/jobs``: batch alignment jobs and TMX imports, run by :class:`service.jobs.JobManager`.

Who may see and change a job: a job belongs to the key that made it. Cancelling it
(``DELETE``) needs the ``align`` scope and that key, or an ``admin`` key for anyone's job.
Reading it (status, pair reports, TMX) needs the ``read`` scope and its id: the id is 128
random bits, answered only to the key that made the job, so it works as the capability to
read it (as a share link does); reads stay open to the pages and scripts that follow a job
without its maker's key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from aligner.batch import BatchSettings
from aligner.errors import InputError
from service.errors import ServiceError
from service.jobs import PAIRS_SHOWN, JobManager
from service.security.keys import KeyInfo, check_key, require_align_key
from service.security.session import require_read  # the header key, or the pages' login cookie


def create_router(manager: JobManager) -> APIRouter:
    """``/jobs`` endpoints over ``manager``: starting one needs the ``align`` scope, ``write``
    when it adds to the memory; cancelling one, its maker's key or an admin key."""
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
        owner = request.state.key.name
        slot = request.app.state.service.heavy.acquire(owner)  # unpacking
        try:
            if file is not None:
                job = manager.submit_archive(file.file, options, owner=owner)
            else:
                job = manager.submit_files(
                    (manifest.filename or "", manifest.file.read()),
                    [(f.filename or "", f.file) for f in files],
                    options,
                    owner=owner,
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

    @router.delete(
        "/{job_id}", responses={202: {"description": "asked to stop; still running"}}
    )
    def cancel_job(job_id: str, key: Annotated[KeyInfo, Depends(require_align_key)]):
        """Cancel a job made by this key (an admin key: anyone's). A queued job is cancelled
        at once; a running one is stopped by the process running it (an import rolls back),
        and the answer waits for that a few seconds: 200 ``cancelled``, 409
        ``import_committed`` if its import committed first, or 202 while it still runs
        (``cancel_requested``: it stops at its next step)."""
        job = manager.cancel(job_id, key.name, admin=key.allows("admin"))
        return JSONResponse(job.to_json(), status_code=202 if job.state == "running" else 200)

    return router
