"""Chat under a team's load against ngircd (Debian's ``ngircd``, BENCH_DEBS), both in the same run:
``BENCH_CHAT_CLIENTS`` clients (200) in ``BENCH_CHAT_ROOMS`` rooms (10), for GK half of them IRC
over TLS and half IRC-over-WebSocket (``/chat/irc``; ngircd has no WebSocket: all TLS there).

Measured for each server: RSS per idle logged-in connection; fan-out latency (p50/p99, from a
line's send to its arrival at each other member of its room) at a steady ``BENCH_CHAT_PACE``
lines/s per client (1) for ``BENCH_CHAT_SECONDS`` (10); then messages per second in bursts
(every client sends ``BENCH_CHAT_BURST`` lines at once, ``BENCH_CHAT_ROUNDS`` rounds 3 s apart),
counted when every member has every line, with the bursts' own latency percentiles. For GK the
run ends by counting the messages in ``chat.sqlite3``: persisted = every line sent, once.

Not the same work: GK persists every message in SQLite (group commit, synchronous=FULL), tags
it (msgid, time) and logs nobody in without SASL; ngircd keeps nothing. GK hands a line to the
room's other members while its commit is in flight and echoes it to its sender (echo-message,
which GK's clients ask for and ngircd lacks) once it is on disk: that acknowledgement's latency
is printed apart ("acknowledged"), and the fan-out figures never include the echoes.
ngircd penalises a client past a few lines (measured here: ~3 lines/s per sender, not
configurable in 26.1), so a burst is two lines per client and rounds are 3 s apart. ngircd's
logins are made 50 at a time (it takes ~1 s per login). GK's 20 clients of a room are devices
of one account (the room's): each line still goes to the 19 other connections (multiclient).
Skipped (exit 0) when ngircd is not installed. Run: ``.venv/bin/python -m bench chat``.
Profiling knobs: ``BENCH_CHAT_PYSPY=/path/to/py-spy`` records GK during each measured phase
(``BENCH_CHAT_PYSPY_ARGS=--gil`` for CPU only), ``BENCH_CHAT_DUMP=prefix`` writes every paced
delivery (send and receive times, CLOCK_MONOTONIC ns, and the client) to ``prefix-<server>.txt``.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._ports import free_port
from bench.chat_rss import GK_CMD, SETTLE, rss_kb

CLIENTS = int(os.environ.get("BENCH_CHAT_CLIENTS", "200"))
ROOMS = int(os.environ.get("BENCH_CHAT_ROOMS", "10"))
PACE = float(os.environ.get("BENCH_CHAT_PACE", "1"))  # lines/s per client in the latency phase
SECONDS = float(os.environ.get("BENCH_CHAT_SECONDS", "10"))
BURST = int(os.environ.get("BENCH_CHAT_BURST", "2"))
IDLE = int(os.environ.get("BENCH_CHAT_IDLE", "200"))
ROUNDS = int(os.environ.get("BENCH_CHAT_ROUNDS", "5"))
ROUND_GAP = 3.0  # seconds between rounds
PASSWORD = "bench password 1234"
# a py-spy binary: GK's server is profiled during the paced phase and the bursts (raw
# flamegraph stacks in BENCH_CHAT_PYSPY_OUT, default /tmp/gk-bench-chat-<phase>.txt)
PYSPY = os.environ.get("BENCH_CHAT_PYSPY", "")
DUMP = os.environ.get("BENCH_CHAT_DUMP", "")  # a path: every paced delivery (sent, received ns, client)
NGIRCD = shutil.which("ngircd") or ("/usr/sbin/ngircd" if Path("/usr/sbin/ngircd").exists() else None)


class Server:
    name = ""
    port = 0
    parallel_logins = 1  # GK's login throttle counts concurrent attempts from one address
    proc: subprocess.Popen[bytes]

    def login(self, nick: str, room: int) -> bytes:
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
        for user in ["idle", *(f"u{r}" for r in range(ROOMS))]:
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

    def lines(self, nick: str, room: int) -> list[str]:
        import base64

        user = "idle" if room < 0 else f"u{room}"  # a room's clients: devices of one account
        token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
        # echo-message: the sender's own copy is its acknowledgement (sent once the line is on
        # disk), timed apart from the fan-out to the others
        return [
            "CAP REQ :sasl echo-message",
            f"NICK {nick}",
            "USER b 0 * :b",
            "AUTHENTICATE PLAIN",
            f"AUTHENTICATE {token}",
        ] + [
            "CAP END",
            f"JOIN {channel(room)}",
        ]

    def login(self, nick: str, room: int) -> bytes:
        return "".join(ln + "\r\n" for ln in self.lines(nick, room)).encode()

    def persisted(self) -> int:
        """Messages stored in the bench's rooms (read after the server stopped)."""
        import sqlite3

        db = sqlite3.connect(self.data / "chat.sqlite3")
        try:
            return int(db.execute("SELECT count(*) FROM messages WHERE target LIKE '#r%'").fetchone()[0])
        finally:
            db.close()


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

    def login(self, nick: str, room: int) -> bytes:
        return f"NICK {nick}\r\nUSER b 0 * :b\r\nJOIN {channel(room)}\r\n".encode()


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


