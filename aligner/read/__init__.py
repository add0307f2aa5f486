"""Reading: bytes of a PDF, Word or text file -> a Document of paragraphs."""
