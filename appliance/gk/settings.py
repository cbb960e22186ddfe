"""The owner's settings: time zone, mail domain, HTTPS redirect, AI model, host name, relay host.

Chosen in the wizard, on /admin/settings or by ``gk setup --answers``; read wherever GK needs
them. Each value has one home:

- ``DATA_DIR/settings.sqlite3`` (WAL, synchronous=FULL): ``timezone``, ``mail_domain``,
  ``https_redirect``, ``ai_model``.
- ``DATA_DIR/gk.toml``, through ``gk.config``'s one durable writer: the host name
  (``[server] hostname``, read at start for SMTP greetings and certificates) and the relay host
  (``[queue] smarthost*``).

Change callbacks: ``subscribe(fn, keys)`` on a data dir's ``Settings`` (or ``subscribe_all``
for every data dir) is called with a ``Change`` after the new values are durable, in the
caller's greenlet; an error in a callback is logged and does not undo the write or stop the
other callbacks. ``localtime`` publishes the zone for the system clock this way, the queue
takes a new relay host this way. When a running ``Config`` is bound (``bind``, done by
``gk.context``), a relay change replaces its ``queue`` section with a new object before the
callbacks run: nothing mutates the section a running queue holds.

Upgrade: these values used to live in the claim database as ``opt:*`` keys. The first open
of a data dir's settings copies them here (the host name into gk.toml when gk.toml names
none) and records that it did, in one transaction; then the claim database's copies are
deleted (again on every open, until none is left), so it runs exactly once and a crash at
any point loses nothing.

Cost: reads come from a cache refreshed every ``CACHE_SECONDS`` (so a change made by another
process, ``gk setup``, shows within that); a write is one small SQLite transaction or one
small file write, both fsynced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.lock

from gk import config as gkconfig
from gk import pools
from gk.store import Database, open_database

log = logging.getLogger("gk.settings")

DB_FILE = "settings.sqlite3"
CLAIM_DB_FILE = "claim.sqlite3"  # read (not imported) for the one-time move out of it
MIGRATIONS = [
    """
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]
CACHE_SECONDS = 30.0

# the keys, for subscribers
TIMEZONE, MAIL_DOMAIN, HTTPS_REDIRECT, AI_MODEL, HOSTNAME = (
    "timezone",
    "mail_domain",
    "https_redirect",
    "ai_model",
    "hostname",
)
STORED_KEYS = (TIMEZONE, MAIL_DOMAIN, HTTPS_REDIRECT, AI_MODEL)
RELAY_KEYS = ("smarthost", "smarthost_port", "smarthost_tls", "smarthost_username", "smarthost_password")
BACKUP = "backup"  # the key a change of gk.toml's [backup] schedule is announced under
BACKUP_KEYS = ("schedule", "time", "weekday", "target", "keep")
MIGRATED_MARK = "migrated_from_claim"
AUTHSERV_ID = "authserv_id"  # meta: the name our Authentication-Results carry, fixed once


@dataclass(frozen=True)
class Change:
    """What a callback gets: the settings that changed (already durable) and their owner."""

    settings: Settings
    keys: frozenset[str]
    # the loaded gk.toml after a write to it (host name, relay host); None for the other keys
    config: gkconfig.Config | None = None


Callback = Callable[[Change], None]
_global_subscribers: list[tuple[Callback, frozenset[str] | None]] = []


