"""Reviews: the alignment editor's model and its spreadsheet round trip."""
