"""Chat fan-out and idle connections against ngircd (Debian's ``ngircd``, BENCH_DEBS), both over
TLS on loopback, in the same run: RSS per idle IRC connection, and messages/s fanned out to
``BENCH_CHAT_RECEIVERS`` clients in one channel from ``BENCH_CHAT_SENDERS`` senders sending two
lines each (many people talking at once; each line counted once it reached every receiver).

Not the same work: GK persists every message in SQLite (group commit, synchronous=FULL) before
fanning it out, tags it (msgid, time) and logs nobody in without SASL; ngircd keeps nothing.
ngircd penalises a client past a few lines (measured here: ~3 lines/s per sender, not
configurable in 26.1), so each sender sends only two lines and the fan-out, not one client's
flood allowance, is measured; ngircd's logins are made 50 at a time (it takes ~1 s per login). Skipped (exit 0) when
ngircd is not installed. Run: ``.venv/bin/python -m bench chat``.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench._ports import free_port
from bench.chat_rss import GK_CMD, SETTLE, rss_kb

RECEIVERS = int(os.environ.get("BENCH_CHAT_RECEIVERS", "100"))
SENDERS = int(os.environ.get("BENCH_CHAT_SENDERS", "100"))
MESSAGES = int(os.environ.get("BENCH_CHAT_FANOUT_MESSAGES", "200"))
IDLE = int(os.environ.get("BENCH_CHAT_IDLE", "200"))
ROUNDS = int(os.environ.get("BENCH_CHAT_ROUNDS", "5"))
ROUND_GAP = 3.0  # seconds between rounds
PASSWORD = "bench password 1234"
NGIRCD = shutil.which("ngircd") or ("/usr/sbin/ngircd" if Path("/usr/sbin/ngircd").exists() else None)


class Server:
    name = ""
    port = 0
    parallel_logins = 1  # GK's login throttle counts concurrent attempts from one address
    proc: subprocess.Popen[bytes]

    def login(self, nick: str) -> bytes:
        raise NotImplementedError

    def rss(self) -> int:
        return rss_kb(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class GKServer(Server):
    name = "GK"

    def __init__(self, root: Path):
        import tomli_w

        self.data = root / "gk"
        self.data.mkdir(parents=True)
        self.port = free_port()
        self.http_port = free_port()
        cfg = {
            "server": {"bind": "127.0.0.1", "hostname": "bench.example"},
            "http": {"port": self.http_port, "https_port": 0},
            "smtp": {"port": free_port(), "submission_port": 0, "submissions_port": 0},
            "imap": {"port": 0, "tls_port": free_port()},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
            "chat": {"irc_port": self.port, "line_burst": 100000, "lines_per_second": 100000.0},
        }
        (self.data / "gk.toml").write_text(tomli_w.dumps(cfg))
        for user in ("send", "recv"):
            subprocess.run(
                [*GK_CMD, "user", "add", f"{user}@bench.example", "--password-stdin", "--data-dir", str(self.data)],
                input=PASSWORD + "\n",
                text=True,
                check=True,
                capture_output=True,
            )
        from gk import claim

        claim.claim(self.data, "bench")  # an unclaimed box serves only the wizard (and no /chat/irc)
        claim.complete(self.data)
        self.log = open(self.data / "serve.log", "wb")
        self.proc = subprocess.Popen([*GK_CMD, "serve", "--data-dir", str(self.data)], stdout=self.log, stderr=self.log)
        _wait_for(lambda: b"ready in" in (self.data / "serve.log").read_bytes(), self.proc, self.data / "serve.log")

    def login(self, nick: str) -> bytes:
        import base64

        user = "send" if nick.startswith("s") else "recv"  # every receiver: a device of one account
        token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
        return (
            f"CAP REQ :sasl\r\nNICK {nick}\r\nUSER b 0 * :b\r\nAUTHENTICATE PLAIN\r\n"
            f"AUTHENTICATE {token}\r\nCAP END\r\nJOIN #bench\r\n"
        ).encode()


class NgircdServer(Server):
    name = "ngircd"
    parallel_logins = 50

    def __init__(self, root: Path):
        assert NGIRCD
        d = root / "ngircd"
        d.mkdir(parents=True)
        d.chmod(0o755)
        key, cert = d / "key.pem", d / "cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bench.example"]
            + ["-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
        )
        key.chmod(0o644)
        self.port = free_port()
        conf = d / "ngircd.conf"
        conf.write_text(
            f"""[Global]
