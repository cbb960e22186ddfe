"""IMAP: GK against Dovecot serving the same Maildir of realistic messages, in the same run.

Both servers get a copy of one generated Maildir (``MESSAGES`` messages: plain, HTML
alternatives, attachments, forwarded messages, non-ASCII headers; 1–200 KB) and the same
imaplib workload over implicit TLS:

- logins/s: ``LOGINS`` sequential connect + LOGIN + LOGOUT (both servers cache verified
  credentials: GK's verified-credential cache, Dovecot's ``auth_cache``);
- login+select, fetch all envelopes, fetch the header fields of every message as Thunderbird
  does (right after the envelopes, in the same session), the BODYSTRUCTURE of the newest 100 as
  a phone's first sync does, then of 100 older ones as the phone does when its user scrolls
  back (the median of ``BENCH_IMAP_REPEAT`` distinct ranges of 100; GK's background pass makes the newest 200 right after the ENVELOPEs, older ones only
  once the mailbox is idle, which it never is in this workload: both servers parse these in
  the FETCH), fetch 200 full bodies, 50 searches
  (incl. TEXT/BODY), 200 flag updates — each timed, then the GK/Dovecot time ratio (bodies and flag updates: the
  median of ``BENCH_IMAP_REPEAT`` runs, 5 by default, each in a session of its own);
- IDLE wake-up latency: one session IDLEs, another APPENDs; time until ``EXISTS`` (median of 5);
- memory per idle connection: 200 IDLE sessions open; the growth of GK's RSS vs the growth of
  the summed PSS of all Dovecot processes (Dovecot runs one ``imap`` process per session).

Dovecot is Debian's dovecot-imapd (``make bench`` installs it), configured by this bench in a
private directory on loopback ports (passwd-file with ``doveadm pw``'s default SHA512-CRYPT hash, Maildir, no
fsync tweaks). Needs root. Run: ``.venv/bin/python -m bench imap``.
"""

from __future__ import annotations

import email.utils
import imaplib
import os
import random
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tomli_w

from bench._ports import free_port, wait_port

REPO = Path(__file__).resolve().parents[1]
MESSAGES = int(os.environ.get("BENCH_IMAP_MESSAGES", "5000"))
LOGINS = 100
# "fetch 200 bodies" and "201 flag updates" take 0.1-0.3 s each: one run of either swung from
# 0.34x to 1.42x between runs on this shared 2-core machine (Dovecot's own time for the flags
# ranged 0.13-0.39 s). Each is run REPEAT times, every run in a session of its own (logged in
# and selected, one untimed command first, then the timed loop), and the median is the figure —
# the same for both servers. A session of its own per run: the runs together send >1,000
# commands in a few seconds, past GK's per-session command throttle (imap.max_commands_per_second,
# bursts of 2x), which a client's one session of 400 commands never reaches.
REPEAT = int(os.environ.get("BENCH_IMAP_REPEAT", "5"))
IDLE_SESSIONS = 200
USER = "bench@bench.example"
PASSWORD = "bench password 1234"
WORDS = (
    "meeting report budget invoice holiday garden server backup kernel photo family dinner train "
    "ticket concert project deadline review draft patch release weather football recipe"
).split()


# what Thunderbird sends for a folder's message list after its first SELECT: no ENVELOPE, but
# the size, the flags and these header fields of every message
THUNDERBIRD_FETCH = (
    "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority"
    " X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])"
)

_CLIENT_TLS: ssl.SSLContext | None = None


def tls() -> ssl.SSLContext:
    """One client context for the run (making one loads the CA store: ~100 ms, not the server's cost)."""
    global _CLIENT_TLS
    if _CLIENT_TLS is None:
        _CLIENT_TLS = ssl.create_default_context()
        _CLIENT_TLS.check_hostname = False
        _CLIENT_TLS.verify_mode = ssl.CERT_NONE
    return _CLIENT_TLS


