"""The Dask cluster that work too large for one process runs on: a local one, or a running one.

Batch alignment (:mod:`aligner.batch`) and embedding a large memory (``concordia-tm embed``)
both take ``--workers N`` (a local cluster of N single-threaded worker processes) or
``--scheduler tcp://HOST:PORT`` (an existing cluster, on this machine or others).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from aligner.errors import InputError

if TYPE_CHECKING:
    from dask.distributed import Client

# Dask settings for the workers of a local cluster (measured with one worker, 40 pairs):
# - Dask sets MALLOC_TRIM_THRESHOLD_ for its workers; any explicit value turns off glibc's
#   sliding mmap threshold, so numpy's large temporaries are mapped and unmapped on every call
#   (30 % more time per pair). None leaves the variable unset.
# - the statistical profiler samples the running task's stack every 10 ms (10-15 % per pair);
# - the event-loop tick and system monitor wake every worker and the scheduler 50 and 2 times a
#   second, taking the GIL from the pair being aligned; less often halves the CPU time of the
#   client process, where the scheduler and the nannies of a local cluster run.
LOCAL_CLUSTER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
}

CONNECT_TIMEOUT = "20s"  # to reach a running scheduler


@contextmanager
def dask_client(workers: int | None, scheduler: str | None) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, else of a local cluster of ``workers``
    processes (started here, closed on leaving)."""
    import dask
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    else:
        if not workers or workers < 1:
            raise InputError("a local Dask cluster needs at least one worker")
        with dask.config.set(LOCAL_CLUSTER_CONFIG):  # read by the nannies as they start
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def map_in_order(
    client: Client, fn: Callable, items: Iterable, *, ahead: int, **kwargs
) -> Iterator:
    """``fn(item, **kwargs)`` for each of ``items`` on the cluster, the results in the order
    of ``items``, with at most ``ahead`` tasks submitted and not yet taken: the workers stay
    busy while the caller writes the results, and a long stream is never all in memory."""
    pending: deque = deque()
    for item in items:
        pending.append(client.submit(fn, item, pure=False, **kwargs))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
