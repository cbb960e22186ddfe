"""gk.settings: the owner's settings in their own store, change callbacks, the move out of the
claim database, and gk.config's one durable writer of gk.toml."""

from __future__ import annotations

import ast
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gk import claim, settings
from gk import config as gkconfig

GK = Path(__file__).resolve().parents[2] / "appliance" / "gk"


def fresh(data_dir: Path) -> settings.Settings:
    """A new instance, as after a restart (``of`` keeps one per process)."""
    settings._instances.clear()
    return settings.of(data_dir)


def old_claim_db(data_dir: Path, rows: dict[str, str]) -> None:
    """A claim database as GK wrote it before gk.settings: owner settings as "opt:<key>" rows."""
    with claim._db(data_dir) as db, db.transaction():
        for key, value in rows.items():
            claim._set(db, key, value)


def claim_rows(data_dir: Path) -> dict[str, str]:
    conn = sqlite3.connect(data_dir / "claim.sqlite3")
    try:
        return dict(conn.execute("SELECT key, value FROM settings").fetchall())
    finally:
        conn.close()


def test_settings_survive_a_reopen_and_the_host_name_lives_only_in_gk_toml(tmp_path: Path) -> None:
    s = fresh(tmp_path)
    assert (s.timezone(), s.mail_domain(), s.ai_model("none"), s.hostname()) == ("", "", "none", "")
    assert s.https_redirect() is False and s.https_redirect(default=True) is True
    s.update(timezone="Europe/Paris", mail_domain="example.org", https_redirect=False, ai_model="llama3.2-1b-q4")
    s.update(hostname="mail.example.org")
    again = fresh(tmp_path)
    assert again is not s
    assert again.timezone() == "Europe/Paris" and again.mail_domain() == "example.org"
    assert again.https_redirect(default=True) is False and again.ai_model() == "llama3.2-1b-q4"
    assert again.hostname() == "mail.example.org"
    assert tomllib.loads((tmp_path / "gk.toml").read_text())["server"]["hostname"] == "mail.example.org"
    assert gkconfig.load(tmp_path).server.hostname == "mail.example.org"
    conn = sqlite3.connect(tmp_path / settings.DB_FILE)
    assert "hostname" not in dict(conn.execute("SELECT key, value FROM settings").fetchall())  # stored once
    conn.close()
    assert again.snapshot() == {
        "timezone": "Europe/Paris",
        "mail_domain": "example.org",
        "https_redirect": "0",
        "ai_model": "llama3.2-1b-q4",
        "hostname": "mail.example.org",
    }
    assert not (tmp_path / "claim.sqlite3").exists() or not claim_rows(tmp_path)  # nothing in claim


def test_the_authserv_id_is_the_first_host_name_asked_with_for_good(tmp_path: Path) -> None:
    s = fresh(tmp_path)
    assert s.authserv_id("GK.Local") == "gk.local"
    s.update(hostname="mail.example.org")
    assert s.authserv_id("mail.example.org") == "gk.local"
    assert fresh(tmp_path).authserv_id("other.example") == "gk.local"  # stored, not remembered


def test_callbacks_run_after_the_value_is_durable(tmp_path: Path) -> None:
    s = fresh(tmp_path)
    seen: list[tuple[frozenset[str], str, str]] = []

    def check(change: settings.Change) -> None:
        # read from disk by another connection: the transaction is committed, gk.toml renamed
        conn = sqlite3.connect(tmp_path / settings.DB_FILE)
        stored = dict(conn.execute("SELECT key, value FROM settings").fetchall())
        conn.close()
        toml = (tmp_path / "gk.toml").read_text() if (tmp_path / "gk.toml").exists() else ""
        seen.append((change.keys, stored.get("mail_domain", ""), toml))

    unsubscribe = s.subscribe(check, {"mail_domain", "hostname"})
    s.update(ai_model="none")  # not a key it asked for
    assert seen == []
    s.update(mail_domain="example.org", hostname="mail.example.org")
    assert len(seen) == 1
    keys, domain, toml = seen[0]
    assert keys == {"mail_domain", "hostname"} and domain == "example.org" and 'hostname = "mail.example.org"' in toml
    unsubscribe()
    s.update(mail_domain="example.net")
    assert len(seen) == 1


