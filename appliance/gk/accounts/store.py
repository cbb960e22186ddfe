"""Users, local domains, aliases, app passwords and security events (``DATA_DIR/accounts.sqlite3``).

A user is a mail address on one of the box's local mail domains. Local domains are explicit
(``gk domain add``, the admin's Users page): adding a user or an alias on a new domain adds it only
when the caller says so (``new_domain=True``; the very first domain, the wizard's, needs no
saying), never for a big public provider (``gk.accounts.providers``), and a domain stays local
until it is removed, even with no user left on it. Addresses are stored lower-case; recipients resolve through plus-addressing
(``alice+tag@`` → ``alice@``) and aliases (``gk alias add``).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gk.accounts.passwords import PasswordHasher, password_problem_template
from gk.accounts.providers import is_public_provider
from gk.locale import N_
from gk.store import Database, open_database

MIGRATIONS = [
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0,
        display_name TEXT NOT NULL DEFAULT '',
        language TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        password_changed REAL NOT NULL
    );
    CREATE TABLE aliases (
        source TEXT PRIMARY KEY,
        target TEXT NOT NULL
    );
    CREATE TABLE app_passwords (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created REAL NOT NULL,
        last_used REAL
    );
    CREATE INDEX app_passwords_user ON app_passwords(user_id);
    CREATE TABLE security_events (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        service TEXT NOT NULL,
        ip TEXT NOT NULL DEFAULT '',
        account TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX security_events_ts ON security_events(ts);
    """,
    """
    CREATE TABLE known_ips (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        client TEXT NOT NULL,
        last_ok REAL NOT NULL,
        PRIMARY KEY (user_id, client)
    );
    """,
    # explicit local domains: before, a domain was local while a user or alias had it, so adding
    # mom@gmail.com silently made gmail.com local; the domains in use at upgrade stay local
    """
    CREATE TABLE domains (
        name TEXT PRIMARY KEY,
        added REAL NOT NULL
    );
    INSERT OR IGNORE INTO domains(name, added)
        SELECT substr(address, instr(address, '@') + 1), created FROM users ORDER BY created;
    INSERT OR IGNORE INTO domains(name, added)
        SELECT substr(source, instr(source, '@') + 1), CAST(strftime('%s', 'now') AS REAL) FROM aliases;
    """,
    # per-user mail quota in MB (0 = none), gk.mail.delivery.quota
    """
    ALTER TABLE users ADD COLUMN quota_mb INTEGER NOT NULL DEFAULT 0;
    """,
    # forward a user's mail to another address (gk.mail.smtp.forward), keeping a copy here or not
    """
    ALTER TABLE users ADD COLUMN forward_to TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN forward_keep INTEGER NOT NULL DEFAULT 1;
    """,
]

