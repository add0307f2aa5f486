"""The meeting record: a Document -> speaker turns, and the pairing of turns."""
