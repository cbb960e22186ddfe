"""SQLite storage shared by every feature (see ``db.py``)."""

from gk.store.db import Database, open_database

__all__ = ["Database", "open_database"]
