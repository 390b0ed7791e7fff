"""ERI's HTTP API (FastAPI): JSON routes and, beside them, the server-rendered pages."""
