"""Run a real ``gk serve`` subprocess on free loopback ports with its own data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from support import material
from support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
GK = [sys.executable, "-m", "gk"]
# overrides that turn the mail listeners off, for a server whose test needs only the web, DAV or chat
NO_MAIL: dict[str, dict[str, Any]] = {
    "smtp": {"port": 0, "submission_port": 0, "submissions_port": 0},
    "imap": {"port": 0, "tls_port": 0},
}


def _env() -> dict[str, str]:
    """The environment of every ``gk`` subprocess: unbuffered output, and GK's compiled modules
    kept (``__pycache__``, ignored by git): under PYTHONDONTWRITEBYTECODE=1 each of the suite's
    hundreds of ``gk`` processes would compile GK from source again (~0.1 s of CPU each)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return dict(env, PYTHONUNBUFFERED="1")


PORT_KEYS = [
    ("http", "port"),
    ("http", "https_port"),
    ("smtp", "port"),
    ("smtp", "submission_port"),
    ("smtp", "submissions_port"),
    ("imap", "port"),
    ("imap", "tls_port"),
    ("chat", "irc_port"),
]


def gk(data_dir: Path, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GK, *args, "--data-dir", str(data_dir)],
        input=input,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
        env=_env(),
    )


# Every server started in this test session, so a failing test's report can carry their logs.
STARTED: list[GKServer] = []


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state on this machine (from /proc/net/tcp and tcp6)."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


class PortTaken(RuntimeError):
    pass


@dataclass
class GKServer:
    data_dir: Path
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    # copy the session's TLS pair and DKIM keys in before the first start (support/material.py);
    # False for a test of the server making its own
    session_keys: bool = True

    def write_config(self) -> None:
        cfg: dict[str, dict[str, Any]] = {"server": {"bind": "127.0.0.1", "hostname": "mx.test.example"}}
        if not self.ports:
            for section, key in PORT_KEYS:
                self.ports[f"{section}.{key}"] = free_port()
        for name, value in self.ports.items():
            section, key = name.split(".")
            cfg.setdefault(section, {})[key] = value
        for section, table in self.overrides.items():
            cfg.setdefault(section, {}).update(table)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "gk.toml").write_text(tomli_w.dumps(cfg))

    def port(self, name: str) -> int:
        return self.ports[name]

    def add_user(self, address: str, password: str, admin: bool = False) -> None:
        """What ``gk user add`` does, in this process: the CLI is tested on its own
        (test_cli.py), and a ``gk`` subprocess per seeded user costs a second of wall time."""
        from gk.config import load
        from gk.context import open_accounts

        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_accounts(load(self.data_dir), self.data_dir)
        try:
            store.add_user(address, password, admin=admin)
        finally:
            store.db.close()

    def claimed(self, users: dict[str, str], admins: tuple[str, ...] = (), timezone: str = "") -> GKServer:
        """The box as its wizard leaves it, not yet started: the config written, ``users`` (address:
        password) added, the setup code spent and the wizard closed, the owner's zone set."""
        from gk import claim, settings

        self.write_config()
        for address, password in users.items():
            self.add_user(address, password, admin=address in admins)
        claim.claim(self.data_dir, "test")
        claim.complete(self.data_dir)
        if timezone:
            settings.of(self.data_dir).update(timezone=timezone)
        return self

    def _seed_keys(self) -> None:
        """The session's TLS pair for the configured host name and a DKIM key for each local
        user's domain, unless the config names its own certificate or DKIM selectors."""
        from gk.config import load
        from gk.context import hostname_of, open_accounts

        cfg = load(self.data_dir)
        if cfg.tls.cert_file or cfg.tls.key_file or cfg.queue.dkim_ed25519_selector:
            return
        domains: set[str] = set()
        if (self.data_dir / "accounts.sqlite3").exists():
            store = open_accounts(cfg, self.data_dir)
            try:
                domains = {u.address.rsplit("@", 1)[1] for u in store.list_users()}
            finally:
                store.db.close()
        material.seed(self.data_dir, hostname_of(cfg), domains, cfg.queue.dkim_selector)

    def start(self, wait: float = 30.0) -> GKServer:
        STARTED.append(self)
        auto_ports = not self.ports
        for attempt in range(3):
            try:
                return self._start_once(wait)
            except PortTaken:
                if not auto_ports or attempt == 2:
                    raise
                self.ports.clear()  # another process took a port between our pick and the bind
        raise AssertionError("unreachable")

    def _start_once(self, wait: float) -> GKServer:
        self.write_config()
        if self.session_keys:
            self._seed_keys()
        self.log_path = self.data_dir / "serve.log"
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*GK, "serve", "--data-dir", str(self.data_dir)], stdout=log, stderr=log, env=_env()
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log()[offset:]
                if "address already in use" in text.lower():  # gevent says "Address", asyncio "address"
                    raise PortTaken(text)
                raise RuntimeError(f"gk serve exited with {self.proc.returncode}:\n{self.log()}")
            if "ready in" in self.log()[offset:]:
                self._wait_listeners(deadline, offset)
                return self
            time.sleep(0.05)
        raise RuntimeError(f"gk serve not ready after {wait}s:\n{self.log()}")

    def _wait_listeners(self, deadline: float, offset: int = 0) -> None:
        """Every configured port is listening before a test gets the server.

        "ready in" is logged after the listeners opened; this checks it from outside (the
        process is alive and the kernel lists each port in LISTEN state), so a server that died
        or lost a listener after saying ready fails here with its log rather than as a refused
        connection somewhere in a test. No connection is made: tests of connection limits and
        session logs see only their own clients.
        """
        pending = {name: port for name, port in self.effective_ports().items() if port}
        while True:
            assert self.proc
            if self.proc.poll() is not None:
                if "address already in use" in self.log()[offset:].lower():
                    raise PortTaken(self.log()[offset:])  # another process took a port first: new ports
                raise RuntimeError(f"gk serve exited with {self.proc.returncode} after ready:\n{self.log()}")
            listening = listening_ports()
            pending = {name: port for name, port in pending.items() if port not in listening}
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"gk serve said ready but {pending} are not listening:\n{self.log()}")
            time.sleep(0.05)

    def effective_ports(self) -> dict[str, int]:
        """Listener ports after overrides (an override of 0 turns a listener off)."""
        ports = dict(self.ports)
        for section, table in self.overrides.items():
            for key, value in table.items():
                if f"{section}.{key}" in ports and isinstance(value, int):
                    ports[f"{section}.{key}"] = value
        return ports

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pid(self) -> int:
        assert self.proc
        return self.proc.pid