def channel(room: int) -> str:
    return "#idle" if room < 0 else f"#r{room}"


def _joined(room: int) -> re.Pattern[bytes]:
    # the end of the room's NAMES (GK replays the default room's before it)
    return re.compile(rb" 366 \S+ " + channel(room).encode() + rb" ")


def connect(srv: Server, ctx: ssl.SSLContext, nick: str, room: int = -1) -> ssl.SSLSocket:
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=120))
    s.sendall(srv.login(nick, room))
    buf = b""
    done = _joined(room)
    while not done.search(buf):
        data = s.recv(65536)
        if not data:
            raise RuntimeError(f"{srv.name}: closed during login: " + buf.decode(errors="replace")[-500:])
        buf += data
        if b"ERROR " in buf and not done.search(buf):
            raise RuntimeError(f"{srv.name}: " + buf.decode(errors="replace")[-500:])
    return s


def ws_connect(srv: GKServer, nick: str, room: int = -1) -> Any:
    """A registered IRC-over-WebSocket client (plain HTTP listener), joined to ``#r<room>``."""
    import websocket

    ws = websocket.create_connection(
        f"ws://127.0.0.1:{srv.http_port}/chat/irc", timeout=120, subprotocols=["text.ircv3.net"]
    )
    for line in srv.lines(nick, room):
        ws.send(line)
    done = _joined(room)
    while not done.search(ws.recv().encode() + b" "):
        pass
    return ws


def connect_many(srv: Server, ctx: ssl.SSLContext, nicks: list[str], rooms: list[int] | None = None) -> list[Any]:
    """Log ``nicks`` in (TLS, or WebSocket for GK's odd-numbered clients when ``rooms`` is given)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(k: int) -> Any:
        room = rooms[k] if rooms else -1
        if rooms and isinstance(srv, GKServer) and k % 2:
            return ws_connect(srv, nicks[k], room)
        return connect(srv, ctx, nicks[k], room)

    with ThreadPoolExecutor(srv.parallel_logins) as pool:
        return list(pool.map(one, range(len(nicks))))


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


def ws_idle_rss(srv: GKServer) -> float:
    """KB of GK's RSS per idle IRC-over-WebSocket connection (plain HTTP listener, IDLE of them)."""
    time.sleep(SETTLE)
    before = srv.rss()
    conns = [ws_connect(srv, f"w{k}") for k in range(IDLE)]
    time.sleep(SETTLE)
    after = srv.rss()
    for ws in conns:
        ws.close()
    return (after - before) / IDLE