Name = bench.example
Info = bench
Listen = 127.0.0.1
Ports = {free_port()}
PidFile = {d}/ngircd.pid
MotdPhrase = bench
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 20
PingTimeout = 600
PongTimeout = 600
[Options]
DNS = no
Ident = no
PAM = no
[SSL]
CertFile = {cert}
KeyFile = {key}
Ports = {self.port}
"""
        )
        self.log = open(d / "ngircd.log", "wb")
        self.proc = subprocess.Popen([NGIRCD, "-n", "-f", str(conf)], stdout=self.log, stderr=self.log)
        _wait_for(lambda: _listening(self.port), self.proc, d / "ngircd.log")

    def login(self, nick: str) -> bytes:
        return f"NICK {nick}\r\nUSER b 0 * :b\r\nJOIN #bench\r\n".encode()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _wait_for(ready, proc: subprocess.Popen[bytes], log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 90
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text(errors="replace")[-3000:])
        time.sleep(0.1)


def connect(srv: Server, ctx: ssl.SSLContext, nick: str) -> ssl.SSLSocket:
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=120))
    s.sendall(srv.login(nick))
    buf = b""
    while b" 366 " not in buf:
        data = s.recv(65536)
        if not data:
            raise RuntimeError(f"{srv.name}: closed during login: " + buf.decode(errors="replace")[-500:])
        buf += data
        if b"ERROR " in buf and b" 366 " not in buf:
            raise RuntimeError(f"{srv.name}: " + buf.decode(errors="replace")[-500:])
    return s


def connect_many(srv: Server, ctx: ssl.SSLContext, nicks: list[str]) -> list[ssl.SSLSocket]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(srv.parallel_logins) as pool:
        return list(pool.map(lambda n: connect(srv, ctx, n), nicks))


def idle_rss(srv: Server, ctx: ssl.SSLContext) -> float:
    """KB of server RSS per idle logged-in connection (IDLE of them)."""
    time.sleep(SETTLE)
    before = srv.rss()
    socks = connect_many(srv, ctx, [f"i{k}" for k in range(IDLE)])
    time.sleep(SETTLE)
    after = srv.rss()
    for s in socks:
        s.close()
    return (after - before) / IDLE


def _round(
    srv: Server, receivers: list[ssl.SSLSocket], senders: list[ssl.SSLSocket], share: int, total: int, rnd: int
) -> float:
    """Seconds from the first send until every receiver has every line of this round."""
    sel = selectors.DefaultSelector()
    counts = dict.fromkeys(receivers, 0)
    tails = dict.fromkeys(receivers, b"")
    for s in receivers:
        sel.register(s, selectors.EVENT_READ)

    def send(s: ssl.SSLSocket, k: int) -> None:
        s.setblocking(True)
        s.sendall(b"".join(b"PRIVMSG #bench :fan-out %d-%d-%d\r\n" % (rnd, k, i) for i in range(share)))

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(s, k), daemon=True) for k, s in enumerate(senders)]
    for t in threads:
        t.start()
    done = 0
    deadline = started + 600
    while done < len(receivers) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=5):
            s = key.fileobj
            assert isinstance(s, ssl.SSLSocket)
            while True:
                try:
                    data = s.recv(1 << 20)
                except (ssl.SSLWantReadError, BlockingIOError):
                    break
                if not data:
                    raise RuntimeError(f"{srv.name}: a receiver was disconnected")
                lines = (tails[s] + data).split(b"\n")
                tails[s] = lines.pop()
                counts[s] += sum(b"PRIVMSG #bench :fan-out" in ln for ln in lines)
                for ln in lines:
                    if ln.startswith(b"PING"):
                        s.setblocking(True)
                        s.sendall(b"PONG" + ln[4:].rstrip(b"\r") + b"\r\n")
                        s.setblocking(False)
            if counts[s] >= total:
                sel.unregister(s)
                done += 1
    elapsed = time.monotonic() - started
    sel.close()
    if done < len(receivers):
        raise RuntimeError(f"{srv.name}: {done}/{len(receivers)} receivers got everything in 600s")
    return elapsed


def ws_idle_rss(srv: GKServer) -> float:
    """KB of GK's RSS per idle IRC-over-WebSocket connection (plain HTTP listener, IDLE of them)."""
    import base64

    import websocket

    token = base64.b64encode(f"\0recv\0{PASSWORD}".encode()).decode()
    time.sleep(SETTLE)
    before = srv.rss()
    conns = []
    for k in range(IDLE):
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{srv.http_port}/chat/irc", timeout=120, subprotocols=["text.ircv3.net"]
        )
        for line in ("CAP REQ :sasl", f"NICK w{k}", "USER b 0 * :b", "AUTHENTICATE PLAIN", f"AUTHENTICATE {token}"):
            ws.send(line)
        ws.send("CAP END")
        while " 366 " not in ws.recv():
            pass
        conns.append(ws)
    time.sleep(SETTLE)
    after = srv.rss()
    for ws in conns:
        ws.close()
    return (after - before) / IDLE


