"""Service settings and limits: one registry, read from the environment or built in tests.

``REGISTRY`` names every setting once: its ``Settings`` field, environment variable, default
and help text. ``Settings.from_env`` reads them, ``python -m service.config`` prints them as
the table in docs/api.md, and a test checks that the two agree.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aligner.limits import AlignLimits

MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting in the environment has a value the service cannot use."""


@dataclass(frozen=True)
class Setting:
    """One setting: ``kind`` is int, float, bool, str, path, or an optional str/path."""

    field: str
    env: str
    default: object
    kind: str
    help: str
    minimum: float = 1


REGISTRY: tuple[Setting, ...] = (
    # -- where things live
    Setting("data_dir", "CONCORDIA_DATA_DIR", Path("data"), "path",
            "data folder: the memory, its indexes, jobs, the embedding cache"),
    Setting("store", "CONCORDIA_STORE", None, "str?",
            "where the memory, jobs and reviews are kept: unset or `sqlite` for SQLite in the "
            "data folder, or `postgresql://user@host:port/db` shared by several replicas "
            "(each keeps its indexes in its own data folder)"),
    Setting("store_pool_size", "CONCORDIA_STORE_POOL_SIZE", 12, "int",
            "connections each process keeps to a PostgreSQL store, for its requests, lookups, "
            "index syncs and jobs (its change listener takes one more); at least 2: an import "
            "writes its audit row beside its transaction", 2),
    Setting("store_pool_timeout_s", "CONCORDIA_STORE_POOL_TIMEOUT", 10.0, "float",
            "seconds a request waits for a free connection of that pool (503 "
            "`store_unavailable` beyond)", 0.1),
    Setting("store_connect_timeout_s", "CONCORDIA_STORE_CONNECT_TIMEOUT", 5, "int",
            "seconds a connection to the PostgreSQL server may take: a host that does not "
            "answer holds nothing longer (libpq's `connect_timeout`, 2 at the least)", 2),
    Setting("store_start_timeout_s", "CONCORDIA_STORE_START_TIMEOUT", 15.0, "float",
            "seconds a starting process waits for the PostgreSQL store to answer before it "
            "stops with `store_unreachable`"),
    Setting("cache_dir", "CONCORDIA_CACHE_DIR", None, "path?",
            "embedding cache folder (default DATA/cache)"),
    Setting("embed_cache_mb", "CONCORDIA_EMBED_CACHE_MB", 512, "int",
            "size bound of the on-disk embedding cache (about 83,000 sentences with use-m3, "
            "whose pooled rows take 6 KiB); oldest entries evicted beyond it"),
    # -- keys and who may do what
    Setting("api_key", "CONCORDIA_API_KEY", None, "str?",
            "one key with every scope (read, align, write, admin); trimmed of spaces"),
    Setting("keys_file", "CONCORDIA_KEYS_FILE", None, "path?",
            "TOML file of named keys with scopes, stored as SHA-256; re-read when it changes"),
    Setting("open_reads", "CONCORDIA_OPEN_READS", True, "bool",
            "lookups, concordance, export and stats without a key"),
    Setting("open_align", "CONCORDIA_OPEN_ALIGN", False, "bool",
            "`POST /align` without a key (never into the memory)"),
    Setting("session_hours", "CONCORDIA_SESSION_HOURS", 12.0, "float",
            "hours a page login lasts (the session ends earlier at logout)", 0.01),
    Setting("trusted_proxies", "CONCORDIA_TRUSTED_PROXIES", None, "str?",
            "comma-separated addresses or networks of reverse proxies whose `X-Forwarded-For` "
            "and `X-Forwarded-Proto` are believed (cookies are `Secure` behind https)"),
    # -- what one request may make the server do
    Setting("max_upload_bytes", "CONCORDIA_MAX_UPLOAD_BYTES", 50 * MIB, "int",
            "request body (413 beyond)"),
    Setting("max_expanded_bytes", "CONCORDIA_MAX_EXPANDED_BYTES", 200 * MIB, "int",
            "decompressed size of a job's zip (413 beyond)"),
    Setting("max_archive_entries", "CONCORDIA_MAX_ARCHIVE_ENTRIES", 10_000, "int",
            "entries in a job's zip, counted before its directory is read (413 beyond)"),
    Setting("max_document_bytes", "CONCORDIA_MAX_DOCUMENT_BYTES", 32 * MIB, "int",
            "decompressed size of one .docx or .pdf, checked before it is parsed (413)"),
    Setting("max_document_parts", "CONCORDIA_MAX_DOCUMENT_PARTS", 2_000, "int",
            "parts of one .docx (zip entries) or pages of one .pdf (413 beyond)"),
    Setting("max_segment_chars", "CONCORDIA_MAX_SEGMENT_CHARS", 2000, "int",
            "characters of a segment looked up or imported"),
    Setting("max_align_chars", "CONCORDIA_MAX_ALIGN_CHARS", 1_000_000, "int",
            "characters of one side of an alignment (413 beyond)"),
    Setting("max_align_sentences", "CONCORDIA_MAX_ALIGN_SENTENCES", 20_000, "int",
            "sentences of one side of an alignment (413 beyond)"),
    Setting("align_sync_chars", "CONCORDIA_ALIGN_SYNC_CHARS", 200_000, "int",
            "characters of both sides above which `/align` answers 202 with a job instead"),
    Setting("request_timeout_s", "CONCORDIA_REQUEST_TIMEOUT", 30.0, "float",
            "seconds a request may compute (504 beyond; an alignment becomes a job)"),
    Setting("max_heavy", "CONCORDIA_MAX_HEAVY", 2, "int",
            "alignments, imports, job uploads and exports at once, per process (429)"),
    Setting("max_heavy_per_key", "CONCORDIA_MAX_HEAVY_PER_KEY", 1, "int",
            "the same per key (anonymous callers share one) (429)"),
    Setting("retry_after_s", "CONCORDIA_RETRY_AFTER", 5, "int",
            "the `Retry-After` seconds of a 429"),
    # -- jobs
    Setting("max_queued_jobs", "CONCORDIA_MAX_QUEUED_JOBS", 20, "int",
            "jobs queued or running at once (429 beyond)"),
    Setting("job_retention_hours", "CONCORDIA_JOB_RETENTION_HOURS", 168.0, "float",
            "finished jobs (files and status) are deleted this long after they end", 0),
    Setting("job_lease_s", "CONCORDIA_JOB_LEASE_S", 30.0, "float",
            "a running job's lease: the process running it renews it; another process takes "
            "the job over this long after that process died"),
    # -- semantic search
    Setting("encoder", "CONCORDIA_ENCODER", "use-m3", "str",
            "`use-m3`, `st:<model>`, or `none` for fuzzy lookup only"),
    Setting("semantic_exact_below", "CONCORDIA_SEMANTIC_EXACT_BELOW", 50_000, "int",
            "units below which semantic search is exact; IVF-PQ from there on"),
    # -- the HTTP server (uvicorn)
    Setting("max_connections", "CONCORDIA_MAX_CONNECTIONS", 200, "int",
            "open connections per process (503 beyond)"),
    Setting("header_timeout_s", "CONCORDIA_HEADER_TIMEOUT", 10.0, "float",
            "seconds a client has to send a request's headers (connection closed beyond)"),
    Setting("body_timeout_s", "CONCORDIA_BODY_TIMEOUT", 120.0, "float",
            "seconds a client has to send a request's body (408 beyond)"),
    Setting("keep_alive_s", "CONCORDIA_KEEP_ALIVE", 5.0, "float",
            "seconds an idle kept-alive connection stays open"),
    Setting("max_header_bytes", "CONCORDIA_MAX_HEADER_BYTES", 16 * 1024, "int",
            "size of a request's headers (connection refused beyond)"),
)