# -- corpus ------------------------------------------------------------------------------------
def _text(rnd: random.Random, n: int) -> str:
    lines = []
    for _ in range(n):
        lines.append(" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(6, 12))))
    return "\r\n".join(lines) + "\r\n"


def make_message(rnd: random.Random, i: int) -> bytes:
    sender = rnd.choice(["Jörg Müller <joerg@example.de>", "Ann Lee <ann@example.com>", "noreply@shop.example"])
    subject = f"{rnd.choice(WORDS)} {rnd.choice(WORDS)} #{i}"
    if rnd.random() < 0.2:
        subject = "=?utf-8?q?Gr=C3=BC=C3=9Fe?= " + subject
    date = email.utils.formatdate(1_700_000_000 + i * 3600, localtime=False)
    head = (
        f"From: {email.utils.formataddr(email.utils.parseaddr(sender))}\r\nTo: Bench <{USER}>\r\n"
        f"Subject: {subject}\r\nDate: {date}\r\nMessage-ID: <{i}.{rnd.random()}@example.com>\r\nMIME-Version: 1.0\r\n"
    )
    kind = rnd.random()
    body_text = _text(rnd, rnd.randint(5, 60))
    if i == 4242 % max(MESSAGES, 1):
        body_text += "the unique marker xylophone appears here\r\n"
    if kind < 0.5:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body_text).encode()
    if kind < 0.8:
        html = "<html><body><p>" + body_text.replace("\r\n", "</p><p>") + "</p></body></html>\r\n"
        return (
            head + 'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n--alt\r\n'
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body_text + "--alt\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "--alt--\r\n"
        ).encode()
    import base64

    blob = base64.encodebytes(rnd.randbytes(rnd.choice([2_000, 20_000, 150_000]))).decode().replace("\n", "\r\n")
    return (
        head + 'Content-Type: multipart/mixed; boundary="mix"\r\n\r\n--mix\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body_text + "--mix\r\n"
        'Content-Type: application/pdf; name="doc.pdf"\r\nContent-Transfer-Encoding: base64\r\n'
        'Content-Disposition: attachment; filename="doc.pdf"\r\n\r\n' + blob + "--mix--\r\n"
    ).encode()


def make_maildir(path: Path) -> None:
    rnd = random.Random(42)
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    for i in range(MESSAGES):
        data = make_message(rnd, i)
        flags = "S" if rnd.random() < 0.7 else ""
        name = f"{1_700_000_000 + i}.M{i}P1.bench,S={len(data)}:2,{flags}"
        (path / "cur" / name).write_bytes(data)
        os.utime(path / "cur" / name, (1_700_000_000 + i * 3600,) * 2)


# -- servers -----------------------------------------------------------------------------------
class Server:
    name = ""
    port = 0

    def pids(self) -> list[int]:
        raise NotImplementedError

    def memory_kb(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        return total


class GK(Server):
    name = "GK"

    def __init__(self, root: Path, maildir: Path):
        self.data = root / "gk"
        self.port = free_port()
        cfg = {
            "server": {"bind": "127.0.0.1", "hostname": "bench.example"},
            "http": {"port": free_port(), "https_port": 0},
            "smtp": {"port": 0, "submission_port": 0, "submissions_port": 0},
            "chat": {"irc_port": 0},  # its default port may be another server's on this machine
            "imap": {
                "port": free_port(),
                "tls_port": self.port,
                "max_connections": 1000,
                "max_connections_per_ip": 1000,
            },
        }
        self.data.mkdir(parents=True)
        (self.data / "gk.toml").write_text(tomli_w.dumps(cfg))
        gk = [sys.executable, "-m", "gk"]
        subprocess.run(
            [*gk, "user", "add", USER, "--password-stdin", "--data-dir", str(self.data)],
            input=PASSWORD + "\n",
            text=True,
            check=True,
            capture_output=True,
        )
        target = self.data / "mail" / USER / "Maildir"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(maildir, target)
        self.log = open(root / "gk.log", "ab")
        self.start()

    def start(self) -> None:
        """Start ``gk serve`` and wait until it is ready as systemd learns it (``READY=1`` on
        ``NOTIFY_SOCKET``, sent once every feature has started): the IMAP port accepts
        connections before the features after it (web, DAV, chat…) are up, and a first open
        timed from then measured that start-up too (0.4-0.8 s of a 0.2 s first open here).
        Dovecot's port opens when it is ready."""
        gk = [sys.executable, "-m", "gk"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            path = self.data / "notify.sock"
            path.unlink(missing_ok=True)
            notify.bind(str(path))
            notify.settimeout(120)
            env = {**os.environ, "NOTIFY_SOCKET": str(path)}
            self.proc = subprocess.Popen(
                [*gk, "serve", "--data-dir", str(self.data)], stdout=self.log, stderr=self.log, env=env
            )
            while b"READY=1" not in notify.recv(4096):
                pass
        wait_port(self.port)

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Dovecot(Server):
    name = "Dovecot"

    def __init__(self, root: Path, maildir: Path):
        self.root = root / "dovecot"
        self.root.mkdir(parents=True)
        home = self.root / "home" / USER
        shutil.copytree(maildir, home / "Maildir")
        self.port = free_port()
        cert, key = self.root / "cert.pem", self.root / "key.pem"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key,
                "-out",
                cert,
                "-days",
                "2",
                "-subj",
                "/CN=bench.example",
            ],
            check=True,
            capture_output=True,
        )
        hashed = subprocess.run(
            ["doveadm", "pw", "-p", PASSWORD], check=True, capture_output=True, text=True
        ).stdout.strip()
        (self.root / "passwd").write_text(f"{USER}:{hashed}\n")
        conf = f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
