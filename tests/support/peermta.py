"""A peer MTA for the queue/outbound tests: aiosmtpd in its own process, scripted per test.

Run as a module it is the peer: ``python -m support.peermta CONFIG.json`` (with ``tests/`` on
``PYTHONPATH``). The peer binds
one loopback address, offers STARTTLS with the cert it is given, optionally requires AUTH,
and follows scripted replies read from its JSON config on every command (so a test can change
its behaviour while it runs): ``rcpt`` maps an address to a list of replies used one per
attempt (then "250"), ``rcpt_all`` is such a list for every address, ``data`` is a list of DATA replies, ``drop_data`` closes the connection
instead of answering DATA that many times, ``slow`` sleeps that long before each RCPT reply,
``reply_delay`` after saving a message and before its ``250``.
Every accepted message is saved as ``<out>/<n>.eml`` (+ ``.json`` envelope) before ``250``.

Imported by the tests it provides ``PeerMTA`` and the ``peers`` fixture (a factory of peers
sharing one port on different loopback addresses).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.ports import free_port


# -- the peer MTA, test side ----------------------------------------------------------------
@dataclass
class PeerMTA:
    workdir: Path
    address: str
    port: int
    cert: Path | None = None
    key: Path | None = None
    auth: tuple[str, str] | None = None
    behaviour: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def out(self) -> Path:
        return self.workdir / "out"

    @property
    def config_path(self) -> Path:
        return self.workdir / "peer.json"

    def configure(self, **behaviour) -> None:  # type: ignore[no-untyped-def]
        self.behaviour.update(behaviour)
        cfg = {
            "address": self.address,
            "port": self.port,
            "out": str(self.out),
            "cert": str(self.cert) if self.cert else "",
            "key": str(self.key) if self.key else "",
            "auth": list(self.auth) if self.auth else None,
            **self.behaviour,
        }
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cfg))
        os.replace(tmp, self.config_path)

    def start(self) -> PeerMTA:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(exist_ok=True)
        self.configure()
        log = open(self.workdir / "peer.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "support.peermta", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
        )
        assert self.proc.stdout
        line = self.proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"peer MTA did not start: {line!r}\n{(self.workdir / 'peer.log').read_text()}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def messages(self) -> list[tuple[dict, bytes]]:
        out = []
        for meta in sorted(self.out.glob("*.json"), key=lambda p: int(p.stem)):
            out.append((json.loads(meta.read_text()), meta.with_suffix(".eml").read_bytes()))
        return out

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[dict, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.messages()
            if len(msgs) >= count:
                return msgs
            time.sleep(0.1)
        raise AssertionError(f"peer {self.address} got {len(self.messages())} message(s), expected {count}")

    def max_inflight(self) -> int:
        """The most sessions that were waiting for a RCPT reply at the same time."""
        p = self.workdir / "max_inflight"
        return int(p.read_text()) if p.exists() else 0

    def log(self) -> str:
        p = self.workdir / "peer.log"
        return p.read_text() if p.exists() else ""


# -- the peer MTA, server side (runs in its own process) ------------------------------------
def _serve(config_path: str) -> None:
    import asyncio
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cfg = json.loads(Path(config_path).read_text())
    counters: dict[str, int] = {}
    seq = [len(list(Path(cfg["out"]).glob("*.json")))]
    inflight = [0, 0]  # RCPT commands being answered now, most ever

    def current() -> dict:
        return json.loads(Path(config_path).read_text())

    def scripted(kind: str, key: str) -> str | None:
        if kind == "rcpt" and current().get("rcpt_all"):
            kind, key = "rcpt_all", "all"
        replies = current().get(kind, {})
        lst = replies.get(key) if isinstance(replies, dict) else replies
        if not lst:
            return None
        n = counters.get(f"{kind}:{key}", 0)
        counters[f"{kind}:{key}"] = n + 1
        return lst[n] if n < len(lst) else None

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
            behaviour = current()
            inflight[0] += 1
            if inflight[0] > inflight[1]:
                inflight[1] = inflight[0]
                (Path(config_path).parent / "max_inflight").write_text(str(inflight[1]))
            try:
                if behaviour.get("slow"):
                    await asyncio.sleep(float(behaviour["slow"]))
            finally:
                inflight[0] -= 1
            reply = scripted("rcpt", address.lower())
            if reply and not reply.startswith("250"):
                return reply
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            drops = current().get("drop_data", 0)
            if counters.get("drop", 0) < drops:
                counters["drop"] = counters.get("drop", 0) + 1
                server.transport.close()
                return "421 closing"  # never reaches the client: the transport is closed
            reply = scripted("data", "all")
            if reply and not reply.startswith("250"):
                return reply
            n = seq[0] = seq[0] + 1
            out = Path(cfg["out"])
            (out / f"{n}.eml.tmp").write_bytes(envelope.original_content)
            os.replace(out / f"{n}.eml.tmp", out / f"{n}.eml")
            meta = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None,
                "client": list(session.peer)[:2],  # (address, port): one per SMTP connection
                "auth": session.authenticated,
                "login": session.auth_data if isinstance(session.auth_data, str) else None,
            }
            (out / f"{n}.json.tmp").write_text(json.dumps(meta))
            os.replace(out / f"{n}.json.tmp", out / f"{n}.json")
            if current().get("reply_delay"):  # saved, but the 250 is not sent yet
                await asyncio.sleep(float(current()["reply_delay"]))
            return f"250 2.0.0 OK queued as {n}"

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        want = cfg.get("auth")
        ok = bool(want) and auth_data.login.decode() == want[0] and auth_data.password.decode() == want[1]
        return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None)

    kwargs: dict = {"data_size_limit": 200 * 1024 * 1024}
    if cfg.get("cert"):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cfg["cert"], cfg["key"])
        if cfg.get("tls_max") == "TLSv1_1":  # a peer no current client can handshake with
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        kwargs["tls_context"] = ctx
    if cfg.get("auth"):
        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
    controller = Controller(
        Handler(), hostname=cfg["address"], port=cfg["port"], server_hostname="peer.test", ready_timeout=10, **kwargs
    )
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


@pytest.fixture
def peers(tmp_path):
    started: list[PeerMTA] = []
    port = free_port()

    def start(address: str, **kw) -> PeerMTA:  # type: ignore[no-untyped-def]
        p = PeerMTA(tmp_path / f"peer-{address}", address, port, **kw).start()
        started.append(p)
        return p

    start.port = port  # type: ignore[attr-defined]
    yield start
    for p in started:
        p.stop()


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    _serve(sys.argv[1])