class Settings:
    """One data dir's settings. Get it with ``of(data_dir)`` (one instance per data dir and process)."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self._cache: tuple[float, dict[str, str]] | None = None
        self._toml_cache: tuple[tuple[int, int], dict[str, Any]] | None = None
        self._subscribers: list[tuple[Callback, frozenset[str] | None]] = []
        self._bound: gkconfig.Config | None = None
        self._write_lock = gevent.lock.BoundedSemaphore()
        self._migrate()

    # -- store ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _db(self) -> Iterator[Database]:
        db = open_database(self.data_dir / DB_FILE, MIGRATIONS, cache_kib=256)
        try:
            yield db
        finally:
            db.close()

    def _values(self) -> dict[str, str]:
        hit = self._cache
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        with self._db() as db:
            values = {r["key"]: r["value"] for r in db.query("SELECT key, value FROM settings")}
        self._cache = (time.monotonic(), values)
        return values

    def _toml(self) -> dict[str, Any]:
        path = gkconfig.config_path(self.data_dir)
        try:
            st = path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._toml_cache
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return {}  # `gk serve` refuses such a file; `gk config check` says why
        self._toml_cache = (stamp, data)
        return data

    # -- typed getters -------------------------------------------------------------------------
    def get(self, key: str, default: str = "") -> str:
        """A stored setting as text (``default`` when it was never set)."""
        return self._values().get(key, default)

    def timezone(self) -> str:
        """The IANA zone name chosen ('' when none was)."""
        return self.get(TIMEZONE)

    def mail_domain(self) -> str:
        return self.get(MAIL_DOMAIN)

    def https_redirect(self, default: bool = False) -> bool:
        """Whether plain-HTTP requests are sent to HTTPS once the box is set up."""
        value = self.get(HTTPS_REDIRECT)
        return value == "1" if value else default

    def ai_model(self, default: str = "") -> str:
        return self.get(AI_MODEL) or default

    def hostname(self) -> str:
        """``[server] hostname`` of gk.toml ('' when unset: the running process then uses the system's)."""
        server = self._toml().get("server", {})
        value = server.get("hostname", "") if isinstance(server, dict) else ""
        return value if isinstance(value, str) else ""

    def authserv_id(self, hostname: str) -> str:
        """The authserv-id of this box's ``Authentication-Results`` (RFC 8601 §2.5): the host name
        of the first start that asked, kept for good. Local delivery strips fields carrying it
        from what a message brings and readers trust only the fields carrying it
        (``gk.mail.authcheck.sender``). Were it the current host name, a change would make every
        message delivered before read as unverified, and trusting the old names too would trust
        a forged field stamped, before the change, with the name the box was about to take."""
        with self._db() as db:
            row = db.one("SELECT value FROM meta WHERE key = ?", (AUTHSERV_ID,))
            if row is None:
                with db.transaction() as c:
                    c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (AUTHSERV_ID, hostname.lower()))
                row = db.one("SELECT value FROM meta WHERE key = ?", (AUTHSERV_ID,))
        return str(row["value"]) if row is not None else hostname.lower()

    def snapshot(self) -> dict[str, str]:
        """Every setting that was chosen, as text (the wizard's summary shows it)."""
        values = dict(self._values())
        if host := self.hostname():
            values[HOSTNAME] = host
        return values

    # -- setters -------------------------------------------------------------------------------
    def update(
        self,
        *,
        timezone: str | None = None,
        mail_domain: str | None = None,
        https_redirect: bool | None = None,
        ai_model: str | None = None,
        hostname: str | None = None,
    ) -> None:
        """Save the given settings (one transaction; the host name into gk.toml), then call back."""
        values: dict[str, str] = {}
        if timezone is not None:
            values[TIMEZONE] = timezone
        if mail_domain is not None:
            values[MAIL_DOMAIN] = mail_domain
        if https_redirect is not None:
            values[HTTPS_REDIRECT] = "1" if https_redirect else "0"
        if ai_model is not None:
            values[AI_MODEL] = ai_model
        config = None
        if hostname is not None:
            config = self._write_toml("server", {HOSTNAME: hostname})
        if values:
            with self._db() as db, db.transaction() as c:
                c.executemany("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", list(values.items()))
            self._cache = None
        changed = set(values) | ({HOSTNAME} if hostname is not None else set())
        if changed:
            self._notify(Change(self, frozenset(changed), config))

    def set_relay(self, values: dict[str, Any]) -> gkconfig.Config:
        """Write the relay-host keys (``RELAY_KEYS``) into gk.toml's ``[queue]``; the loaded result.

        ``gk.config.ConfigError`` (the values or the file would not load): nothing is written."""
        unknown = set(values) - set(RELAY_KEYS)
        if unknown:
            raise ValueError(f"not relay settings: {sorted(unknown)}")
        config = self._write_toml("queue", values, private=bool(values.get("smarthost_password")))
        if self._bound is not None:
            # a new section object: the running queue swaps its reference in its callback
            fresh = {k: getattr(config.queue, k) for k in RELAY_KEYS}
            self._bound.queue = dataclasses.replace(self._bound.queue, **fresh)
        self._notify(Change(self, frozenset(values), config))
        return config

    def set_backup(self, values: dict[str, Any]) -> gkconfig.Config:
        """Write the automatic backup's keys (``BACKUP_KEYS``) into gk.toml's ``[backup]``; the
        loaded result. The running config's ``backup`` section is replaced by a new object, then
        the callbacks of ``BACKUP`` run (the backup service computes its next run again).

        ``gk.config.ConfigError`` (a value would not load): nothing is written."""
        unknown = set(values) - set(BACKUP_KEYS)
        if unknown:
            raise ValueError(f"not backup settings: {sorted(unknown)}")
        config = self._write_toml("backup", values)
        if self._bound is not None:
            self._bound.backup = config.backup  # a new object: nothing mutates the running one
        self._notify(Change(self, frozenset({BACKUP}), config))
        return config

    def _write_toml(
        self, table: str, values: dict[str, Any], private: bool = False, offload: bool = True
    ) -> gkconfig.Config:
        """Read-modify-write of gk.toml, one at a time; the file I/O in the disk pool (``gk.pools``)."""
        if not offload:
            config = gkconfig.update_config_file(self.data_dir, table, values, private=private)
        else:
            with self._write_lock:  # two admins saving at once must not interleave
                config = pools.run_io(gkconfig.update_config_file, self.data_dir, table, values, private=private)
        self._toml_cache = None
        return config

    # -- callbacks -----------------------------------------------------------------------------
    def bind(self, config: gkconfig.Config) -> None:
        """The running process's config: relay changes replace its ``queue`` section."""
        self._bound = config

    def subscribe(self, fn: Callback, keys: Iterable[str] | None = None) -> Callable[[], None]:
        """Call ``fn`` after any of ``keys`` (None: any setting) changed; returns the unsubscribe."""
        entry = (fn, frozenset(keys) if keys is not None else None)
        self._subscribers.append(entry)
        return lambda: self._subscribers.remove(entry) if entry in self._subscribers else None

    def _notify(self, change: Change) -> None:
        for fn, keys in [*_global_subscribers, *self._subscribers]:
            if keys is not None and not keys & change.keys:
                continue
            try:
                fn(change)
            except Exception:
                log.exception("settings: a callback for %s failed (the settings are saved)", sorted(change.keys))

    # -- the one-time move out of the claim database ---------------------------------------------
    def _migrate(self) -> None:
        claim_db = self.data_dir / CLAIM_DB_FILE
        with self._db() as db:
            done = db.one("SELECT value FROM meta WHERE key = ?", (MIGRATED_MARK,)) is not None
            if done and not claim_db.exists():
                return
            old = _old_claim_settings(claim_db)
            if not done:
                moved = sorted(old)
                host = old.pop(HOSTNAME, "")
                if host and not self.hostname():
                    # before the mark: a crash below repeats this write, which is idempotent
                    self._write_toml("server", {HOSTNAME: host}, offload=False)
                with db.transaction() as c:
                    c.executemany("INSERT OR IGNORE INTO settings(key, value) VALUES (?, ?)", list(old.items()))
                    c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (MIGRATED_MARK, str(time.time())))
                self._cache = None
                if moved:
                    log.info("settings: moved %s out of the claim database", ", ".join(moved))
        _drop_old_claim_settings(claim_db)


