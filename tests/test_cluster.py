"""The Dask helpers that batch alignment and embedding a memory share."""

from __future__ import annotations

import time

import pytest

from aligner import cluster
from aligner.cluster import dask_client, map_in_order
from aligner.errors import InputError


def _slow_double(item: int) -> int:
    time.sleep(0.02 * (5 - item % 5))  # later items finish first
    return item * 2


def test_results_come_in_the_order_of_the_items_with_a_bounded_window():
    pulled = []

    def items():
        for k in range(20):
            pulled.append(k)
            yield k

    with dask_client(workers=2, scheduler=None) as client:
        stream = map_in_order(client, _slow_double, items(), ahead=4)
        first = next(stream)
        assert len(pulled) == 4  # no more than ``ahead`` submitted before the first is taken
        assert [first, *stream] == [k * 2 for k in range(20)]


def test_an_unreachable_scheduler_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "2s")
    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        with dask_client(workers=None, scheduler="tcp://127.0.0.1:9"):
            pass
