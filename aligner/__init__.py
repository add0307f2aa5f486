"""Concordia aligner: ingest → segment → embed → align → TMX, for Chinese ↔ English UN documents."""

__version__ = "0.1.0"
