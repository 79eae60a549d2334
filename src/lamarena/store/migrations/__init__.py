"""Alembic migrations of the battle store (run through ``lamarena.store.db.migrate_to_head``)."""