first_valid_uid = 1
mail_location = maildir:{self.root}/home/%u/Maildir
auth_cache_size = 1M
auth_cache_ttl = 5 mins
auth_mechanisms = plain
disable_plaintext_auth = yes
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={self.root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
    ssl = yes
  }}
  process_limit = 1000
  client_limit = 1000
  service_count = 0
}}
service imap {{
  process_limit = 1000
}}
service auth {{
  client_limit = 2000
}}
service anvil {{
  client_limit = 2000
}}
protocol imap {{
  mail_max_userip_connections = 1000
}}
"""
        (self.root / "dovecot.conf").write_text(conf)
        os.chmod(self.root / "passwd", 0o644)
        subprocess.run(["chown", "-R", "dovecot:dovecot", str(self.root / "home")], check=True)  # Dovecot refuses uid 0
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["dovecot", "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def pids(self) -> list[int]:
        out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        children: dict[int, list[int]] = {}
        for line in out.splitlines():
            pid, ppid = (int(x) for x in line.split())
            children.setdefault(ppid, []).append(pid)
        todo, found = [self.proc.pid], []
        while todo:
            p = todo.pop()
            found.append(p)
            todo.extend(children.get(p, []))
        return found

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- workload ----------------------------------------------------------------------------------
def connect(srv: Server) -> imaplib.IMAP4_SSL:
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port, ssl_context=tls(), timeout=120)
    m.login(USER, PASSWORD)
    return m


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def repeated(srv: Server, fn: Callable[[imaplib.IMAP4_SSL], None], samples: dict[str, list[float]], key: str) -> float:
    """The median of ``REPEAT`` timed runs of ``fn``, each in a fresh selected session whose first
    command (a NOOP) is not timed; every run's time is kept in ``samples``."""
    runs = []
    for _ in range(REPEAT):
        s = connect(srv)
        s.select("INBOX")
        s.noop()
        t = time.perf_counter()
        fn(s)
        runs.append(time.perf_counter() - t)
        s.logout()
    samples[key] = runs
    return statistics.median(runs)