def test_a_failing_callback_is_logged_and_neither_undoes_the_write_nor_stops_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = fresh(tmp_path)
    after: list[str] = []

    def broken(change: settings.Change) -> None:
        raise RuntimeError("subscriber bug")

    s.subscribe(broken)
    s.subscribe(lambda change: after.append(change.settings.timezone()))
    with caplog.at_level(logging.ERROR, logger="gk.settings"):
        s.update(timezone="Asia/Tokyo")
    assert after == ["Asia/Tokyo"]
    assert fresh(tmp_path).timezone() == "Asia/Tokyo"
    assert any(
        "callback" in r.message and r.exc_info and "subscriber bug" in str(r.exc_info[1]) for r in caplog.records
    )


def test_a_relay_change_replaces_the_running_queue_section_then_calls_back(tmp_path: Path) -> None:
    s = fresh(tmp_path)
    running = gkconfig.load(tmp_path)
    old_queue = running.queue
    s.bind(running)
    seen: list[str] = []
    s.subscribe(lambda change: seen.append(running.queue.smarthost), settings.RELAY_KEYS)
    s.set_relay({"smarthost": "smtp.isp.example", "smarthost_port": 587, "smarthost_tls": "starttls"})
    assert seen == ["smtp.isp.example"]
    assert running.queue is not old_queue and old_queue.smarthost == ""  # never mutated in place
    assert running.queue.retry_minutes == old_queue.retry_minutes
    assert gkconfig.load(tmp_path).queue.smarthost == "smtp.isp.example"
    before = (tmp_path / "gk.toml").read_text()
    with pytest.raises(gkconfig.ConfigError):
        s.set_relay({"smarthost": "smtp.isp.example", "smarthost_tls": "bogus"})
    assert (tmp_path / "gk.toml").read_text() == before and seen == ["smtp.isp.example"]
    with pytest.raises(ValueError):
        s.set_relay({"max_queue": 1})


OLD_ROWS = {
    "state": "complete",
    "claimed_by": "setup code",
    "setup_code": "",
    "opt:done:host": "1",
    "opt:done:timezone": "1",
    "opt:mail_domain": "family.example",
    "opt:hostname": "mail.family.example",
    "opt:timezone": "Europe/Paris",
    "opt:https_redirect": "1",
    "opt:ai_model": "qwen2.5-0.5b-q4",
}


def test_settings_move_out_of_an_old_claim_database_once_losing_nothing(tmp_path: Path) -> None:
    old_claim_db(tmp_path, OLD_ROWS)
    s = fresh(tmp_path)
    assert s.snapshot() == {
        "mail_domain": "family.example",
        "hostname": "mail.family.example",
        "timezone": "Europe/Paris",
        "https_redirect": "1",
        "ai_model": "qwen2.5-0.5b-q4",
    }
    assert gkconfig.load(tmp_path).server.hostname == "mail.family.example"  # gk.toml named none
    left = claim_rows(tmp_path)
    assert not [k for k in left if k.startswith("opt:") and not k.startswith("opt:done:")]
    assert claim.state(tmp_path) == claim.COMPLETE and claim.step_done(tmp_path, "host")  # claim state kept
    s.update(timezone="Asia/Tokyo")
    old_claim_db(tmp_path, {"opt:timezone": "Europe/Paris"})  # even if an old row came back
    assert fresh(tmp_path).timezone() == "Asia/Tokyo"  # the move ran once: it does not overwrite
    assert "opt:timezone" not in claim_rows(tmp_path)


def test_the_gk_toml_host_name_wins_over_the_claim_database_copy(tmp_path: Path) -> None:
    gkconfig.update_config_file(tmp_path, "server", {"hostname": "edited.family.example"})
    old_claim_db(tmp_path, OLD_ROWS)
    assert fresh(tmp_path).hostname() == "edited.family.example"


