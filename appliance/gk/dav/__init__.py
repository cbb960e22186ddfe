"""Calendars and contacts (CalDAV/CardDAV): Radicale embedded as a WSGI sub-app under ``/dav/``.

Radicale (pinned, from PyPI) speaks the protocol (PROPFIND, REPORT, sync-collection, filters,
recurrence); GK supplies its plugins: ``storage`` (SQLite, ``DATA_DIR/dav.sqlite3``), ``auth``
(GK accounts and app passwords through ``ctx.auth``, with its throttling) and ``rights`` (each
user owns ``/dav/<address>/``). ``service`` builds Radicale's configuration in code (no config
file, no hooks) and imports Radicale on the first DAV request: ``import radicale`` costs ~18 MB
of RSS that a box whose users never sync a calendar should not carry.
"""
