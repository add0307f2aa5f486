"""HTTP: the app, its routes by concern, the pages, templates and static files."""