def workload(srv: Server, samples: dict[str, list[float]]) -> dict[str, float]:
    res: dict[str, float] = {}
    # warm-up: the first access builds each server's index. Timed apart from the login before
    # it: GK's first login is an argon2id check (~70 ms here, a security choice the logins
    # rows measure), Dovecot's test password a fast hash; both figures are printed.
    t0 = time.perf_counter()
    first = connect(srv)
    first_login = time.perf_counter() - t0
    res["first open (index build)"] = timed(lambda: first.select("INBOX"))
    # what a mail client does next (Thunderbird, mutt: the flags of every message): GK answers
    # the first SELECT from the folder's listing and writes the index rows after it, so a
    # command that follows waits for them; this row shows the first open with that wait in it
    flags_of_all = timed(lambda: first.uid("FETCH", "1:*", "(UID FLAGS)"))
    res["first open + UID FETCH FLAGS"] = res["first open (index build)"] + flags_of_all
    res["first login + first open"] = first_login + res["first open (index build)"]
    first.logout()

    def logins() -> None:
        for _ in range(LOGINS):
            m = connect(srv)
            m.logout()

    t = timed(logins)
    res["logins/s"] = LOGINS / t

    def login_select() -> None:
        for _ in range(20):
            m = connect(srv)
            m.select("INBOX")
            m.logout()

    res["login+select x20"] = timed(login_select)
    m = connect(srv)
    m.select("INBOX")
    res["fetch all envelopes"] = timed(lambda: m.uid("FETCH", "1:*", "(UID FLAGS ENVELOPE)"))
    # what Thunderbird fetches after its first SELECT of a folder (its message list): not the
    # ENVELOPE but a few header fields of every message
    res["fetch headers (Thunderbird)"] = timed(lambda: m.uid("FETCH", "1:*", THUNDERBIRD_FETCH))
    # a phone's first sync (K-9, iOS Mail): the MIME structure of the newest messages ...
    newest = f"{MESSAGES - 99}:{MESSAGES}"
    res["fetch 100 bodystructures (phone)"] = timed(lambda: m.fetch(newest, "(UID FLAGS BODYSTRUCTURE)"))
    # ... and of older ones, as the phone's user scrolls back: parsed by neither server yet (GK's
    # background pass makes them only while the mailbox is idle, which this workload never leaves
    # it). One FETCH of 100 takes a few ms, and one sample swung 1.4-3.6x between runs here: the
    # figure is the median of REPEAT ranges of 100 (2,401-2,500, then 2,301-2,400, ...), each
    # cold on both servers, fetched back to back in this session
    runs = []
    for i in range(REPEAT):
        top = MESSAGES // 2 - 100 * i
        runs.append(timed(lambda top=top: m.fetch(f"{top - 99}:{top}", "(UID FLAGS BODYSTRUCTURE)")))
    samples["fetch 100 older bodystructures"] = runs
    res["fetch 100 older bodystructures"] = statistics.median(runs)
    rnd = random.Random(7)
    nums = [rnd.randint(1, MESSAGES) for _ in range(200)]

    def bodies(s: imaplib.IMAP4_SSL) -> None:
        for n in nums:
            typ, data = s.fetch(str(n), "(BODY.PEEK[])")
            assert typ == "OK" and data[0] is not None

    res["fetch 200 bodies"] = repeated(srv, bodies, samples, "fetch 200 bodies")
    searches: list[tuple[str, ...]] = []
    for i in range(50):
        w = WORDS[i % len(WORDS)]
        searches.append(
            [
                ("FROM", "ann"),
                ("SUBJECT", w),
                ("TEXT", w),
                ("BODY", f'"{w} {WORDS[(i + 3) % len(WORDS)]}"'),
                ("UNSEEN",),
            ][i % 5]
        )
    searches[0] = ("TEXT", "xylophone")

    def search_all() -> None:
        for s in searches:
            typ, _ = m.search(None, *s)
            assert typ == "OK"

    res["50 searches"] = timed(search_all)

    def flags(s: imaplib.IMAP4_SSL) -> None:
        for n in nums:
            s.store(str(n), "+FLAGS.SILENT", "(\\Flagged)")
        s.store("1:*", "-FLAGS.SILENT", "(\\Flagged)")

    res["201 flag updates"] = repeated(srv, flags, samples, "201 flag updates")
    # IDLE wake-up
    lat = []
    for i in range(5):
        idler = connect(srv)
        idler.select("INBOX")
        tag = idler._new_tag()
        idler.send(tag + b" IDLE\r\n")
        assert idler.readline().startswith(b"+")
        appender = connect(srv)
        msg = b"Subject: idle %d\r\nFrom: a@example.com\r\n\r\nwake up\r\n" % i
        appender.append("INBOX", None, None, msg)
        t0 = time.perf_counter()
        while b"EXISTS" not in idler.readline():
            pass
        lat.append(time.perf_counter() - t0)
        idler.send(b"DONE\r\n")
        appender.logout()
        idler.sock.close()
    res["IDLE wake-up (s, median)"] = statistics.median(lat)
    m.logout()
    return res


def idle_memory(srv: Server) -> float:
    """KB per idle connection, measured on a freshly started server (no garbage from the workload)."""
    srv.stop()
    srv.start()
    warm = connect(srv)
    warm.select("INBOX")
    time.sleep(2.0)
    before = srv.memory_kb()
    conns = []
    for _ in range(IDLE_SESSIONS):
        c = connect(srv)
        c.select("INBOX")
        c.send(c._new_tag() + b" IDLE\r\n")
        c.readline()
        conns.append(c)
    time.sleep(2.0)
    after = srv.memory_kb()
    for c in [*conns, warm]:
        try:
            c.sock.close()
        except OSError:
            pass
    return (after - before) / IDLE_SESSIONS


TIMED = [
    "login+select x20",
    "fetch all envelopes",
    "fetch headers (Thunderbird)",
    "fetch 100 bodystructures (phone)",
    "fetch 100 older bodystructures",
    "fetch 200 bodies",
    "50 searches",
    "201 flag updates",
]