# wizard progress ("opt:done:<step>") is claim state and stays in the claim database
_OLD_KEYS = "key LIKE 'opt:%' AND key NOT LIKE 'opt:done:%'"


def _old_claim_settings(claim_db: Path) -> dict[str, str]:
    """The ``opt:*`` settings an older GK kept in the claim database (opened raw: not its schema)."""
    if not claim_db.exists():
        return {}
    conn = sqlite3.connect(claim_db, timeout=10.0)
    try:
        rows = conn.execute(f"SELECT key, value FROM settings WHERE {_OLD_KEYS}").fetchall()
    except sqlite3.OperationalError:
        return {}  # no settings table: nothing to move
    finally:
        conn.close()
    return {str(k)[4:]: str(v) for k, v in rows}


def _drop_old_claim_settings(claim_db: Path) -> None:
    if not claim_db.exists():
        return
    conn = sqlite3.connect(claim_db, timeout=10.0, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        with contextlib.suppress(sqlite3.OperationalError):
            conn.execute(f"DELETE FROM settings WHERE {_OLD_KEYS}")
    finally:
        conn.close()


_instances: dict[Path, Settings] = {}


def of(data_dir: Path) -> Settings:
    """The settings of ``data_dir`` (opened, and moved out of the claim database, on first use).

    Called from greenlets and from pool threads (the mailbox asks for the zone while indexing):
    no lock; two first calls at once both open, one instance is kept, the move is idempotent."""
    found = _instances.get(Path(data_dir))
    if found is None:
        key = Path(data_dir).resolve()
        found = _instances.get(key) or _instances.setdefault(key, Settings(key))
        _instances[Path(data_dir)] = found
    return found


def subscribe_all(fn: Callback, keys: Iterable[str] | None = None) -> None:
    """Call ``fn`` after a change of ``keys`` in any data dir (for modules without a context)."""
    _global_subscribers.append((fn, frozenset(keys) if keys is not None else None))


__all__ = [
    "Change",
    "Settings",
    "of",
    "subscribe_all",
    "RELAY_KEYS",
    "STORED_KEYS",
]