ADDRESS_RE = re.compile(
    r"^[a-z0-9!#$%&'*/=?^_`{|}~.-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)


class AccountError(ValueError):
    """A refused account operation, with a message fit for the user: ``str(exc)`` is English;
    ``template`` (marked for the catalog, ``gk.locale``) and ``params`` let the web UI show it
    in the viewer's language."""

    def __init__(self, template: str, **params: object):
        super().__init__(template.format(**params) if params else template)
        self.template = template
        self.params = params


class DomainNotLocal(AccountError):
    """The address's domain is not (yet) a local domain: the caller must confirm adding it."""

    def __init__(self, domain: str):
        super().__init__(
            N_(
                "{domain} is not a mail domain of this box yet: adding it means mail to every address"
                " at {domain} is delivered here (confirm, or use gk domain add {domain})"
            ),
            domain=domain,
        )
        self.domain = domain


@dataclass(frozen=True)
class User:
    id: int
    address: str
    is_admin: bool
    display_name: str
    language: str
    password_changed: float
    quota_mb: int = 0  # 0: no quota
    forward_to: str = ""  # mail to this user also (or only) goes there
    forward_keep: bool = True  # with forward_to: a copy stays in this mailbox

    @property
    def local(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


ROLE_LOCAL_PARTS = ("postmaster", "abuse")  # RFC 5321 §4.5.1, RFC 2142


def normalize_address(address: str) -> str:
    address = address.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        # an ASCII domain is its own IDNA form (or an invalid one, kept as it is): the codec
        # runs 2-3 times per SMTP RCPT otherwise
        return address
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return f"{local}@{domain}"


def check_address(address: str) -> str:
    addr = normalize_address(address)
    if not ADDRESS_RE.match(addr) or len(addr) > 254 or "+" in addr.partition("@")[0]:
        raise AccountError(
            N_("{address!r} is not a usable mail address (want local@domain.tld; '+' is reserved for plus-addressing)"),
            address=address,
        )
    return addr


class AccountStore:
    def __init__(self, path: Path, hasher: PasswordHasher):
        self.db: Database = open_database(path, MIGRATIONS)
        self.hasher = hasher
        self._listeners: list = []  # callables(address) told when a password changes
        self._added: list[Callable[[str], None]] = []  # callables(address) told when a user is created

    # -- users ---------------------------------------------------------------------------
    def _user(self, row) -> User:  # type: ignore[no-untyped-def]
        return User(
            row["id"],
            row["address"],
            bool(row["is_admin"]),
            row["display_name"],
            row["language"],
            row["password_changed"],
            int(row["quota_mb"] or 0),
            row["forward_to"] or "",
            bool(row["forward_keep"]),
        )

    def on_password_change(self, callback) -> None:  # type: ignore[no-untyped-def]
        self._listeners.append(callback)

    def _changed(self, address: str) -> None:
        for cb in self._listeners:
            cb(address)

    def on_user_added(self, callback: Callable[[str], None]) -> None:
        """``callback(address)`` after each user created through this store (DAV's default calendars)."""
        self._added.append(callback)

    def add_user(
        self,
        address: str,
        password: str,
        *,
        admin: bool = False,
        display_name: str = "",
        new_domain: bool = True,
    ) -> User:
        """Add a user. A domain not yet local is added with it unless ``new_domain`` is False
        (the web admin and ``gk user add`` pass False until the admin confirms; the first domain
        of an empty box needs no confirmation); a public provider's never is."""
        addr = check_address(address)
        problem = password_problem_template(password, (addr, display_name))
        if problem:
            raise AccountError(problem[0], **problem[1])
        self._check_domain(addr.rpartition("@")[2], new_domain)
        if self.db.one("SELECT 1 FROM aliases WHERE source = ?", (addr,)):
            raise AccountError(
                N_("{address} is already an alias; remove it first (gk alias del {address})"), address=addr
            )
        hashed = self.hasher.hash(password)
        now = time.time()
        with self.db.transaction() as c:
            if c.execute("SELECT 1 FROM users WHERE address = ?", (addr,)).fetchone():
                raise AccountError(N_("user {address} already exists"), address=addr)
            c.execute("INSERT OR IGNORE INTO domains(name, added) VALUES (?, ?)", (addr.rpartition("@")[2], now))
            c.execute(
                "INSERT INTO users(address, password_hash, is_admin, display_name, created, password_changed)"
                " VALUES (?,?,?,?,?,?)",
                (addr, hashed, int(admin), display_name, now, now),
            )
        user = self.get_user(addr)
        assert user is not None
        for cb in self._added:
            cb(addr)
        return user

    def get_user(self, address: str) -> User | None:
        row = self.db.one("SELECT * FROM users WHERE address = ?", (normalize_address(address),))
        return self._user(row) if row else None

    def list_users(self) -> list[User]:
        return [self._user(r) for r in self.db.query("SELECT * FROM users ORDER BY address")]

    def set_password(self, address: str, password: str) -> None:
        problem = password_problem_template(password, (normalize_address(address),))
        if problem:
            raise AccountError(problem[0], **problem[1])
        hashed = self.hasher.hash(password)
        addr = normalize_address(address)
        with self.db.transaction() as c:
            cur = c.execute(
                "UPDATE users SET password_hash = ?, password_changed = ? WHERE address = ?",
                (hashed, time.time(), addr),
            )
            if cur.rowcount == 0:
                raise AccountError(N_("no such user {address}"), address=addr)
        self._changed(addr)

    def set_admin(self, address: str, admin: bool) -> None:
        self.db.execute("UPDATE users SET is_admin = ? WHERE address = ?", (int(admin), normalize_address(address)))

    def set_quota(self, address: str, quota_mb: int) -> None:
        """The user's mail quota in MB (0: none), enforced by ``gk.mail.delivery.quota``."""
        if quota_mb < 0 or quota_mb > 10_000_000:
            raise AccountError(N_("a quota is a number of MB from 0 (none) to {n}"), n=10_000_000)
        self.db.execute("UPDATE users SET quota_mb = ? WHERE address = ?", (quota_mb, normalize_address(address)))

    def set_forward(self, address: str, target: str, keep: bool = True) -> None:
        """Forward ``address``'s mail to ``target`` ("" = no forward), keeping a copy here or not."""
        addr = normalize_address(address)
        dest = normalize_address(target) if target.strip() else ""
        if dest:
            if not ADDRESS_RE.match(dest) or len(dest) > 254:
                raise AccountError(N_("{address!r} is not a usable mail address"), address=target)
            if self.resolve_recipient(dest) == self.get_user(addr):
                raise AccountError(N_("mail to {address} cannot be forwarded to itself"), address=addr)
        self.db.execute(
            "UPDATE users SET forward_to = ?, forward_keep = ? WHERE address = ?", (dest, int(keep or not dest), addr)
        )

    def set_profile(self, address: str, *, display_name: str | None = None, language: str | None = None) -> None:
        addr = normalize_address(address)
        if display_name is not None:
            self.db.execute("UPDATE users SET display_name = ? WHERE address = ?", (display_name, addr))
        if language is not None:
            self.db.execute("UPDATE users SET language = ? WHERE address = ?", (language, addr))

    def delete_user(self, address: str) -> None:
        addr = normalize_address(address)
        with self.db.transaction() as c:
            cur = c.execute("DELETE FROM users WHERE address = ?", (addr,))
            if cur.rowcount == 0:
                raise AccountError(N_("no such user {address}"), address=addr)
            c.execute("DELETE FROM aliases WHERE target = ?", (addr,))
        self._changed(addr)

    def password_hash(self, address: str) -> str | None:
        row = self.db.one("SELECT password_hash FROM users WHERE address = ?", (normalize_address(address),))
        return row["password_hash"] if row else None

    def update_hash(self, address: str, hashed: str) -> None:
        self.db.execute("UPDATE users SET password_hash = ? WHERE address = ?", (hashed, normalize_address(address)))

    # -- app passwords (per device, for mail clients) -------------------------------------
    def add_app_password(self, address: str, name: str, password: str) -> int:
        user = self.get_user(address)
        if not user:
            raise AccountError(N_("no such user {address}"), address=address)
        cur = self.db.execute(
            "INSERT INTO app_passwords(user_id, name, password_hash, created) VALUES (?,?,?,?)",
            (user.id, name, self.hasher.hash(password), time.time()),
        )
        return int(cur.lastrowid or 0)

    def app_password_hashes(self, address: str) -> list[tuple[int, str]]:
        rows = self.db.query(
            "SELECT a.id, a.password_hash FROM app_passwords a JOIN users u ON u.id = a.user_id WHERE u.address = ?",
            (normalize_address(address),),
        )
        return [(r["id"], r["password_hash"]) for r in rows]

    def list_app_passwords(self, address: str) -> list[dict]:
        rows = self.db.query(
            "SELECT a.id, a.name, a.created, a.last_used FROM app_passwords a JOIN users u ON u.id = a.user_id"
            " WHERE u.address = ? ORDER BY a.created",
            (normalize_address(address),),
        )
        return [dict(r) for r in rows]

    def delete_app_password(self, address: str, app_id: int) -> bool:
        user = self.get_user(address)
        if not user:
            return False
        cur = self.db.execute("DELETE FROM app_passwords WHERE id = ? AND user_id = ?", (app_id, user.id))
        if cur.rowcount:
            self._changed(user.address)
        return cur.rowcount > 0

    def touch_app_password(self, app_id: int) -> None:
        self.db.execute("UPDATE app_passwords SET last_used = ? WHERE id = ?", (time.time(), app_id))

    # -- domains and aliases --------------------------------------------------------------
    def local_domains(self) -> set[str]:
        return {r[0] for r in self.db.query("SELECT name FROM domains")}

    def list_domains(self) -> list[tuple[str, int]]:
        """Each local domain with its number of users and aliases, by name."""
        rows = self.db.query(
            "SELECT d.name,"
            " (SELECT COUNT(*) FROM users WHERE substr(address, instr(address, '@') + 1) = d.name)"
            " + (SELECT COUNT(*) FROM aliases WHERE substr(source, instr(source, '@') + 1) = d.name)"
            " FROM domains d ORDER BY d.name"
        )
        return [(r[0], int(r[1])) for r in rows]

    def is_local_domain(self, domain: str) -> bool:
        name = normalize_address("x@" + domain).partition("@")[2]
        return self.db.one("SELECT 1 FROM domains WHERE name = ?", (name,)) is not None

    def add_domain(self, domain: str) -> str:
        """Make ``domain`` local (idempotent); refuses malformed names and public providers."""
        name = check_address("postmaster@" + domain.strip().rstrip(".")).partition("@")[2]
        if is_public_provider(name):
            raise AccountError(
                N_(
                    "{domain} belongs to a public mail provider: it cannot be a domain of this box, or mail"
                    " from the household to anyone at {domain} would stay here"
                ),
                domain=name,
            )
        self.db.execute("INSERT OR IGNORE INTO domains(name, added) VALUES (?, ?)", (name, time.time()))
        return name

    def delete_domain(self, domain: str) -> None:
        name = normalize_address("x@" + domain).partition("@")[2]
        with self.db.transaction() as c:
            used = c.execute(
                "SELECT (SELECT COUNT(*) FROM users WHERE substr(address, instr(address, '@') + 1) = ?)"
                " + (SELECT COUNT(*) FROM aliases WHERE substr(source, instr(source, '@') + 1) = ?)",
                (name, name),
            ).fetchone()[0]
            if used:
                raise AccountError(
                    N_("{domain} still has {count} users or aliases: remove them first"), domain=name, count=used
                )
            if c.execute("DELETE FROM domains WHERE name = ?", (name,)).rowcount == 0:
                raise AccountError(N_("{domain} is not a domain of this box"), domain=name)

    def _check_domain(self, domain: str, new_domain: bool) -> None:
        if self.is_local_domain(domain):
            return
        if is_public_provider(domain):
            self.add_domain(domain)  # raises with the reason
        if not new_domain and self.db.one("SELECT 1 FROM domains LIMIT 1") is not None:
            raise DomainNotLocal(domain)
        self.add_domain(domain)

    def add_alias(self, source: str, target: str, *, new_domain: bool = True) -> None:
        src = check_address(source)
        dst = normalize_address(target)
        if not self.get_user(dst):
            raise AccountError(N_("alias target {address} is not a user here (add it with gk user add)"), address=dst)
        if self.get_user(src):
            raise AccountError(N_("{address} is a user; an alias cannot shadow it"), address=src)
        self._check_domain(src.rpartition("@")[2], new_domain)
        self.db.execute("INSERT OR REPLACE INTO aliases(source, target) VALUES (?, ?)", (src, dst))

    def delete_alias(self, source: str) -> None:
        cur = self.db.execute("DELETE FROM aliases WHERE source = ?", (normalize_address(source),))
        if cur.rowcount == 0:
            raise AccountError(N_("no such alias {address}"), address=source)

    def list_aliases(self) -> list[tuple[str, str]]:
        return [(r["source"], r["target"]) for r in self.db.query("SELECT * FROM aliases ORDER BY source")]

    def aliases_of(self, target: str) -> list[str]:
        """The aliases that point at the user ``target``, sorted."""
        rows = self.db.query(
            "SELECT source FROM aliases WHERE target = ? ORDER BY source", (normalize_address(target),)
        )
        return [r["source"] for r in rows]

    def resolve_recipient(self, address: str, roles: bool = True) -> User | None:
        """The user that mail to ``address`` goes to (plus-addressing, aliases), or None.
        ``roles=False``: the user or alias of that name only (a calendar user address, never the
        role owner below).

        ``postmaster@`` and ``abuse@`` every local domain, and the bare ``<postmaster>``, reach
        the first admin unless a user or alias of that name exists: RFC 5321 §4.5.1 requires
        postmaster, RFC 2142 names abuse, and other mail servers send their reports there.
        """
        addr = normalize_address(address)
        local, _, domain = addr.rpartition("@")
        if not local:
            return self.role_owner() if addr == "postmaster" and roles else None
        candidates = [addr]
        if "+" in local:
            candidates.append(local.partition("+")[0] + "@" + domain)
        for cand in candidates:
            user = self.get_user(cand)
            if user:
                return user
            row = self.db.one("SELECT target FROM aliases WHERE source = ?", (cand,))
            if row:
                return self.get_user(row["target"])
        if roles and local in ROLE_LOCAL_PARTS and self.is_local_domain(domain):
            return self.role_owner()
        return None

    def role_owner(self) -> User | None:
        """Who reads postmaster@ and abuse@: the first admin (by creation), if any."""
        row = self.db.one("SELECT * FROM users WHERE is_admin = 1 ORDER BY id LIMIT 1")
        return self._user(row) if row else None

    # -- security events ------------------------------------------------------------------
    # -- clients each user logged in from (see known_ips.py) -------------------------------
    def known_clients(self, address: str, since: float) -> dict[str, float]:
        rows = self.db.query(
            "SELECT k.client, k.last_ok FROM known_ips k JOIN users u ON u.id = k.user_id"
            " WHERE u.address = ? AND k.last_ok >= ?",
            (normalize_address(address), since),
        )
        return {r["client"]: r["last_ok"] for r in rows}

    def remember_client(self, address: str, client: str, now: float, keep: int) -> None:
        """Record a successful login from ``client``; keep the ``keep`` most recent per user."""
        user = self.get_user(address)
        if user is None:
            return
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO known_ips (user_id, client, last_ok) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id, client) DO UPDATE SET last_ok = excluded.last_ok",
                (user.id, client, now),
            )
            c.execute(
                "DELETE FROM known_ips WHERE user_id = ? AND client NOT IN"
                " (SELECT client FROM known_ips WHERE user_id = ? ORDER BY last_ok DESC LIMIT ?)",
                (user.id, user.id, keep),
            )

    def record_event(self, kind: str, service: str, ip: str = "", account: str = "", detail: str = "") -> None:
        """Best effort: on a full or failing disk the event is logged instead, and the caller (a
        failed login about to sleep its throttle delay) goes on."""
        try:
            self.db.execute(
                "INSERT INTO security_events(ts, kind, service, ip, account, detail) VALUES (?,?,?,?,?,?)",
                (time.time(), kind, service, ip, account, detail[:500]),
            )
            # keep the table bounded on a small SD card
            self.db.execute("DELETE FROM security_events WHERE id <= (SELECT MAX(id) FROM security_events) - 10000")
        except sqlite3.OperationalError as exc:
            logging.getLogger("gk.auth").warning(
                "security event %s (%s ip=%s account=%s) not recorded: %s", kind, service, ip, account, exc
            )

    def recent_events(self, limit: int = 50) -> list[dict]:
        return [dict(r) for r in self.db.query("SELECT * FROM security_events ORDER BY id DESC LIMIT ?", (limit,))]
