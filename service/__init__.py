"""Concordia translation-memory service (FastAPI)."""
