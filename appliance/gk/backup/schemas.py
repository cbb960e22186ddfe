"""The schema version this GK supports for each SQLite database of the data dir, for restore.

Each database keeps its schema version in ``PRAGMA user_version`` (``gk.store.db.migrate``: the
number of migrations applied); a GK whose migration list is shorter refuses it at start
(``SchemaTooNew``). Restore checks the same thing before anything on the box is replaced, so
an archive made by a newer GK is refused with "update GK first" instead of leaving a box that
does not start.

``DATABASES``: path in the data dir (``*`` for one directory level) → the module holding that
database's ``MIGRATIONS``; the mailbox indexes are the mailbox's own business (its face answers). Imported only when a restore asks (the modules are a feature's
storage: chat, mail index…). A database not listed here (one a newer GK added) is not checked:
this GK does not open it. ``tests/unit/test_backup_safeguards.py`` checks every module
with a ``MIGRATIONS`` list is here.
"""

from __future__ import annotations

import fnmatch
import importlib

DATABASES: dict[str, str] = {
    "accounts.sqlite3": "gk.accounts.store",
    "settings.sqlite3": "gk.settings",
    "claim.sqlite3": "gk.claim",
    "web.sqlite3": "gk.web.sessions",
    "oauth.sqlite3": "gk.oauth.store",
    "ai.sqlite3": "gk.ai.tokens",  # conversations.py shares this migration list
    "queue.sqlite3": "gk.mail.queue.store",
    "dav.sqlite3": "gk.dav.schema",
    "chat.sqlite3": "gk.chat.store",
    "chat-files.sqlite3": "gk.chat.files",
    "tools.sqlite3": "gk.mcp.toolbox",
    "mcp.sqlite3": "gk.mcp.approvals",
}  # and each user's mailbox index, asked of the mailbox's face (``gk.mail.mailbox.index_schema``)


def module_of(rel: str) -> str | None:
    """The module whose ``MIGRATIONS`` the database at ``rel`` (relative to the data dir) uses."""
    depth = rel.count("/")
    for pattern, module in DATABASES.items():
        if pattern.count("/") == depth and fnmatch.fnmatchcase(rel, pattern):
            return module
    return None


def supported(rel: str) -> int | None:
    """The newest schema version of ``rel`` this GK knows; None for a database it does not use."""
    module = module_of(rel)
    if module is None:
        if rel.startswith("mail/"):
            from gk.mail import mailbox

            return mailbox.index_schema(rel)
        return None
    return len(importlib.import_module(module).MIGRATIONS)