def test_a_crash_during_the_move_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_claim_db(tmp_path, OLD_ROWS)
    real_update = gkconfig.update_config_file

    def write_then_die(*args: object, **kw: object) -> gkconfig.Config:
        real_update(*args, **kw)  # type: ignore[arg-type]
        raise KeyboardInterrupt("power cut after gk.toml, before the settings transaction")

    monkeypatch.setattr(gkconfig, "update_config_file", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        fresh(tmp_path)
    monkeypatch.setattr(gkconfig, "update_config_file", real_update)

    def die(claim_db: Path) -> None:
        raise KeyboardInterrupt("power cut after the settings transaction, before the claim cleanup")

    monkeypatch.setattr(settings, "_drop_old_claim_settings", die)
    with pytest.raises(KeyboardInterrupt):
        fresh(tmp_path)
    assert "opt:timezone" in claim_rows(tmp_path)
    monkeypatch.undo()
    s = fresh(tmp_path)
    assert (
        s.timezone() == "Europe/Paris" and s.hostname() == "mail.family.example" and s.ai_model() == "qwen2.5-0.5b-q4"
    )
    assert not [k for k in claim_rows(tmp_path) if k.startswith("opt:") and not k.startswith("opt:done:")]


def test_wizard_progress_stays_claim_state(tmp_path: Path) -> None:
    assert not claim.step_done(tmp_path, "host")
    claim.mark_step_done(tmp_path, "host")
    assert claim.step_done(tmp_path, "host") and not claim.step_done(tmp_path, "tls")
    assert fresh(tmp_path).snapshot() == {}


CRASH = """
import os, signal, sys
from pathlib import Path
from gk import config
calls = 0
def fsync(fd):
    global calls
    calls += 1
    if calls == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    real(fd)
real, os.fsync = os.fsync, fsync
config.write_config_text(Path(sys.argv[1]), "[server]\\nhostname = 'new.example'\\n")
"""


@pytest.mark.parametrize("at_fsync, survives", [(1, "old"), (2, "new")])
def test_gk_toml_writer_leaves_the_old_or_the_new_file_when_killed_mid_write(
    tmp_path: Path, at_fsync: int, survives: str
) -> None:
    old = "# comments kept\n[server]\nhostname = 'old.example'\n"
    (tmp_path / "gk.toml").write_text(old)
    proc = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path), str(at_fsync)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    text = (tmp_path / "gk.toml").read_text()
    # killed at the temp file's fsync: the old file; at the directory's (after the rename): the new one
    want = "old.example" if survives == "old" else "new.example"
    assert tomllib.loads(text)["server"]["hostname"] == want
    gkconfig.write_config_text(tmp_path, "[server]\nhostname = 'third.example'\n")  # a leftover temp is no bother
    assert gkconfig.load(tmp_path).server.hostname == "third.example"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gk.toml"]


def test_every_gk_toml_writer_goes_through_the_durable_one() -> None:
    """gk.toml is written by gk.config.write_config_text only (grep-level: a write call naming
    the config file outside gk/config.py, or the writers it replaced)."""
    writes = re.compile(r"(write_text|write_bytes|_atomic_write|write_durable|os\.replace|\.replace\(path)\(?")
    names = re.compile(r"gk\.toml|cfg_path|config_path")
    offenders = []
    for path in GK.rglob("*.py"):
        if path == GK / "config.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if writes.search(line) and names.search(line):
                offenders.append(f"{path.relative_to(GK)}:{n}: {line.strip()}")
            if "def apply_hostname" in line or "def _write_atomic" in line:
                offenders.append(f"{path.relative_to(GK)}:{n}: {line.strip()}")
    assert offenders == []


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_localtime_and_settings_do_not_depend_on_claim() -> None:
    for name in ("localtime.py", "settings.py"):
        imported = _imports(GK / name)
        assert not {n for n in imported if n == "gk.claim" or n.startswith("gk.claim.")}, name
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, gk.localtime, gk.settings; print('gk.claim' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    assert loaded.stdout.strip() == "False"


def test_gk_toml_read_modify_write_waits_for_another_writer(tmp_path: Path) -> None:
    """update_config_file holds an flock on the data dir: a writer in another process or thread
    (gk setup, the certificate form) cannot slip between its read and its rename."""
    import fcntl
    import threading

    gkconfig.update_config_file(tmp_path, "acme", {"email": "me@example.org"})
    held = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_EX)
    writer = threading.Thread(
        target=gkconfig.update_config_file, args=(tmp_path, "queue", {"smarthost": "relay.example"})
    )
    writer.start()
    writer.join(1.0)
    assert writer.is_alive()  # waiting for the lock (it would have finished long ago otherwise)
    text_while_held = (tmp_path / "gk.toml").read_text()
    os.close(held)
    writer.join(60)
    assert not writer.is_alive() and "relay.example" not in text_while_held
    loaded = gkconfig.load(tmp_path)
    assert loaded.queue.smarthost == "relay.example" and loaded.acme.email == "me@example.org"