def fanout(srv: Server, ctx: ssl.SSLContext) -> tuple[float, float]:
    """(messages/s reaching every receiver, seconds) for ROUNDS x MESSAGES lines from SENDERS
    clients (the sum of the rounds' times; the gaps between rounds not counted)."""
    receivers = connect_many(srv, ctx, [f"r{k}" for k in range(RECEIVERS)])
    senders = connect_many(srv, ctx, [f"s{k}" for k in range(SENDERS)])
    time.sleep(1)
    for s in receivers + senders:  # drop what login left (names, joins of the others)
        s.setblocking(False)
        try:
            while s.recv(1 << 20):
                pass
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
    share = MESSAGES // SENDERS
    total = share * SENDERS
    elapsed = 0.0
    for rnd in range(ROUNDS):  # rounds apart, so ngircd's flood penalty has decayed in each
        elapsed += _round(srv, receivers, senders, share, total, rnd)
        time.sleep(ROUND_GAP)
    for s in receivers + senders:
        s.close()
    return total * ROUNDS / elapsed, elapsed


def run(srv: Server, ctx: ssl.SSLContext) -> tuple[float, float, float]:
    try:
        per = idle_rss(srv, ctx)
        if isinstance(srv, GKServer):
            print(f"GK: {ws_idle_rss(srv):.1f} KB per idle IRC-over-WebSocket connection ({IDLE})", flush=True)
        rate, elapsed = fanout(srv, ctx)
        return per, rate, elapsed
    finally:
        srv.stop()


def main() -> int:
    if NGIRCD is None:
        print("ngircd is not installed (apt-get install ngircd): skipped")
        return 0
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    root = Path(tempfile.mkdtemp(prefix="gk-bench-chatfan-"))
    results = {}
    try:
        for cls in (GKServer, NgircdServer):
            srv = cls(root)
            results[srv.name] = run(srv, ctx)
            per, rate, elapsed = results[srv.name]
            print(
                f"{srv.name}: {per:.1f} KB per idle TLS connection ({IDLE});"
                f" fan-out {ROUNDS}x{MESSAGES} lines from {SENDERS} senders to {RECEIVERS} receivers in {elapsed:.2f}s:"
                f" {rate:.0f} msgs/s ({rate * RECEIVERS:.0f} deliveries/s)",
                flush=True,
            )
        gk, ng = results["GK"], results["ngircd"]
        print(f"GK/ngircd: RSS per idle connection {gk[0] / max(ng[0], 0.1):.2f}x, fan-out rate {gk[1] / ng[1]:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
