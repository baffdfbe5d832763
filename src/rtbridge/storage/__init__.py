"""Persistence: SQLModel tables, the engine, Alembic migrations and transactional operations."""
