"""Chat memory and write rate: GK's idle RSS with ``[chat] enabled`` against the same GK with
the chat off (the named peer), RSS per idle IRC connection, and messages persisted per second
(one IRC client pipelining a burst, every message echoed only after its commit).

Targets (issue 12): idle RSS grows by <= 6 MB with the chat on; <= 50 KB per idle connection;
Ergo's SQLite history is the anchor at ~1,000 messages/s. RSS is read from /proc/PID/status.
Run: ``.venv/bin/python -m bench chat_rss`` (BENCH_CHAT_CLIENTS, BENCH_CHAT_MESSAGES to scale).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

from bench._ports import free_port

REPO = Path(__file__).resolve().parents[1]
GK_CMD = [sys.executable, "-m", "gk"]
USER, PASSWORD = "bench@bench.example", "bench password 1234"
CLIENTS = int(os.environ.get("BENCH_CHAT_CLIENTS", "200"))
MESSAGES = int(os.environ.get("BENCH_CHAT_MESSAGES", "3000"))
SETTLE = 4.0  # seconds after "ready" (and after connecting) before RSS is read


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class GK:
    def __init__(self, root: Path, chat: bool):
        self.data = root / ("chat-on" if chat else "chat-off")
        self.irc_port = free_port()
        ports = {
            # webchat_rss opens CLIENTS WebSockets from 127.0.0.1: above the per-client default (100)
            "http": {"port": free_port(), "https_port": 0, "max_connections": 1000, "max_connections_per_ip": 1000},
            "smtp": {"port": free_port(), "submission_port": 0, "submissions_port": 0},
            "imap": {"port": 0, "tls_port": free_port()},
        }
        cfg = {
            "server": {"bind": "127.0.0.1", "hostname": "bench.example"},
            **ports,
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
            # CLIENTS sessions from 127.0.0.1: above the per-address default (50)
            "chat": {
                "enabled": chat,
                "irc_port": self.irc_port,
                "line_burst": 100000,
                "lines_per_second": 100000.0,
                "max_connections_per_ip": 1000,
            },
        }
        self.data.mkdir(parents=True)
        (self.data / "gk.toml").write_text(tomli_w.dumps(cfg))
        subprocess.run(
            [*GK_CMD, "user", "add", USER, "--password-stdin", "--data-dir", str(self.data)],
            input=PASSWORD + "\n",
            text=True,
            check=True,
            capture_output=True,
        )
        self.log = open(self.data / "serve.log", "wb")
        self.lag_file = self.data / "hub-lag.json"
        env = dict(os.environ, GK_HUB_LAG_FILE=str(self.lag_file))  # gk.hublag: event-loop lag since start
        self.proc = subprocess.Popen(
            [*GK_CMD, "serve", "--data-dir", str(self.data)], stdout=self.log, stderr=self.log, env=env
        )
        deadline = time.monotonic() + 60
        while b"ready in" not in (self.data / "serve.log").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.data / "serve.log").read_text())
            time.sleep(0.1)

    def rss(self) -> int:
        return rss_kb(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def irc_client(port: int, ctx: ssl.SSLContext, caps: str = "") -> ssl.SSLSocket:
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=120))
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    s.sendall(
        f"CAP REQ :sasl {caps}\r\nNICK b\r\nUSER b 0 * :b\r\nAUTHENTICATE PLAIN\r\nAUTHENTICATE {token}\r\nCAP END\r\n".encode()
    )
    buf = b""
    while b" 366 " not in buf:
        data = s.recv(65536)
        if not data:
            raise RuntimeError("closed during registration: " + buf.decode(errors="replace")[-500:])
        buf += data
    return s


def burst(port: int, ctx: ssl.SSLContext, senders: int) -> tuple[float, float]:
    """Every sender pipelines its share of MESSAGES at once; time until every echo is back."""
    import threading

    socks = [irc_client(port, ctx, "echo-message") for _ in range(senders)]
    share = MESSAGES // senders

    def run(s: ssl.SSLSocket, k: int) -> None:
        s.sendall(b"".join(b"PRIVMSG #general :bench message %d-%d\r\n" % (k, i) for i in range(share)))
        echoed, buf = 0, b""
        while echoed < share:
            data = s.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed during the burst")
            buf += data
            lines = buf.split(b"\n")
            buf = lines.pop()
            echoed += sum(f":bench message {k}-".encode() in ln and b"@" not in ln[:1] for ln in lines)

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(s, k)) for k, s in enumerate(socks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    for s in socks:
        s.close()
    return share * senders / elapsed, elapsed


def on_batches(on: GK) -> str:
    import sqlite3

    n = sqlite3.connect(on.data / "chat.sqlite3").execute("SELECT count(*) FROM messages").fetchone()[0]
    return f"{n} rows stored so far"


def main() -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    root = Path(tempfile.mkdtemp(prefix="gk-bench-chat-"))
    try:
        off = GK(root, chat=False)
        time.sleep(SETTLE)
        rss_off = off.rss()
        off.stop()
        on = GK(root, chat=True)
        time.sleep(SETTLE)
        rss_on = on.rss()
        print(f"idle RSS: chat off {rss_off / 1024:.1f} MB, chat on {rss_on / 1024:.1f} MB")
        print(
            f"chat costs {(rss_on - rss_off) / 1024:+.1f} MB idle (ratio on/off {rss_on / rss_off:.3f}; target <= +6 MB)"
        )

        socks = [irc_client(on.irc_port, ctx) for _ in range(CLIENTS)]
        time.sleep(SETTLE)
        rss_conn = on.rss()
        per = (rss_conn - rss_on) / CLIENTS
        print(f"{CLIENTS} idle IRC/TLS connections: {rss_conn / 1024:.1f} MB, {per:.1f} KB each (target <= 50 KB)")
        for s in socks:
            s.close()

        for senders in (1, 20):
            rate, elapsed = burst(on.irc_port, ctx, senders)
            print(
                f"{MESSAGES} messages from {senders} pipelining connection(s) persisted (synchronous=FULL,"
                f" echoed after commit) in {elapsed:.2f}s: {rate:.0f} msgs/s, {rate / 1000:.2f}x Ergo's"
                f" ~1,000 msgs/s anchor (not run here); {on_batches(on)}"
            )
        time.sleep(1.5)  # the lag file is rewritten once a second
        import json

        lag = json.loads(on.lag_file.read_text())
        print(
            f"hub lag over the whole chat-on run (idle, 200 logins, both bursts): p50 {lag['p50_ms']:.1f} ms,"
            f" p99 {lag['p99_ms']:.1f} ms, max {lag['max_ms']:.1f} ms ({lag['samples']} samples)"
        )
        on.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
