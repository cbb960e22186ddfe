"""Helpers for the interoperability tests (no tests here): one ``gk serve`` per test module with two
users, and runners for the Debian clients (curl, mbsync from isync, fetchmail) with their config
files written into the test's temporary directory.

Clients reach the server over real, verified TLS on loopback: every client trusts exactly
``DATA_DIR/tls/cert.pem`` (the self-signed certificate made at first start) and connects by the
name in it (curl through ``--resolve``, fetchmail through ``sslcommonname``); none is told to
skip verification.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.skips import skip_or_fail

PASSWORD = "interop password 4711"
ALICE = "alice@example.org"
BOB = "bob@example.org"
HOSTNAME = "mx.test.example"  # the server's certificate names it (tests/support/gkserver.py)


def need(*tools: str) -> None:
    """Skip when a Debian client is missing (``make test`` installs them via TEST_DEBS)."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        skip_or_fail(f"missing client(s) {missing}: run `make test-sysdeps`")


def module_server(name: str = "gk"):  # type: ignore[no-untyped-def]
    """A module-scoped fixture: ``gk_server = module_server()`` at the top of a test module."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory) -> Iterator:  # type: ignore[no-untyped-def]
        from support.gkserver import GKServer

        overrides = {
            "http": {"https_port": 0},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
        }
        srv = GKServer(tmp_path_factory.mktemp(name), overrides)
        srv.write_config()
        srv.add_user(ALICE, PASSWORD)
        srv.add_user(BOB, PASSWORD)
        srv.start()
        yield srv
        srv.stop()

    return fixture


def cert(srv) -> Path:  # type: ignore[no-untyped-def]
    return srv.data_dir / "tls" / "cert.pem"


def maildir(srv, user: str, folder: str = "") -> Path:  # type: ignore[no-untyped-def]
    root = srv.data_dir / "mail" / user / "Maildir"
    return root / ("." + folder) if folder else root


def messages(folder: Path) -> list[Path]:
    """The message files of one Maildir folder (new/ and cur/), oldest name first."""
    return sorted((p for sub in ("new", "cur") for p in (folder / sub).glob("*") if p.is_file()), key=lambda p: p.name)


def flags_of(path: Path) -> str:
    """Maildir info flags of a message file name (``...:2,FS`` -> ``FS``); new/ files have none."""
    return path.name.rsplit(":2,", 1)[1] if ":2," in path.name else ""


def run(args: list[str], *, timeout: float = 60, env: dict | None = None, **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(
        args, capture_output=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False, **kw
    )


def curl(srv, scheme: str, port_key: str, path: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    """Run curl against ``scheme://HOSTNAME:port/path``, the name pinned to 127.0.0.1 and the
    server's own certificate as the only CA."""
    port = srv.port(port_key)
    return run(
        ["curl", "--silent", "--show-error", "--max-time", str(int(timeout)),
         "--resolve", f"{HOSTNAME}:{port}:127.0.0.1", "--cacert", str(cert(srv)),
         f"{scheme}://{HOSTNAME}:{port}/{path}", *args],
        timeout=timeout + 5,
    )  # fmt: skip


def curl_send(
    srv, message: Path, rcpts: list[str], *, implicit_tls: bool = False, user: str = ALICE
) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    """Submit ``message`` with curl: STARTTLS on the submission port, or implicit TLS on 465."""
    scheme, port_key, tls = (
        ("smtps", "smtp.submissions_port", []) if implicit_tls else ("smtp", "smtp.submission_port", ["--ssl-reqd"])
    )
    rcpt_args = [a for r in rcpts for a in ("--mail-rcpt", r)]
    return curl(
        srv, scheme, port_key, "", *tls,
        "--user", f"{user}:{PASSWORD}", "--mail-from", user, *rcpt_args, "--upload-file", str(message),
    )  # fmt: skip


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns a truthy value (local delivery is synchronous with the
    250 reply, so this only covers file-system visibility, not a timing assumption)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def strip_trace(raw: bytes) -> bytes:
    """The message as the client sent it: drop the header fields GK adds on delivery
    (Return-Path, Delivered-To, Received with its continuation lines) from the top."""
    lines = raw.split(b"\r\n") if b"\r\n" in raw else raw.split(b"\n")
    sep = b"\r\n" if b"\r\n" in raw else b"\n"
    i = 0
    while i < len(lines):
        line = lines[i]
        name = line.split(b":", 1)[0].lower()
        if name in (b"return-path", b"delivered-to", b"received", b"authentication-results"):
            i += 1
            while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                i += 1
            continue
        break
    return sep.join(lines[i:])
