"""OAuth state in ``DATA_DIR/oauth.sqlite3``: registered clients (RFC 7591), pending
authorization requests (between ``/oauth/authorize`` and the consent click), authorization
codes, and grants (one per consent: its refresh token and its current access token).

Every secret is stored as its SHA-256, never itself (codes, access and refresh tokens are 32
random bytes from ``secrets``: a plain hash is enough, as in ``gk.ai.tokens``). Codes are
single-use and live ``CODE_SECONDS``; presenting a used code again revokes the grant it made
(RFC 6749 §4.1.2). Access tokens live ``ACCESS_SECONDS`` and are bound to one resource (RFC
8707 audience) and one grant; refresh tokens are rotated on each use (OAuth 2.1 §4.3.1 for
public clients): the old one stops working, and presenting it again ends the grant (RFC 9700
§4.14.2: one of the two holders is a thief). Deleting a grant (the user's account page, or a
replayed code) kills its refresh and access tokens at once. Writes are ``synchronous=FULL``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gk.store.db import Database, open_database

ACCESS_PREFIX = "gko_at_"
REFRESH_PREFIX = "gko_rt_"
CODE_SECONDS = 120.0
REQUEST_SECONDS = 600.0  # an authorization request waits this long for the user's consent
ACCESS_SECONDS = 3600.0
REFRESH_SECONDS = 30 * 86400.0
TOUCH_SECONDS = 300.0  # a grant's last_used is written at most this often

MIGRATIONS = [
    """
    CREATE TABLE clients (
        client_id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        uri TEXT NOT NULL DEFAULT '',
        redirect_uris TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE requests (
        id TEXT PRIMARY KEY,
        params TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE grants (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        client_id TEXT NOT NULL,
        client_name TEXT NOT NULL DEFAULT '',
        scope TEXT NOT NULL,
        resource TEXT NOT NULL,
        refresh_sha256 BLOB UNIQUE,
        refresh_expires REAL NOT NULL DEFAULT 0,
        previous_refresh_sha256 BLOB,
        access_sha256 BLOB UNIQUE,
        access_expires REAL NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        last_used REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX grants_address ON grants(address);
    CREATE INDEX grants_previous_refresh ON grants(previous_refresh_sha256);
    CREATE TABLE codes (
        code_sha256 BLOB PRIMARY KEY,
        address TEXT NOT NULL,
        client_id TEXT NOT NULL,
        client_name TEXT NOT NULL DEFAULT '',
        redirect_uri TEXT NOT NULL,
        challenge TEXT NOT NULL,
        scope TEXT NOT NULL,
        resource TEXT NOT NULL,
        expires REAL NOT NULL,
        grant_id INTEGER
    );
    """,
]


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    uri: str
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class Grant:
    id: int
    address: str
    client_id: str
    client_name: str
    scope: str
    resource: str
    created: float
    last_used: float

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


@dataclass(frozen=True)
class Issued:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str


class InvalidGrant(Exception):
    """RFC 6749 §5.2 ``invalid_grant``: the code or refresh token is unknown, used, expired,
    another client's, or for another redirect URI or resource."""


class OAuthStore:
    def __init__(self, path: Path):
        self.db: Database = open_database(path, MIGRATIONS)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> OAuthStore:
        return cls(Path(data_dir) / "oauth.sqlite3")

    def close(self) -> None:
        self.db.close()

    # -- clients (dynamic registration) --------------------------------------------------
    def register(self, name: str, uri: str, redirect_uris: list[str]) -> Client:
        client = Client("gk-client-" + secrets.token_urlsafe(16), name, uri, tuple(redirect_uris))
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO clients(client_id, name, uri, redirect_uris, created) VALUES (?,?,?,?,?)",
                (client.client_id, name, uri, json.dumps(redirect_uris), time.time()),
            )
        return client

    def client(self, client_id: str) -> Client | None:
        row = self.db.one("SELECT client_id, name, uri, redirect_uris FROM clients WHERE client_id = ?", (client_id,))
        if row is None:
            return None
        return Client(row["client_id"], row["name"], row["uri"], tuple(json.loads(row["redirect_uris"])))

    # -- authorization requests waiting for consent ---------------------------------------
    def save_request(self, params: dict[str, str]) -> str:
        rid = secrets.token_urlsafe(24)
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM requests WHERE created < ?", (now - REQUEST_SECONDS,))
            conn.execute("INSERT INTO requests(id, params, created) VALUES (?,?,?)", (rid, json.dumps(params), now))
        return rid

    def request(self, rid: str) -> dict[str, str] | None:
        row = self.db.one("SELECT params, created FROM requests WHERE id = ?", (rid,))
        if row is None or row["created"] < time.time() - REQUEST_SECONDS:
            return None
        params: dict[str, str] = json.loads(row["params"])
        return params

    def drop_request(self, rid: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM requests WHERE id = ?", (rid,))

    # -- codes ----------------------------------------------------------------------------
    def new_code(
        self, address: str, client: Client, redirect_uri: str, challenge: str, scope: str, resource: str
    ) -> str:
        code = secrets.token_urlsafe(32)
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM codes WHERE expires < ?", (now - 86400,))  # used ones kept a day: replay seen
            conn.execute("DELETE FROM grants WHERE refresh_expires > 0 AND refresh_expires < ?", (now,))  # lapsed
            conn.execute(
                "INSERT INTO codes(code_sha256, address, client_id, client_name, redirect_uri, challenge, scope,"
                " resource, expires) VALUES (?,?,?,?,?,?,?,?,?)",
                (digest(code), address, client.client_id, client.name, redirect_uri, challenge, scope, resource,
                 now + CODE_SECONDS),
            )  # fmt: skip
        return code

    def redeem(
        self, code: str, client_id: str, redirect_uri: str, verifier_ok: Callable[[str], bool], resource: str | None
    ) -> Issued:
        """Exchange a code (once): ``verifier_ok(challenge) -> bool`` checks PKCE. A replayed
        code revokes the grant it made; a wrong verifier burns the code (both committed before
        ``InvalidGrant`` is raised)."""
        now = time.time()
        key = digest(code)
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM codes WHERE code_sha256 = ?", (key,)).fetchone()
            error = ""
            if row is None:
                error = "unknown authorization code"
            elif row["grant_id"] is not None:  # replayed: whatever it issued is revoked
                conn.execute("DELETE FROM grants WHERE id = ?", (row["grant_id"],))
                error = "authorization code already used"
            elif row["expires"] < now:
                error = "authorization code expired"
            elif row["client_id"] != client_id:
                error = "authorization code issued to another client"
            elif row["redirect_uri"] != redirect_uri:
                error = "redirect_uri differs from the authorization request's"
            elif resource is not None and resource != row["resource"]:
                error = "resource differs from the authorization request's"
            elif not verifier_ok(row["challenge"]):
                conn.execute("UPDATE codes SET grant_id = 0 WHERE code_sha256 = ?", (key,))
                error = "PKCE code_verifier does not match the code_challenge"
            if not error:
                cur = conn.execute(
                    "INSERT INTO grants(address, client_id, client_name, scope, resource, created)"
                    " VALUES (?,?,?,?,?,?)",
                    (row["address"], client_id, row["client_name"], row["scope"], row["resource"], now),
                )
                grant_id = int(cur.lastrowid or 0)
                conn.execute("UPDATE codes SET grant_id = ? WHERE code_sha256 = ?", (grant_id, key))
                issued = self._issue(conn, grant_id, row["scope"], now)
        if error:
            raise InvalidGrant(error)
        return issued

    def _issue(self, conn: sqlite3.Connection, grant_id: int, scope: str, now: float) -> Issued:
        access, refresh = ACCESS_PREFIX + secrets.token_urlsafe(32), REFRESH_PREFIX + secrets.token_urlsafe(32)
        conn.execute(
            "UPDATE grants SET access_sha256 = ?, access_expires = ?, refresh_sha256 = ?, refresh_expires = ?,"
            " last_used = ? WHERE id = ?",
            (digest(access), now + ACCESS_SECONDS, digest(refresh), now + REFRESH_SECONDS, now, grant_id),
        )
        return Issued(access, refresh, int(ACCESS_SECONDS), scope)

    def refresh(self, refresh_token: str, client_id: str, resource: str | None) -> Issued:
        """A new access token and a new refresh token (the presented one stops working)."""
        now = time.time()
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT id, client_id, scope, resource, refresh_expires FROM grants WHERE refresh_sha256 = ?",
                (digest(refresh_token),),
            ).fetchone()
            error = ""
            if row is None:
                # a rotated refresh token presented again: stolen, or the client is confused;
                # either way the grant ends (RFC 9700 §4.14.2)
                conn.execute("DELETE FROM grants WHERE previous_refresh_sha256 = ?", (digest(refresh_token),))
                error = "unknown or already rotated refresh token"
            elif row["refresh_expires"] < now:
                error = "refresh token expired"
            elif row["client_id"] != client_id:
                error = "refresh token issued to another client"
            elif resource is not None and resource != row["resource"]:
                error = "resource differs from the grant's"
            else:
                conn.execute("UPDATE grants SET previous_refresh_sha256 = refresh_sha256 WHERE id = ?", (row["id"],))
                issued = self._issue(conn, int(row["id"]), row["scope"], now)
        if error:
            raise InvalidGrant(error)
        return issued

    # -- access tokens (the resource server's side) ----------------------------------------
    def verify(self, access_token: str, resource: str) -> Grant | None:
        """The grant of a live access token issued for ``resource``, else None."""
        if not access_token.startswith(ACCESS_PREFIX) or len(access_token) > 200:
            return None
        row = self.db.one(
            "SELECT id, address, client_id, client_name, scope, resource, created, last_used, access_expires"
            " FROM grants WHERE access_sha256 = ?",
            (digest(access_token),),
        )
        now = time.time()
        if row is None or row["access_expires"] < now or row["resource"] != resource:
            return None
        fields = dict(row)
        fields.pop("access_expires")
        if now - fields["last_used"] > TOUCH_SECONDS:  # "last used" for gk token list, not per request
            try:
                with self.db.relaxed_commits(), self.db.transaction() as conn:
                    conn.execute("UPDATE grants SET last_used = ? WHERE id = ?", (now, fields["id"]))
            except sqlite3.Error:  # a stamp never refuses a request (the database busy, read-only)
                pass
        return Grant(**fields)

    def revoke_token(self, token: str, client_id: str) -> None:
        """RFC 7009: the grant of this access or refresh token ends (a stranger's token: nothing)."""
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM grants WHERE client_id = ? AND (access_sha256 = ? OR refresh_sha256 = ?)",
                (client_id, digest(token), digest(token)),
            )

    # -- the user's page --------------------------------------------------------------------
    def grants(self, address: str) -> list[Grant]:
        rows = self.db.query(
            "SELECT id, address, client_id, client_name, scope, resource, created, last_used FROM grants"
            " WHERE address = ? ORDER BY id",
            (address,),
        )
        return [Grant(**dict(r)) for r in rows]

    def all_grants(self, address: str | None = None) -> list[Grant]:
        """Every grant (``gk token list``), or one user's; by user, then age."""
        if address:
            return self.grants(address)
        rows = self.db.query(
            "SELECT id, address, client_id, client_name, scope, resource, created, last_used FROM grants"
            " ORDER BY address, id"
        )
        return [Grant(**dict(r)) for r in rows]

    def delete_grant(self, grant_id: int, address: str | None) -> bool:
        """End a grant (its refresh and access tokens at once): the user's own (``address``), or
        any (None: the administrator's ``gk token del oauth:ID``)."""
        with self.db.transaction() as conn:
            if address is None:
                cur = conn.execute("DELETE FROM grants WHERE id = ?", (grant_id,))
            else:
                cur = conn.execute("DELETE FROM grants WHERE id = ? AND address = ?", (grant_id, address))
        return cur.rowcount > 0
