"""Database: SQLAlchemy 2 async engine, models and Alembic migrations.

SQLite (aiosqlite) is the embedded default, PostgreSQL (asyncpg) production.
"""

from eri.db.engine import create_engine, session_factory
from eri.db.migrate import upgrade

__all__ = ["create_engine", "session_factory", "upgrade"]
