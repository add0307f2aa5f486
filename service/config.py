"""Service settings, read from the environment (``CONCORDIA_*``) or built directly in tests."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting in the environment has a value the service cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass
class Settings:
    """Everything the service can be configured with.

    ``api_key`` None means writes are refused (there is no key to check them against).
    ``encoder`` is an ``aligner.embed`` spec, or ``"none"`` for a fuzzy-only service.
    Memories with at least ``semantic_exact_below`` segments on a side use an approximate
    (HNSW) semantic index; smaller ones are searched exactly.
    """

    data_dir: Path = Path("data")
    api_key: str | None = None
    open_reads: bool = True
    max_upload_bytes: int = 50 * MIB
    max_segment_chars: int = 2000
    request_timeout_s: float = 30.0
    encoder: str = "use-m3"
    semantic_exact_below: int = 50_000

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.api_key is not None and not self.api_key.strip():
            self.api_key = None

    @property
    def semantic_enabled(self) -> bool:
        return self.encoder.lower() != "none"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``CONCORDIA_*`` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        return cls(
            data_dir=Path(env.get("CONCORDIA_DATA_DIR", "").strip() or "data"),
            api_key=env.get("CONCORDIA_API_KEY") or None,
            open_reads=_bool(env, "CONCORDIA_OPEN_READS", True),
            max_upload_bytes=_int(env, "CONCORDIA_MAX_UPLOAD_BYTES", 50 * MIB),
            max_segment_chars=_int(env, "CONCORDIA_MAX_SEGMENT_CHARS", 2000),
            request_timeout_s=_float(env, "CONCORDIA_REQUEST_TIMEOUT", 30.0),
            encoder=env.get("CONCORDIA_ENCODER", "").strip() or "use-m3",
            semantic_exact_below=_int(env, "CONCORDIA_SEMANTIC_EXACT_BELOW", 50_000),
        )