class Room:
    """The clients of a bench: sockets (TLS or WebSocket), each in one room; one thread sends
    and reads (no socket is used by two threads), latencies kept per delivery."""

    LINE = re.compile(rb"PRIVMSG #r\d+ :b (\d+) (\d+) \d+ (\d+)")

    def __init__(self, srv: Server, clients: list[Any], rooms: list[int]):
        self.srv = srv
        self.clients = clients
        self.rooms = rooms
        self.size = [rooms.count(r) for r in range(ROOMS)]
        self.sel = selectors.DefaultSelector()
        self.tails: dict[int, bytes] = {}
        self.frames: dict[int, bytes] = {}  # WebSocket bytes read but not yet a whole frame
        for k, c in enumerate(clients):
            sock = c.sock if not isinstance(c, ssl.SSLSocket) else c
            if isinstance(c, ssl.SSLSocket):
                c.setblocking(False)
            self.sel.register(sock, selectors.EVENT_READ, k)
            self.tails[k] = b""
            self.frames[k] = b""
        self.echo = isinstance(srv, GKServer)  # GK's clients asked for echo-message
        self.got = 0
        self.latencies: list[float] = []
        self.acks: list[float] = []  # send to the sender's echo (GK: the line is on disk)
        self.burst_acks: list[float] = []
        self.trace: list[tuple[int, int, int]] = []  # (sent ns, received ns, client) with DUMP
        self.drain(1.0)

    def send(self, k: int, phase: int, n: int = 1) -> int:
        """Client ``k`` sends ``n`` lines now; returns the deliveries expected."""
        t = time.monotonic_ns()
        lines = [b"PRIVMSG #r%d :b %d %d %d %d" % (self.rooms[k], phase, t, i, k) for i in range(n)]
        c = self.clients[k]
        if isinstance(c, ssl.SSLSocket):
            data = b"".join(ln + b"\r\n" for ln in lines)
            while data:
                try:
                    sent = c.send(data)
                    data = data[sent:]
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    self.read(0.01)
        else:
            for ln in lines:
                c.send(ln.decode())
        return n * (self.size[self.rooms[k]] - 1 + self.echo)

    def read(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout=timeout):
            k = key.data
            c = self.clients[k]
            chunks: list[bytes] = []
            if isinstance(c, ssl.SSLSocket):
                while True:
                    try:
                        data = c.recv(1 << 20)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        break
                    if not data:
                        raise RuntimeError(f"{self.srv.name}: client {k} was disconnected")
                    chunks.append(data)
            else:
                chunks.extend(self.ws_lines(k, c))
            now = time.monotonic_ns()
            lines = (self.tails[k] + b"".join(chunks)).split(b"\n")
            self.tails[k] = lines.pop()
            for ln in lines:
                m = self.LINE.search(ln)
                if m:
                    self.got += 1
                    if int(m.group(3)) == k:
                        self.acks.append((now - int(m.group(2))) / 1e6)
                        continue
                    self.latencies.append((now - int(m.group(2))) / 1e6)
                    if DUMP:
                        self.trace.append((int(m.group(2)), now, k))
                elif ln.startswith(b"PING"):
                    pong = b"PONG" + ln[4:].rstrip(b"\r")
                    if isinstance(c, ssl.SSLSocket):
                        c.setblocking(True)
                        c.sendall(pong + b"\r\n")
                        c.setblocking(False)
                    else:
                        c.send(pong.decode())

    def ws_lines(self, k: int, c: Any) -> list[bytes]:
        """Every whole WebSocket message the socket has (server frames are unmasked; RFC 6455
        5.2), one line each. Parsed here from one non-blocking read rather than one
        websocket-client ``recv`` (three syscalls and a Python frame parser) per line: that
        made the bench client, not the server, the bottleneck on GK's WebSocket half."""
        buf = self.frames[k]
        while True:
            try:
                data = c.sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                raise RuntimeError(f"{self.srv.name}: client {k} was disconnected")
            buf += data
            if len(data) < 1 << 20:
                break
        out: list[bytes] = []
        while len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126:
                n, off = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                n, off = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < off + n:
                break
            opcode, payload, buf = buf[0] & 0x0F, buf[off : off + n], buf[off + n :]
            if opcode == 0x8:
                raise RuntimeError(f"{self.srv.name}: client {k} got a close frame")
            if opcode == 0x9:
                c.pong(payload)
            elif opcode in (0x0, 0x1, 0x2):
                out.append(payload + b"\n")
        self.frames[k] = buf
        return out

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.read(0.05)
        self.got, self.latencies, self.acks = 0, [], []

    def wait(self, expected: int, timeout: float = 600) -> float:
        """Read until ``expected`` deliveries arrived; the seconds it took."""
        started = time.monotonic()
        while self.got < expected:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{self.srv.name}: {self.got}/{expected} deliveries in {timeout:.0f}s")
            self.read(1.0)
        return time.monotonic() - started

    def paced(self) -> tuple[int, list[float]]:
        """Every client sends PACE lines/s for SECONDS (spread evenly); (lines, latencies ms)."""
        self.got, self.latencies, self.acks = 0, [], []
        n = len(self.clients)
        gap = 1.0 / (PACE * n)
        total = int(SECONDS * PACE * n)
        expected = 0
        start = time.monotonic()
        for i in range(total):
            due = start + i * gap
            while (wait := due - time.monotonic()) > 0:
                self.read(wait)
            expected += self.send(i % n, 1)
        self.wait(expected)
        return total, self.latencies

    def bursts(self) -> tuple[float, float, list[float]]:
        """ROUNDS rounds: every client sends BURST lines at once; (lines/s, seconds, latencies)."""
        elapsed, lats, self.burst_acks = 0.0, [], []
        for _rnd in range(ROUNDS):  # rounds apart, so ngircd's flood penalty has decayed in each
            self.got, self.latencies, self.acks = 0, [], []
            started = time.monotonic()
            expected = sum(self.send(k, 2, BURST) for k in range(len(self.clients)))
            self.wait(expected)
            elapsed += time.monotonic() - started
            lats += self.latencies
            self.burst_acks += self.acks
            self.drain(ROUND_GAP)
        return len(self.clients) * BURST * ROUNDS / elapsed, elapsed, lats

    def close(self) -> None:
        self.sel.close()
        for c in self.clients:
            c.close()


