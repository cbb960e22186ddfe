"""Claim and owner-recovery state: the one-time setup code, wizard progress, recovery window.

Only that: the owner's settings (time zone, host name, …) are ``gk.settings``'s.

Below both the web wizard and the hardware button service (which runs in another process):
every function takes the data dir and opens ``DATA_DIR/claim.sqlite3`` itself, so
``button_pressed(data_dir)`` and ``open_recovery(data_dir, minutes=15)`` work from anywhere
without importing web code. SQLite (WAL, synchronous=FULL) makes a claim survive kill -9.

States: ``unclaimed`` (fresh: the wizard is open to LAN clients) → ``setup`` (claimed by a
setup code or a button press; the wizard runs its remaining steps) → ``complete`` (wizard
closed for good). ``open_recovery`` opens a window during which only the claim and password
steps answer again; finishing the password step closes it.

Claim generation: every claim (setup code or button, at first or in recovery) counts one more
(``generation``); the claiming browser's session keeps the number it claimed at, and is the
claimant only while that is still the current one — a browser that lost the box to a newer claim
(the owner reclaimed from another device) is no claimant when it comes back.

Cost: each call is one small SQLite transaction (~1 ms on an SD card with fsync), on a
connection opened for it and closed after. ``gate(data_dir)`` is the exception, for the web's
check on every request: the state and the recovery deadline kept in memory, re-read only when
``PRAGMA data_version`` on one kept read connection says another connection (this process's
writers above, or the button service's, or ``gk claim recover``'s) committed since — a few µs
instead of opening the database.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from gk.locks import SharedLock
from gk.store import Database, open_database

MIGRATIONS = [
    """
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE button_presses (id INTEGER PRIMARY KEY, ts REAL NOT NULL, consumed INTEGER NOT NULL DEFAULT 0);
    """,
]

SETUP_CODE_FILE = "setup-code.txt"
# no 0/O, 1/I/L: the code is typed from a console or a file read on another PC
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
BUTTON_VALID_SECONDS = 120.0
UNCLAIMED, SETUP, COMPLETE = "unclaimed", "setup", "complete"


@contextlib.contextmanager
def _db(data_dir: Path) -> Iterator[Database]:
    db = open_database(Path(data_dir) / "claim.sqlite3", MIGRATIONS, cache_kib=256)
    try:
        yield db
    finally:
        db.close()


def _get(db: Database, key: str, default: str = "") -> str:
    row = db.one("SELECT value FROM settings WHERE key = ?", (key,))
    return row["value"] if row else default


def _set(db: Database, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, value))


class _Gate:
    """The claim state and recovery deadline of one data dir, with what they were read at."""

    def __init__(self, path: Path, conn: sqlite3.Connection, ino: tuple[int, int]) -> None:
        self.path, self.conn, self.ino = path, conn, ino
        self.version = -1
        self.state, self.recovery_until = UNCLAIMED, 0.0
        self.generation = 0


_gates: dict[Path, _Gate] = {}
_gates_lock = SharedLock()  # web requests on the hub, DAV logins in pool threads (gk.locks)


def _open_gate(path: Path) -> _Gate:
    with _db(path.parent):  # creates and migrates the database if it is new
        pass
    st = os.stat(path)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA cache_size = -64")
    return _Gate(path, conn, (st.st_dev, st.st_ino))


def gate(data_dir: Path) -> tuple[str, bool]:
    """(state, recovery open) for a check on every request, as fresh as ``state`` and
    ``recovery_open``: any commit to the claim database, from this process or another, is seen
    by the next call; the recovery window's end is compared with the clock on every call."""
    g = _fresh_gate(data_dir)
    return g.state, g.recovery_until > time.time()


def generation(data_dir: Path) -> int:
    """The current claim generation (0: never claimed), as fresh and cheap as ``gate``."""
    return _fresh_gate(data_dir).generation


def _fresh_gate(data_dir: Path) -> _Gate:
    path = Path(data_dir) / "claim.sqlite3"
    with _gates_lock:
        g = _gates.get(path)
        try:
            st = os.stat(path)
            if g is not None and (st.st_dev, st.st_ino) != g.ino:  # the file was replaced
                g.conn.close()
                g = None
        except FileNotFoundError:
            if g is not None:
                g.conn.close()
            g = None
        if g is None:
            g = _open_gate(path)
            _gates[path] = g
        version = int(g.conn.execute("PRAGMA data_version").fetchone()[0])
        if version != g.version:
            rows = dict(
                g.conn.execute(
                    "SELECT key, value FROM settings WHERE key IN ('state', 'recovery_until', 'generation')"
                ).fetchall()
            )
            g.state = rows.get("state", UNCLAIMED)
            g.recovery_until = float(rows.get("recovery_until") or 0)
            g.generation = int(rows.get("generation") or 0)
            g.version = version
        return g


def forget_gates() -> None:
    """Close the kept read connections (tests; a data dir about to be removed)."""
    with _gates_lock:
        for g in _gates.values():
            g.conn.close()
        _gates.clear()


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(12))
    return f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}"


