"""CalDAV: GK (Radicale embedded, SQLite storage) against standalone Radicale with its own file
storage (``multifilesystem``), same Radicale version, same workload, in the same run.

Workload (plain HTTP on loopback for both, one persistent client connection, Basic auth):

- import ``EVENTS`` events one PUT each, spread over 2026 (mean ms per PUT over the whole import,
  and over the last 100 PUTs, where the file backend's O(n) per write shows);
- ``INVITES`` PUTs of an event inviting another user of the box (median): GK schedules it inside
  the request (RFC 6638: the attendee's copy and scheduling-inbox item committed before the
  201), Radicale has no scheduling and stores the same PUT as it is — the row is what local
  scheduling adds to what a client waits for;
- initial ``sync-collection`` (no token) and delta ``sync-collection`` after one update and one
  delete (median of 5);
- one-week ``calendar-query`` (median of 5) and ``PROPFIND`` depth 1 with getetag (median of 3);
- the hub lag of ``gk serve`` over each run (``GK_HUB_LAG_FILE``, ``gk.hublag``: p99 and max
  of how late a 5 ms timer fires): Radicale runs in a pool thread, so the largest REPORT and
  PROPFIND should show there only as the GIL handovers; the same timer in a bare gevent
  process beside the run is printed as the machine's own floor (a loaded machine's scheduler
  alone delays a timer by tens of ms);
- the RSS of ``gk serve`` (from /proc) before any DAV request, after the first one (the cost of
  enabling DAV: Radicale is imported on first use) and after the import.

Prints each time for both and the ratio Radicale/GK. Then the same workload at
``BENCH_DAV_LARGE`` events (default 10000; 0 skips it) on GK alone, in a fresh ``gk serve``: the
file backend's O(n) per PUT makes that import take hours (O(n^2) in all), so it is left out and
said so. Run: ``.venv/bin/python -m bench dav``; ``BENCH_DAV_EVENTS`` (default 2000) sets the
compared size.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tomli_w

from bench._floor import Floor
from bench._ports import free_port, wait_port
from bench.hub_lag import SERVER_OVERRIDES

REPO = Path(__file__).resolve().parents[1]
EVENTS = int(os.environ.get("BENCH_DAV_EVENTS", "2000"))
LARGE = int(os.environ.get("BENCH_DAV_LARGE", "10000"))
USER = "bench@bench.example"
PASSWORD = "bench password 1234"
FRIEND = "friend@bench.example"  # a second user of the box: the attendee of the invitation rows
INVITES = 20

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GK//bench//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:{summary}\r\n"
    "DESCRIPTION:bench event {uid} with a line of text that looks like a real description\r\n"
    "LOCATION:Room {room}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
SYNC = (
    '<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
    "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
)
WEEK = (
    '<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    '<D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
    '<C:comp-filter name="VEVENT"><C:time-range start="20260608T000000Z" end="20260615T000000Z"/>'
    "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
)
ALL_DATA = (
    '<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    '<D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
)
PROPFIND = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'


def event(i: int, summary: str = "", total: int = EVENTS, uid: str = "") -> str:
    day = i * 365 // max(total, 1)
    t = time.gmtime(1767225600 + day * 86400 + (i % 9 + 8) * 3600)
    start = time.strftime("%Y%m%dT%H%M%SZ", t)
    end = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.mktime(t) - time.timezone + 3600))
    return EVENT.format(uid=uid or f"ev{i}", start=start, end=end, summary=summary or f"meeting {i}", room=i % 40)


def invitation(i: int) -> str:
    """Event ``i`` organized by ``USER`` with ``FRIEND`` invited, as Thunderbird or Apple Calendar
    PUT it: GK schedules it (RFC 6638) inside the request, writing FRIEND's copy and scheduling-
    inbox item before the 201, then mails the iTIP REQUEST; Radicale has no scheduling and
    stores it as it is (the same PUT, its plain cost)."""
    people = (
        f"ORGANIZER;CN=Bench:mailto:{USER}\r\nATTENDEE;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:{USER}\r\n"
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{FRIEND}\r\nEND:VEVENT"
    )
    return event(i, f"invitation {i}", uid=f"inv{i}").replace("END:VEVENT", people, 1)


class Client:
    def __init__(self, port: int, user: str = USER):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.auth = "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()

    def __call__(self, method: str, path: str, body: str = "", **headers: str) -> tuple[int, dict[str, str], str]:
        hdrs = {"Authorization": self.auth, **{k.replace("_", "-"): v for k, v in headers.items()}}
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body.encode() if body else None, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read().decode("utf-8", "replace")
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def token_of(body: str) -> str:
    start = body.index("sync-token>") + len("sync-token>")
    return body[start : body.index("<", start)]


def workload(c: Client, cal: str, n: int = EVENTS) -> dict[str, float]:
    out: dict[str, float] = {}
    put_ms = []
    for i in range(n):
        ms = timed(lambda i=i: _ok(c("PUT", f"{cal}ev{i}.ics", event(i, total=n), Content_Type="text/calendar"), 201))
        put_ms.append(ms)
    out["PUT mean (whole import)"] = statistics.mean(put_ms)
    out["PUT mean (last 100)"] = statistics.mean(put_ms[-100:])
    out["PUT inviting a local user"] = statistics.median(
        timed(lambda i=i: _ok(c("PUT", f"{cal}inv{i}.ics", invitation(i), Content_Type="text/calendar"), 201))
        for i in range(INVITES)
    )
    body = ""

    def initial() -> None:
        # all of it: GK answers in pages of dav.sync_page_size (RFC 6578 §3.6), followed here as
        # DAVx5 does, from each page's token until one comes without the 507
        nonlocal body
        _, _, body = _ok(c("REPORT", cal, SYNC.format(token=""), Depth="1"), 207)
        while "507 Insufficient Storage" in body:
            _, _, body = _ok(c("REPORT", cal, SYNC.format(token=token_of(body)), Depth="1"), 207)

    out["sync-collection initial"] = timed(initial)
    deltas = []
    for k in range(5):
        token = token_of(body)
        _ok(c("PUT", f"{cal}ev{k}.ics", event(k, f"changed {k}", n), Content_Type="text/calendar"), 204)
        _ok(c("DELETE", f"{cal}ev{n - 1 - k}.ics"), 200, 204)

        def delta(token: str = token) -> None:
            nonlocal body
            _, _, body = _ok(c("REPORT", cal, SYNC.format(token=token), Depth="1"), 207)

        deltas.append(timed(delta))
        assert body.count("<href>") <= 4, body[:2000]
    out["sync-collection delta"] = statistics.median(deltas)
    out["calendar-query one week"] = statistics.median(
        timed(lambda: _ok(c("REPORT", cal, WEEK, Depth="1"), 207)) for _ in range(5)
    )
    out["PROPFIND depth 1"] = statistics.median(
        timed(lambda: _ok(c("PROPFIND", cal, PROPFIND, Depth="1"), 207)) for _ in range(3)
    )
    return out


def _ok(resp: tuple[int, dict[str, str], str], *codes: int) -> tuple[int, dict[str, str], str]:
    if resp[0] not in codes:
        raise RuntimeError(f"unexpected status {resp[0]}: {resp[2][:500]}")
    return resp


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_gk(tmp: Path, name: str = "gk", dav: bool = True) -> tuple[subprocess.Popen, int, Path]:
    data = tmp / name
    data.mkdir()
    port = free_port()
    cfg = {
        "server": {"bind": "127.0.0.1", "hostname": "bench.example", **SERVER_OVERRIDES},
        "http": {"port": port, "https_port": 0},
        "smtp": {"port": 0, "submission_port": 0, "submissions_port": 0},
        "imap": {"port": 0, "tls_port": 0},
        "chat": {"irc_port": 0},  # its default port may be another server's on this machine
        "dav": {"enabled": dav},
    }
    (data / "gk.toml").write_text(tomli_w.dumps(cfg))
    gk = [sys.executable, "-m", "gk"]
    for user in (USER, FRIEND):
        subprocess.run(
            [*gk, "user", "add", user, "--password-stdin", "--data-dir", str(data)],
            input=PASSWORD + "\n",
            text=True,
            check=True,
            capture_output=True,
        )
    sys.path.insert(0, str(REPO / "appliance"))
    from gk import claim

    claim.claim(data, "bench")
    claim.complete(data)
    log = open(data / "serve.log", "ab")
    env = dict(os.environ, GK_HUB_LAG_FILE=str(tmp / f"hublag-{name}.json"))
    proc = subprocess.Popen([*gk, "serve", "--data-dir", str(data)], stdout=log, stderr=log, env=env)
    wait_port(port)
    return proc, port, data


def start_radicale(tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    users = tmp / "htpasswd"
    users.write_text(f"{USER}:{PASSWORD}\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radicale",
            "--config",
            "",
            "--server-hosts",
            f"127.0.0.1:{port}",
            "--storage-filesystem-folder",
            str(tmp / "radicale"),
            "--auth-type",
            "htpasswd",
            "--auth-htpasswd-filename",
            str(users),
            "--auth-htpasswd-encryption",
            "plain",
            "--logging-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, port


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gk-bench-dav-") as d:
        tmp = Path(d)
        # the peer of "enabling DAV": the same gk serve with [dav] enabled = false
        off_proc, off_port, _ = start_gk(tmp, "gk-nodav", dav=False)
        try:
            _ok(Client(off_port)("GET", "/login"), 200)
            time.sleep(1.0)
            rss_off = rss_kib(off_proc.pid)
        finally:
            off_proc.terminate()
            off_proc.wait(timeout=30)
        gk_proc, gk_port, _ = start_gk(tmp)
        rad_proc, rad_port = start_radicale(tmp)
        try:
            gk = Client(gk_port)
            _ok(gk("GET", "/login"), 200)
            time.sleep(1.0)
            rss_idle = rss_kib(gk_proc.pid)
            cal = f"/dav/{USER}/calendar/"
            _ok(gk("PROPFIND", f"/dav/{USER}/", PROPFIND, Depth="1"), 207)
            time.sleep(1.0)
            rss_dav = rss_kib(gk_proc.pid)
            print(f"events: {EVENTS}", flush=True)
            t = time.monotonic()
            with Floor(tmp / "floor.json") as floor_run:  # its exit also lets the lag file be rewritten
                gk_results = workload(gk, cal)
                print(f"GK done in {time.monotonic() - t:.0f}s", flush=True)
                rss_after = rss_kib(gk_proc.pid)
            floor = floor_run.result
            # the invitation rows measured scheduling, not a PUT that skipped it
            _, _, mine = _ok(Client(gk_port, FRIEND)("REPORT", f"/dav/{FRIEND}/calendar/", ALL_DATA, Depth="1"), 207)
            if mine.count("UID:inv") != INVITES:
                raise RuntimeError(f"{FRIEND}'s calendar holds {mine.count('UID:inv')} of the {INVITES} invitations")
            lag = json.loads((tmp / "hublag-gk.json").read_text())
            rad = Client(rad_port)
            _ok(
                rad(
                    "MKCALENDAR",
                    f"/{USER}/calendar/",
                    '<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"/>',
                ),
                201,
            )
            t = time.monotonic()
            rad_results = workload(rad, f"/{USER}/calendar/")
            print(f"Radicale done in {time.monotonic() - t:.0f}s", flush=True)
        finally:
            for proc in (gk_proc, rad_proc):
                proc.terminate()
                proc.wait(timeout=30)
        large: dict[str, float] = {}
        large_lag: dict[str, float] = {}
        large_floor: dict[str, float] = {}
        if LARGE:
            big_proc, big_port, _ = start_gk(tmp, "gk-large")
            try:
                big = Client(big_port)
                _ok(big("PROPFIND", f"/dav/{USER}/", PROPFIND, Depth="1"), 207)
                t = time.monotonic()
                with Floor(tmp / "floor-large.json") as floor_large:
                    large = workload(big, f"/dav/{USER}/calendar/", LARGE)
                    print(f"GK at {LARGE} events done in {time.monotonic() - t:.0f}s", flush=True)
                large_floor = floor_large.result
                large_lag = json.loads((tmp / "hublag-gk-large.json").read_text())
            finally:
                big_proc.terminate()
                big_proc.wait(timeout=30)
    print(f"{'operation':28} {'GK ms':>10} {'Radicale ms':>12} {'Radicale/GK':>12}")
    for name, gk_ms in gk_results.items():
        rad_ms = rad_results[name]
        print(f"{name:28} {gk_ms:10.1f} {rad_ms:12.1f} {rad_ms / gk_ms:11.1f}x")
    print(
        f"gk serve RSS: DAV off {rss_off / 1024:.1f} MB; DAV on: idle {rss_idle / 1024:.1f} MB, after the first "
        f"DAV request {rss_dav / 1024:.1f} MB (enabling DAV: +{(rss_dav - rss_off) / 1024:.1f} MB, of which Radicale's "
        f"import on first use +{(rss_dav - rss_idle) / 1024:.1f} MB), after the import {rss_after / 1024:.1f} MB"
    )
    print(
        f"gk serve [server] switch_interval_ms: {SERVER_OVERRIDES.get('switch_interval_ms', 'default')}\n"
        f"gk hub lag over the run at {EVENTS} events (Radicale in a pool thread): p99 {lag['p99_ms']:.1f} ms, "
        f"max {lag['max_ms']:.1f} ms; the peer, a bare idle gevent process beside it (bench/_floor.py): p99 {floor['p99_ms']:.1f} ms, "
        f"max {floor['max_ms']:.1f} ms"
    )
    if large:
        print(f"\nGK alone at {LARGE} events (Radicale's file storage left out: its O(n) PUT makes the import O(n^2))")
        for name, ms in large.items():
            print(f"{name:28} {ms:10.1f}")
        if large_lag:
            print(
                f"gk hub lag over the run at {LARGE} events: p99 {large_lag['p99_ms']:.1f} ms, "
                f"max {large_lag['max_ms']:.1f} ms; the peer, a bare idle gevent process beside it (bench/_floor.py): p99 "
                f"{large_floor['p99_ms']:.1f} ms, max {large_floor['max_ms']:.1f} ms"
            )
        verdict = "under" if large["sync-collection delta"] < 100 else "OVER"
        print(f"delta sync at {LARGE} events: {large['sync-collection delta']:.1f} ms ({verdict} the 100 ms target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
