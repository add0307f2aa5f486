"""API routes, one module per concern; none imports another."""
