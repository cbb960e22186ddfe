"""``claim.gate``: the claim state the web checks on every request, kept in memory, must stay as
fresh as reading the database: a claim completed in this process closes the gate on the next
call, and recovery opened by another process (``gk claim recover``, the button service) is seen
on the next call after its commit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gk import claim


@pytest.fixture(autouse=True)
def _fresh_gates():
    claim.forget_gates()
    yield
    claim.forget_gates()


def test_gate_follows_this_process_writes_at_once(tmp_path):
    assert claim.gate(tmp_path) == (claim.UNCLAIMED, False)
    assert claim.gate(tmp_path) == (claim.UNCLAIMED, False)  # kept: answered from memory
    claim.claim(tmp_path, "setup code")
    assert claim.gate(tmp_path) == (claim.SETUP, False)
    claim.complete(tmp_path)
    assert claim.gate(tmp_path) == (claim.COMPLETE, False)  # the wizard closes on the very next request
    claim.open_recovery(tmp_path, minutes=15)
    assert claim.gate(tmp_path) == (claim.COMPLETE, True)
    claim.close_recovery(tmp_path)
    assert claim.gate(tmp_path) == (claim.COMPLETE, False)


def test_gate_sees_recovery_opened_by_another_process(tmp_path):
    claim.claim(tmp_path, "setup code")
    claim.complete(tmp_path)
    assert claim.gate(tmp_path) == (claim.COMPLETE, False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-m", "gk", "claim", "recover", "--data-dir", str(tmp_path), "--minutes", "15"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "owner recovery open" in out.stdout
    assert claim.gate(tmp_path) == (claim.COMPLETE, True)  # the next request after the commit
    assert claim.recovery_open(tmp_path)  # and it agrees with a fresh read


def test_gate_closes_recovery_when_its_window_ends_without_a_write(tmp_path, monkeypatch):
    claim.complete(tmp_path)
    claim.open_recovery(tmp_path, minutes=15)
    assert claim.gate(tmp_path) == (claim.COMPLETE, True)
    now = claim.time.time()
    monkeypatch.setattr(claim.time, "time", lambda: now + 16 * 60)
    assert claim.gate(tmp_path) == (claim.COMPLETE, False)


def test_gate_follows_a_replaced_database_file(tmp_path):
    claim.complete(tmp_path)
    assert claim.gate(tmp_path) == (claim.COMPLETE, False)
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"claim.sqlite3{suffix}").unlink(missing_ok=True)
    assert claim.gate(tmp_path) == (claim.UNCLAIMED, False)  # a new file, not the old connection's view


def test_web_claim_state_is_the_gate(tmp_path):
    from gk import config
    from gk.context import build_context
    from gk.web.app import Web

    web = Web(build_context(config.load(tmp_path), tmp_path))
    assert web.claim_state() == (claim.UNCLAIMED, False)
    claim.claim(tmp_path, "button")
    claim.complete(tmp_path)
    assert web.claim_state() == (claim.COMPLETE, False)  # no forget_state() needed
