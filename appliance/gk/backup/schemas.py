"""The schema version this GK supports for each SQLite database of the data dir, for restore.

Each database keeps its schema version in ``PRAGMA user_version`` (``gk.store.db.migrate``: the
number of migrations applied); a GK whose migration list is shorter refuses it at start
(``SchemaTooNew``). Restore checks the same thing before anything on the box is replaced, so
an archive made by a newer GK is refused with "update GK first" instead of leaving a box that
does not start.

``DATABASES``: path in the data dir (``*`` for one directory level) → the module holding that
database's ``MIGRATIONS``; the mailbox indexes are the mailbox's own business (its face answers). Imported only when a restore asks (the modules are a feature's
storage: chat, mail index…). ``tests/unit/test_backup_safeguards.py`` checks every module
with a ``MIGRATIONS`` list is here.

A database this GK does not know: each archive's ``info.json`` lists the databases the GK that
made it owns (``owned()``) and the ``GENERATION`` of that list. Restore refuses an archive
holding a database this GK does not know when the archive's GK owned it and its list is of a
later generation: a newer GK added it, and restoring without it would lose that feature's data
quietly (this GK would neither open it nor say so). A database unknown to both, or owned only
by an older generation (one a later GK dropped), is a leftover: restored as a file, never
opened. An archive from before the list existed was made by an older GK: nothing to refuse.
"""

from __future__ import annotations

import fnmatch
import importlib

GENERATION = 1  # bump it with every database added to or dropped from DATABASES (a test pins the list)

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


def matches(rel: str, pattern: str) -> bool:
    """``rel`` (relative to the data dir) is ``pattern`` (``*``: one directory level)."""
    return pattern.count("/") == rel.count("/") and fnmatch.fnmatchcase(rel, pattern)


def module_of(rel: str) -> str | None:
    """The module whose ``MIGRATIONS`` the database at ``rel`` (relative to the data dir) uses."""
    for pattern, module in DATABASES.items():
        if matches(rel, pattern):
            return module
    return None


def owned() -> list[str]:
    """The databases this GK makes and opens (patterns), for the archive's ``info.json``: those
    of ``DATABASES`` and each user's mailbox index (its name asked of the mailbox's face)."""
    from gk.mail.mailbox import INDEX_FILE

    return sorted([*DATABASES, f"mail/*/{INDEX_FILE}"])


def newer_owner(rel: str, info: dict[str, object]) -> str | None:
    """When the archive's GK (its ``info.json``: ``info``) owned the database ``rel`` this GK
    does not know, and its list is of a later generation than ``GENERATION``: that GK's version
    (a newer GK added the database). None otherwise (this GK knows it, or it is a leftover)."""
    if supported(rel) is not None:
        return None
    theirs = info.get("databases")
    if not isinstance(theirs, dict):
        return None  # made before the list existed: by an older GK
    generation, names = theirs.get("generation"), theirs.get("owned")
    if not isinstance(generation, int) or generation <= GENERATION or not isinstance(names, list):
        return None
    if not any(isinstance(n, str) and matches(rel, n) for n in names):
        return None
    return str(info.get("gk_version") or "an unknown version")


def supported(rel: str) -> int | None:
    """The newest schema version of ``rel`` this GK knows; None for a database it does not use."""
    module = module_of(rel)
    if module is None:
        if rel.startswith("mail/"):
            from gk.mail import mailbox

            return mailbox.index_schema(rel)
        return None
    return len(importlib.import_module(module).MIGRATIONS)