def background_window(root: Path, corpus: Path) -> tuple[float | None, float | None]:
    """GK alone: after the first SELECT of the copied-in Maildir, with no client left, the seconds
    until its background pass has made every message's BODYSTRUCTURE wire form (from then on no
    FETCH of a BODYSTRUCTURE reads a file: the "older bodystructures" row is then answered as the
    "phone" row is) and until every message is fully parsed. The workload above never leaves the
    mailbox idle, so its cold rows measure this window. Read from the user's index beside the
    server (SQLite in WAL mode: a reader does not block it); None if not reached in 5 minutes."""
    srv = GK(root / "window", corpus)
    try:
        m = connect(srv)
        t0 = time.perf_counter()
        m.select("INBOX")
        m.logout()
        index = srv.data / "mail" / USER / "index.sqlite3"
        db = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
        wired: float | None = None
        parsed: float | None = None
        while parsed is None and time.perf_counter() - t0 < 300:
            rows, nowire, unparsed = db.execute(
                "SELECT count(*), count(*) FILTER (WHERE bswire IS NULL), count(*) FILTER (WHERE structure IS NULL)"
                " FROM messages"
            ).fetchone()
            now = time.perf_counter() - t0
            if rows < MESSAGES:  # the first build's rows are written after the SELECT's answer
                time.sleep(0.05)
                continue
            if wired is None and nowire == 0:
                wired = now
            if unparsed == 0:
                parsed = now
            time.sleep(0.05)
        db.close()
        return wired, parsed
    finally:
        srv.stop()


def main() -> int:
    if os.geteuid() != 0 or not shutil.which("dovecot"):
        print("bench.imap needs root and Debian's dovecot-imapd (make bench installs it)")
        return 1
    root = Path(tempfile.mkdtemp(prefix="gk-bench-imap-"))
    os.chmod(root, 0o755)  # Dovecot's auth process (user dovecot) reads the passwd file inside
    try:
        corpus = root / "corpus"
        t = time.perf_counter()
        make_maildir(corpus)
        size = sum(p.stat().st_size for p in (corpus / "cur").iterdir())
        print(f"corpus: {MESSAGES} messages, {size / 1e6:.1f} MB, made in {time.perf_counter() - t:.1f}s")
        results = {}
        samples: dict[str, dict[str, list[float]]] = {}
        for cls in (Dovecot, GK):
            srv = cls(root, corpus)
            try:
                samples[cls.name] = {}
                results[cls.name] = workload(srv, samples[cls.name])
                results[cls.name]["KB per idle connection"] = idle_memory(srv)
            finally:
                srv.stop()
        gk, dc = results["GK"], results["Dovecot"]
        print(f"{'operation':30} {'GK':>10} {'Dovecot':>10} {'GK/Dovecot':>11}")
        for key in gk:
            ratio = gk[key] / dc[key] if dc[key] else float("nan")
            print(f"{key:30} {gk[key]:10.3f} {dc[key]:10.3f} {ratio:11.2f}")
        for key in samples["GK"]:
            shown = {name: " ".join(f"{t:.3f}" for t in samples[name][key]) for name in ("GK", "Dovecot")}
            print(f"  {key}: median of {REPEAT} runs; GK {shown['GK']} | Dovecot {shown['Dovecot']}")
        total_gk = sum(gk[k] for k in TIMED)
        total_dc = sum(dc[k] for k in TIMED)
        print(f"{'total timed workload (s)':30} {total_gk:10.3f} {total_dc:10.3f} {total_gk / total_dc:11.2f}")
        print(
            f"targets: total ratio <= 2.0: {'ok' if total_gk / total_dc <= 2.0 else 'MISSED'}; "
            f"IDLE wake-up <= 1 s: {'ok' if gk['IDLE wake-up (s, median)'] <= 1 else 'MISSED'}; "
            f"<= 150 KB per idle connection: {'ok' if gk['KB per idle connection'] <= 150 else 'MISSED'}; "
            f">= 50 logins/s: {'ok' if gk['logins/s'] >= 50 else 'MISSED'}"
        )
        (root / "window").mkdir()
        wired, parsed = background_window(root / "window", corpus)
        shown = [f"{t:.1f} s" if t is not None else "not within 300 s" for t in (wired, parsed)]
        print(
            f"GK after the first open, no client: every BODYSTRUCTURE made in {shown[0]}, every message"
            f" parsed in {shown[1]} (its background pass; Dovecot parses on demand)"
        )
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
