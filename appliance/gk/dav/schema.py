"""The schema of ``DATA_DIR/dav.sqlite3``, apart from Radicale: ``gk.dav.defaults`` (default and
shared collections, the sharing table) and ``gk dav`` use it without importing Radicale (~18 MB).

``shares``: a collection of ``owner`` (``<owner>/<collection>``) readable ("r") or readable and
writable ("rw") by ``member``; read by ``gk.dav.rights`` on every request for another owner's
collection and by ``gk.dav.storage`` to list a member's shared collections in their home set.

``schedule_inbox``: each user's RFC 6638 scheduling inbox (``gk.dav.inbox``): the iTIP messages
(REQUEST, CANCEL) addressed to them, apart from their calendars; a deleted one stays as a marker
(text emptied) so the same mail seen again is not delivered again; ``schedule_inbox_state`` bumps
a version on every change (the inbox's ctag).

``schedule_tags``: the RFC 6638 ``Schedule-Tag`` of each scheduling object resource (an item
whose component has an ORGANIZER), written with the item in the same transaction
(``gk.dav.scheduletag``); its row goes with the item (``Storage._delete_item``) or its collection
(the foreign key). The migration gives the objects stored before it a tag of their own.
"""

from __future__ import annotations

MIGRATIONS = [
    """
    CREATE TABLE collections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        parent TEXT,
        tag TEXT NOT NULL DEFAULT '',
        meta TEXT NOT NULL DEFAULT '{}',
        seq INTEGER NOT NULL DEFAULT 0,
        purged_seq INTEGER NOT NULL DEFAULT 0,
        modified REAL NOT NULL
    );
    CREATE INDEX collections_parent ON collections(parent);
    INSERT INTO collections (path, parent, modified) VALUES ('', NULL, 0);
    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        href TEXT NOT NULL,
        uid TEXT NOT NULL,
        etag TEXT NOT NULL,
        name TEXT NOT NULL,
        component TEXT NOT NULL,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        modified REAL NOT NULL,
        text TEXT NOT NULL,
        UNIQUE (collection, href)
    );
    CREATE INDEX items_uid ON items(collection, uid);
    CREATE INDEX items_seq ON items(collection, seq);
    CREATE INDEX items_start ON items(collection, start);
    CREATE TABLE tombstones (
        collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        href TEXT NOT NULL,
        seq INTEGER NOT NULL,
        deleted REAL NOT NULL,
        PRIMARY KEY (collection, href)
    ) WITHOUT ROWID;
    CREATE INDEX tombstones_seq ON tombstones(collection, seq);
    """,
    """
    CREATE TABLE shares (
        owner TEXT NOT NULL,
        collection TEXT NOT NULL,
        member TEXT NOT NULL,
        rights TEXT NOT NULL CHECK (rights IN ('r', 'rw')),
        PRIMARY KEY (owner, collection, member)
    ) WITHOUT ROWID;
    CREATE INDEX shares_member ON shares(member);
    """,
    """
    CREATE TABLE schedule_inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL,
        href TEXT NOT NULL,
        uid TEXT NOT NULL,
        method TEXT NOT NULL,
        text TEXT NOT NULL,
        received REAL NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        UNIQUE (owner, href)
    );
    CREATE TABLE schedule_inbox_state (
        owner TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE schedule_tags (
        collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        href TEXT NOT NULL,
        tag TEXT NOT NULL,
        PRIMARY KEY (collection, href)
    ) WITHOUT ROWID;
    INSERT INTO schedule_tags (collection, href, tag)
        SELECT collection, href, '"' || lower(hex(randomblob(8))) || '"' FROM items
        WHERE instr(upper(text), char(10) || 'ORGANIZER') > 0;
    """,
]
