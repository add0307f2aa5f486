"""Keys, scopes, sessions and CSRF."""
