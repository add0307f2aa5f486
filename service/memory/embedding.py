"""Embedding a whole memory for semantic search as a job of its own: ``concordia-tm embed``.

Millions of units take hours to embed on one machine (USE-m3: about 750 sentences a second
here), so a large import is embedded apart from the service, in chunks, on a Dask cluster: a
local one of ``--workers`` processes, or the running one batch alignments use
(``--scheduler tcp://…``), with a progress bar. It is the semantic index's own sync with the
embedding done by the cluster, so it is resumable: the index is saved every 50,000 units and at
the end, and the same command run again starts after the last save. A running service's fuzzy
lookups go on meanwhile, and its semantic index takes each save (one process embeds at a time,
``semantic-embed.lock``; the service's own embedding waits while this runs).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from aligner.align.embed import encode_sides
from aligner.cluster import dask_client, map_in_order
from aligner.errors import InputError
from service.memory.semantic import Rows, SemanticIndex
from service.memory.store import TMStore

CHUNK = 2048  # units a task embeds: long enough to keep a worker's BLAS busy, short to resume


def embed_memory(
    data: Path,
    store: TMStore,
    spec: str,
    *,
    workers: int | None,
    scheduler: str | None,
    exact_below: int,
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Embed the units of ``store`` the semantic index in ``data`` lacks; ``progress(done,
    total)`` after each chunk. Returns what was done."""
    index = SemanticIndex(data, spec, exact_below=exact_below)
    try:
        index.load(store)
        total = max(store.last_id() - index.max_id, 0)
        done = 0

        def advance(units: int) -> None:
            nonlocal done
            done += units
            if progress is not None:
                progress(min(done, total), total)

        with dask_client(workers, scheduler) as client:
            ahead = 2 * max(len(client.scheduler_info().get("workers", {})), 1)

            def on_cluster(chunks: Iterable[Rows]) -> Iterator[tuple[Rows, dict[str, np.ndarray]]]:
                sent: deque[Rows] = deque()

                def texts() -> Iterator[dict[str, list[str]]]:
                    for rows in chunks:
                        sent.append(rows)
                        yield {"zh": [r[1] for r in rows], "en": [r[2] for r in rows]}

                for vectors in map_in_order(client, encode_sides, texts(), ahead=ahead,
                                            spec=spec):
                    yield sent.popleft(), vectors

            added = index.sync(store, chunk, embed=on_cluster, progress=advance)
        if store.last_id() > index.max_id and not added:
            raise InputError(
                "another process is embedding this memory (a service with an encoder?): "
                "run this again when it has finished, or stop it"
            )
        return {"embedded": added, "units": len(index), "quantised": index.approximate}
    finally:
        index.close()