def normalize_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _write_code_file(data_dir: Path, code: str) -> None:
    path = Path(data_dir) / SETUP_CODE_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(code + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def ensure_setup_code(data_dir: Path) -> str | None:
    """At start: make the one-time setup code (and its file) if the box is unclaimed or in recovery."""
    with _db(data_dir) as db:
        state = _get(db, "state", UNCLAIMED)
        if state == COMPLETE and not _recovery_open(db):
            return None
        code = _get(db, "setup_code")
        if not code:
            code = new_code()
            _set(db, "setup_code", code)
        if not (Path(data_dir) / SETUP_CODE_FILE).exists():
            _write_code_file(data_dir, code)
        return code


def state(data_dir: Path) -> str:
    with _db(data_dir) as db:
        return _get(db, "state", UNCLAIMED)


def is_complete(data_dir: Path) -> bool:
    return state(data_dir) == COMPLETE


def check_code(data_dir: Path, code: str) -> bool:
    """True when ``code`` is the current setup code (constant-time; case, spaces and dashes ignored)."""
    with _db(data_dir) as db:
        stored = _get(db, "setup_code")
    if not stored:
        return False
    return hmac.compare_digest(normalize_code(stored).encode(), normalize_code(code).encode())


def claim(data_dir: Path, how: str) -> int:
    """Mark the box claimed (setup code or button). The code is spent: a new one is made for
    recovery. Returns the new claim generation (the claimant's from now on)."""
    with _db(data_dir) as db, db.transaction():
        if _get(db, "state", UNCLAIMED) == UNCLAIMED:
            _set(db, "state", SETUP)
        _set(db, "claimed_by", how)
        _set(db, "claimed_at", str(time.time()))
        _set(db, "setup_code", "")
        gen = _next_generation(db)
    with contextlib.suppress(FileNotFoundError):
        (Path(data_dir) / SETUP_CODE_FILE).unlink()
    return gen


def reclaim(data_dir: Path, how: str) -> int:
    """A claim during owner recovery (the box stays complete): a new claim generation, so the
    browser that claimed before is a claimant no more. Returns it."""
    with _db(data_dir) as db, db.transaction():
        _set(db, "claimed_by", how)
        _set(db, "claimed_at", str(time.time()))
        return _next_generation(db)


def _next_generation(db: Database) -> int:
    gen = int(_get(db, "generation", "0") or 0) + 1
    _set(db, "generation", str(gen))
    return gen


def complete(data_dir: Path) -> None:
    with _db(data_dir) as db, db.transaction():
        _set(db, "state", COMPLETE)
        _set(db, "recovery_until", "0")
        _set(db, "setup_code", "")


# -- wizard progress ---------------------------------------------------------------------
# (the owner's settings chosen in the wizard live in ``gk.settings``; an older GK kept them
# here as "opt:<key>" rows, which ``gk.settings`` moves out on its first start)
def step_done(data_dir: Path, step: str) -> bool:
    with _db(data_dir) as db:
        return _get(db, "opt:done:" + step) == "1"


def mark_step_done(data_dir: Path, step: str) -> None:
    with _db(data_dir) as db:
        _set(db, "opt:done:" + step, "1")


# -- hardware button and owner recovery --------------------------------------------------
def button_pressed(data_dir: Path) -> None:
    """Called by the button service: a short press counts as a claim while a claim page is open."""
    with _db(data_dir) as db:
        db.execute("INSERT INTO button_presses(ts) VALUES (?)", (time.time(),))
        db.execute("DELETE FROM button_presses WHERE ts < ?", (time.time() - 3600,))


def take_button_press(data_dir: Path, since: float) -> bool:
    """Consume one unconsumed press made after ``since`` (and recently); True if there was one."""
    now = time.time()
    with _db(data_dir) as db, db.transaction() as c:
        row = c.execute(
            "SELECT id FROM button_presses WHERE consumed = 0 AND ts >= ? AND ts >= ? ORDER BY ts LIMIT 1",
            (since, now - BUTTON_VALID_SECONDS),
        ).fetchone()
        if not row:
            return False
        c.execute("UPDATE button_presses SET consumed = 1 WHERE id = ?", (row["id"],))
        return True


def pending_button_press(data_dir: Path) -> tuple[int, float] | None:
    """(id, time) of the oldest recent press nobody has consumed yet, or None."""
    with _db(data_dir) as db:
        row = db.one(
            "SELECT id, ts FROM button_presses WHERE consumed = 0 AND ts >= ? ORDER BY ts LIMIT 1",
            (time.time() - BUTTON_VALID_SECONDS,),
        )
    return (int(row["id"]), float(row["ts"])) if row else None


def consume_button_press(data_dir: Path, press_id: int) -> bool:
    """Mark press ``press_id`` used; True only for the one caller that consumed it."""
    with _db(data_dir) as db, db.transaction() as c:
        return (
            c.execute("UPDATE button_presses SET consumed = 1 WHERE id = ? AND consumed = 0", (press_id,)).rowcount == 1
        )


def _recovery_open(db: Database) -> bool:
    return float(_get(db, "recovery_until", "0") or 0) > time.time()


def open_recovery(data_dir: Path, minutes: float = 15) -> str:
    """Owner recovery (button held ~10 s): reopen the claim and password steps for ``minutes``.

    Makes a fresh setup code (returned, and written to DATA_DIR/setup-code.txt); data is kept.
    """
    code = new_code()
    with _db(data_dir) as db, db.transaction():
        _set(db, "recovery_until", str(time.time() + minutes * 60))
        _set(db, "setup_code", code)
    _write_code_file(data_dir, code)
    return code


def recovery_open(data_dir: Path) -> bool:
    with _db(data_dir) as db:
        return _recovery_open(db)


def close_recovery(data_dir: Path) -> None:
    with _db(data_dir) as db, db.transaction():
        _set(db, "recovery_until", "0")
        _set(db, "setup_code", "")
    with contextlib.suppress(FileNotFoundError):
        (Path(data_dir) / SETUP_CODE_FILE).unlink()


__all__ = [
    "button_pressed",
    "open_recovery",
    "ensure_setup_code",
    "check_code",
    "claim",
    "complete",
    "state",
    "is_complete",
    "recovery_open",
    "gate",
    "generation",
    "reclaim",
    "forget_gates",
    "close_recovery",
    "take_button_press",
    "pending_button_press",
    "consume_button_press",
    "step_done",
    "mark_step_done",
]
