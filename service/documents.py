"""Documents sent for alignment: read within the operator's limits, and the encoder to align
them with (``/align``, reviews and jobs alike)."""

from __future__ import annotations

from aligner.align.embed import DEFAULT_ENCODER, Encoder, load_encoder
from aligner.limits import read_side
from aligner.models import Document
from service.config import Settings


def read_pair(
    settings: Settings, zh: tuple[bytes, str], en: tuple[bytes, str]
) -> list[tuple[Document, int]]:
    """Both documents read within the operator's limits, each with its characters."""
    limits = settings.align_limits
    return [read_side(data, name, lang, limits) for (data, name), lang in ((zh, "zh"), (en, "en"))]


def encoder_for(settings: Settings) -> Encoder:
    """The encoder the operator chose for lookups, or the default one when that is off."""
    return load_encoder(settings.encoder if settings.semantic_enabled else DEFAULT_ENCODER)