def cpu_s(pid: int, kernel: bool = False) -> float:
    """CPU seconds (user + system, or system only) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[12]) + (0 if kernel else int(fields[11]))) / os.sysconf("SC_CLK_TCK")


class Spy:
    """py-spy recording a process while a phase runs (BENCH_CHAT_PYSPY); a no-op without it."""

    def __init__(self, srv: Server, phase: str):
        self.proc: subprocess.Popen[bytes] | None = None
        if PYSPY and isinstance(srv, GKServer):
            out = os.environ.get("BENCH_CHAT_PYSPY_OUT", "/tmp/gk-bench-chat") + f"-{phase}.txt"
            cmd = [PYSPY, "record", "--pid", str(srv.proc.pid), "-r", "250", "-f", "raw", "-o", out, "--nonblocking"]
            cmd += os.environ.get("BENCH_CHAT_PYSPY_ARGS", "").split()  # e.g. --gil: CPU, not waits
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # attached before the phase starts

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)
            self.proc.wait(60)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def run(srv: Server, ctx: ssl.SSLContext) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        base = srv.rss()
        out["idle_kb"] = idle_rss(srv, ctx)
        if isinstance(srv, GKServer):
            out["ws_idle_kb"] = ws_idle_rss(srv)
        rooms = [k % ROOMS for k in range(CLIENTS)]
        time.sleep(SETTLE)
        before = srv.rss()
        room = Room(srv, connect_many(srv, ctx, [f"c{k}" for k in range(CLIENTS)], rooms), rooms)
        time.sleep(SETTLE)
        out["rss_base_mb"] = base / 1024
        out["mixed_kb"] = (srv.rss() - before) / CLIENTS
        spy = Spy(srv, "paced")
        cpu, mine, ksys = cpu_s(srv.proc.pid), time.process_time(), cpu_s(srv.proc.pid, True)
        room.trace = []
        sent, lats = room.paced()
        out["paced_cpu"], out["paced_client_cpu"] = cpu_s(srv.proc.pid) - cpu, time.process_time() - mine
        out["paced_sys"] = cpu_s(srv.proc.pid, True) - ksys
        out["paced_ack_p50"], out["paced_ack_p99"] = pct(room.acks, 50), pct(room.acks, 99)
        if DUMP:
            Path(f"{DUMP}-{srv.name}.txt").write_text("".join(f"{a} {b} {k}\n" for a, b, k in room.trace))
        spy.stop()
        out["paced_lines"] = sent
        out["paced_p50"], out["paced_p99"] = pct(lats, 50), pct(lats, 99)
        spy = Spy(srv, "bursts")
        cpu, mine, ksys = cpu_s(srv.proc.pid), time.process_time(), cpu_s(srv.proc.pid, True)
        rate, elapsed, blats = room.bursts()
        out["burst_cpu"], out["burst_client_cpu"] = cpu_s(srv.proc.pid) - cpu, time.process_time() - mine
        out["burst_sys"] = cpu_s(srv.proc.pid, True) - ksys
        out["burst_ack_p50"], out["burst_ack_p99"] = pct(room.burst_acks, 50), pct(room.burst_acks, 99)
        spy.stop()
        out["burst_rate"], out["burst_s"] = rate, elapsed
        out["burst_p50"], out["burst_p99"] = pct(blats, 50), pct(blats, 99)
        out["sent"] = sent + CLIENTS * BURST * ROUNDS
        room.close()
        return out
    finally:
        srv.stop()
        if isinstance(srv, GKServer):
            out["persisted"] = srv.persisted()


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
            r = results[srv.name] = run(srv, ctx)
            mix = "half TLS, half WebSocket" if srv.name == "GK" else "all TLS"
            print(
                f"{srv.name}: RSS {r['rss_base_mb']:.1f} MB at start; {r['idle_kb']:.1f} KB per idle TLS connection ({IDLE})"
            )
            if "ws_idle_kb" in r:
                print(f"{srv.name}: {r['ws_idle_kb']:.1f} KB per idle IRC-over-WebSocket connection ({IDLE})")
            print(
                f"{srv.name}: {CLIENTS} clients ({mix}) in {ROOMS} rooms: {r['mixed_kb']:.1f} KB per connection;"
                f" paced {PACE:g} line/s each for {SECONDS:g}s ({r['paced_lines']:.0f} lines): fan-out"
                f" p50 {r['paced_p50']:.1f} ms p99 {r['paced_p99']:.1f} ms (CPU: server {r['paced_cpu']:.1f}s,"
                f" {r['paced_sys']:.1f}s of it system, bench client {r['paced_client_cpu']:.1f}s)"
            )
            print(
                f"{srv.name}: bursts of {BURST} lines from every client x{ROUNDS}: {r['burst_rate']:.0f} msgs/s"
                f" ({r['burst_s']:.2f}s), fan-out p50 {r['burst_p50']:.1f} ms p99 {r['burst_p99']:.1f} ms"
                f" (CPU: server {r['burst_cpu']:.1f}s, {r['burst_sys']:.1f}s of it system,"
                f" bench client {r['burst_client_cpu']:.1f}s)",
                flush=True,
            )
            if srv.name == "GK":
                print(
                    f"GK: acknowledged (echo-message, once on disk): paced p50 {r['paced_ack_p50']:.1f} ms"
                    f" p99 {r['paced_ack_p99']:.1f} ms; bursts p50 {r['burst_ack_p50']:.1f} ms"
                    f" p99 {r['burst_ack_p99']:.1f} ms",
                    flush=True,
                )
            if "persisted" in r:
                print(f"{srv.name}: persisted {r['persisted']:.0f} of {r['sent']:.0f} lines sent (chat.sqlite3)")
        gk, ng = results["GK"], results["ngircd"]
        print(
            f"GK/ngircd: RSS per idle connection {gk['idle_kb'] / max(ng['idle_kb'], 0.1):.2f}x,"
            f" burst rate {gk['burst_rate'] / ng['burst_rate']:.2f}x,"
            f" paced p99 {gk['paced_p99'] / max(ng['paced_p99'], 0.01):.2f}x"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