_BY_FIELD = {s.field: s for s in REGISTRY}


def _default(name: str):
    return _BY_FIELD[name].default


def _parse(setting: Setting, raw: str):
    kind, name = setting.kind, setting.env
    if kind in ("str", "str?"):
        return raw
    if kind in ("path", "path?"):
        return Path(raw)
    if kind == "bool":
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    try:
        value = int(raw) if kind == "int" else float(raw)
    except ValueError:
        what = "an integer" if kind == "int" else "a number"
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if value < setting.minimum or value != value:
        raise ConfigError(f"{name} must be at least {setting.minimum:g}, got {raw}")
    return value


@dataclass
class Settings:
    """Everything the service can be configured with; see ``REGISTRY`` for each one."""

    data_dir: Path = _default("data_dir")
    store: str | None = _default("store")
    store_pool_size: int = _default("store_pool_size")
    store_pool_timeout_s: float = _default("store_pool_timeout_s")
    store_connect_timeout_s: int = _default("store_connect_timeout_s")
    store_start_timeout_s: float = _default("store_start_timeout_s")
    cache_dir: Path | None = _default("cache_dir")
    embed_cache_mb: int = _default("embed_cache_mb")
    api_key: str | None = _default("api_key")
    keys_file: Path | None = _default("keys_file")
    open_reads: bool = _default("open_reads")
    open_align: bool = _default("open_align")
    session_hours: float = _default("session_hours")
    trusted_proxies: str | None = _default("trusted_proxies")
    max_upload_bytes: int = _default("max_upload_bytes")
    max_expanded_bytes: int = _default("max_expanded_bytes")
    max_archive_entries: int = _default("max_archive_entries")
    max_document_bytes: int = _default("max_document_bytes")
    max_document_parts: int = _default("max_document_parts")
    max_segment_chars: int = _default("max_segment_chars")
    max_align_chars: int = _default("max_align_chars")
    max_align_sentences: int = _default("max_align_sentences")
    align_sync_chars: int = _default("align_sync_chars")
    request_timeout_s: float = _default("request_timeout_s")
    max_heavy: int = _default("max_heavy")
    max_heavy_per_key: int = _default("max_heavy_per_key")
    retry_after_s: int = _default("retry_after_s")
    max_queued_jobs: int = _default("max_queued_jobs")
    job_retention_hours: float = _default("job_retention_hours")
    job_lease_s: float = _default("job_lease_s")
    encoder: str = _default("encoder")
    semantic_exact_below: int = _default("semantic_exact_below")
    max_connections: int = _default("max_connections")
    header_timeout_s: float = _default("header_timeout_s")
    body_timeout_s: float = _default("body_timeout_s")
    keep_alive_s: float = _default("keep_alive_s")
    max_header_bytes: int = _default("max_header_bytes")

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.api_key is not None:
            self.api_key = self.api_key.strip() or None  # a trailing space is no part of it
        if self.keys_file is not None:
            self.keys_file = Path(self.keys_file)
        if self.cache_dir is not None:
            self.cache_dir = Path(self.cache_dir)
        for proxy in (self.trusted_proxies or "").split(","):
            if proxy.strip():
                try:
                    ipaddress.ip_network(proxy.strip(), strict=False)
                except ValueError:
                    raise ConfigError(
                        f"CONCORDIA_TRUSTED_PROXIES: {proxy.strip()!r} is not an address or "
                        "network"
                    ) from None

    @property
    def semantic_enabled(self) -> bool:
        return self.encoder.lower() != "none"

    @property
    def align_limits(self) -> AlignLimits:
        """What aligning one pair may cost (``/align``, reviews and batch jobs alike)."""
        from aligner.limits import AlignLimits
        from aligner.read.ingest import ReadLimits

        return AlignLimits(
            ReadLimits(max_bytes=self.max_document_bytes, max_parts=self.max_document_parts),
            max_chars=self.max_align_chars,
            max_sentences=self.max_align_sentences,
        )

    @property
    def store_pool(self) -> StorePool:
        """How this process reaches a PostgreSQL store."""
        return StorePool(self.store_pool_size, self.store_pool_timeout_s,
                         self.store_connect_timeout_s, self.store_start_timeout_s)

    @property
    def embed_cache_path(self) -> Path:
        """The SQLite embedding cache the service's alignments use."""
        return (self.cache_dir or self.data_dir / "cache") / "embeddings.sqlite"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``CONCORDIA_*`` variables; unset or empty ones keep their defaults."""
        return cls(**_read(REGISTRY, environ))


@dataclass(frozen=True)
class StorePool:
    """How a process reaches a PostgreSQL store (``CONCORDIA_STORE_POOL_*`` and the store's
    timeouts): connections kept, the wait for a free one, to connect, and at start."""

    size: int = _default("store_pool_size")
    wait_s: float = _default("store_pool_timeout_s")
    connect_timeout_s: int = _default("store_connect_timeout_s")
    start_timeout_s: float = _default("store_start_timeout_s")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StorePool:
        """These settings alone from the environment (the command-line tools read no
        others)."""
        mine = [s for s in REGISTRY if s.field in _POOL_FIELDS]
        return Settings(**_read(mine, environ)).store_pool


_POOL_FIELDS = ("store_pool_size", "store_pool_timeout_s", "store_connect_timeout_s",
                "store_start_timeout_s")


def _read(settings: Iterable[Setting], environ: Mapping[str, str] | None) -> dict:
    """The values of ``settings`` set in ``environ`` (the process's when None), parsed;
    unset or empty ones are left out."""
    env = os.environ if environ is None else environ
    values = {}
    for setting in settings:
        raw = env.get(setting.env, "").strip()
        if raw:
            values[setting.field] = _parse(setting, raw)
    return values


def _shown(setting: Setting) -> str:
    value = setting.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and value >= MIB and value % MIB == 0:
        return f"{value // MIB} MiB"
    if isinstance(value, int | float):
        return f"{value:,g}" if isinstance(value, float) else f"{value:,}"
    return f"`{value}`"


def markdown_table() -> str:
    """The settings as the table in docs/api.md."""
    rows = ["| variable | default | what it sets |", "| --- | --- | --- |"]
    rows += [f"| `{s.env}` | {_shown(s)} | {s.help} |" for s in REGISTRY]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
