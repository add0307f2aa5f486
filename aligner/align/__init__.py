"""Sentences: cutting, embedding, and the sentence aligner with its scoring."""
