import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# mutmut runs the tests from a copy of the checkout in mutants/
CHECKOUT = ROOT.parent if ROOT.name == "mutants" else ROOT
SHARED_DATA = Path(os.environ.get("CONCORDIA_SHARED_DATA", CHECKOUT.parent / "shared" / "data"))

# Tests never touch the user's embedding cache: one cache folder for the run, removed after it.
_CACHE = None
if "CONCORDIA_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="concordia-test-cache-")
    os.environ["CONCORDIA_CACHE_DIR"] = _CACHE


def pytest_unconfigure(config) -> None:
    if _CACHE is not None:
        shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set CONCORDIA_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the session (tests/pg.py); skipped where PostgreSQL
    is missing, failing instead when CI is set."""
    from tests.pg import start_server

    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server) -> str:
    """The URL of a new, empty database on the throwaway server."""
    return postgres_server.database()
