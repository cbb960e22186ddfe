"""Login throttling against a real ``gk serve`` (issue 9 §1.3), with real clients from several
loopback source addresses (Linux routes all of 127/8 to lo, so each 127.0.0.x is another client):

(a) a burst of simultaneous guesses gets no more password checks than the per-(client, account)
    limit; (b) a success on the client's own account does not reset its failures on others;
(c) guesses from elsewhere, one client or many, lock neither web, SMTP nor IMAP of the owner
    from an address he used before, app passwords included, nor his browser (device cookie),
    nor — the wizard shares the throttle — the setup code from his address; (d) ten logins missing the credential
    cache at once do not hold ten argon2 hashes (19 MiB each) at once: peak RSS from /proc.
"""

from __future__ import annotations

import base64
import http.client
import imaplib
import re
import smtplib
import socket
import threading
import time
import urllib.parse

import pytest
from support.smtp import tls_client_context

PASSWORD = "correct horse battery staple"
ALICE, BOB, MALLORY = "alice@example.org", "bob@example.org", "mallory@example.org"
VICTIMS = [f"v{i}@example.org" for i in range(5)]
APP_PASSWORD = "alice phone app password"
AUTH = {  # cheap hashes, short delays: the policy is what is tested, not argon2's cost
    "argon2_time_cost": 1,
    "argon2_memory_kib": 8192,
    "delay_after_failures": 3,
    "max_delay": 0.5,
    "lockout_failures_ip": 20,
    "lockout_failures_account": 10,
}


def prepare(srv, users: list[str], password=PASSWORD) -> None:  # type: ignore[no-untyped-def]
    """Users (and alice's app password) straight into the account store; the box claimed."""
    from gk import claim
    from gk.config import load
    from gk.context import open_accounts

    srv.write_config()
    store = open_accounts(load(srv.data_dir), srv.data_dir)
    for address in users:
        store.add_user(address, password(address) if callable(password) else password)
    if ALICE in users:
        store.add_app_password(ALICE, "phone", APP_PASSWORD)
    store.db.close()
    claim.complete(srv.data_dir)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):  # type: ignore[no-untyped-def]
    from support.gkserver import GKServer

    server = GKServer(tmp_path_factory.mktemp("gk"), {"http": {"https_port": 0}, "auth": AUTH})
    prepare(server, [ALICE, BOB, MALLORY, *VICTIMS])
    server.start()
    yield server
    server.stop()


def smtp_auth(srv, address: str, password: str, src: str) -> int:  # type: ignore[no-untyped-def]
    """AUTH PLAIN on port 465 from ``src``: the reply code."""
    with smtplib.SMTP_SSL(
        "127.0.0.1",
        srv.port("smtp.submissions_port"),
        context=tls_client_context(),
        source_address=(src, 0),
        timeout=120,
    ) as s:
        s.ehlo("client.example")
        blob = base64.b64encode(f"\0{address}\0{password}".encode()).decode()
        return s.docmd("AUTH", "PLAIN " + blob)[0]


class _IMAPFrom(imaplib.IMAP4_SSL):
    def __init__(self, src: str, *args, **kw):  # type: ignore[no-untyped-def]
        self.src = src
        super().__init__(*args, **kw)

    def _create_socket(self, timeout):  # type: ignore[no-untyped-def]
        sock = socket.create_connection((self.host, self.port), timeout, source_address=(self.src, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def imap_login(srv, address: str, password: str, src: str) -> str:  # type: ignore[no-untyped-def]
    """IMAP LOGIN on port 993 from ``src``: "OK" or the NO text."""
    m = _IMAPFrom(src, "127.0.0.1", srv.port("imap.tls_port"), ssl_context=tls_client_context(), timeout=120)
    try:
        m.login(address, password)
    except imaplib.IMAP4.error as exc:
        return str(exc)
    finally:
        m.shutdown()
    return "OK"


DEVICES: dict[str, str] = {}  # Set-Cookie of the last web login that issued a device token


def web_login(srv, address: str, password: str, src: str, device: str = "") -> int:  # type: ignore[no-untyped-def]
    """The web login form from ``src`` (a GET for the session and CSRF token, then the POST): the status.

    ``device``: the browser's device cookie to send (``gk_device=…``)."""

    def request(method: str, body: str | None, cookie: str) -> tuple[http.client.HTTPResponse, str]:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=120, source_address=(src, 0))
        headers = {"Cookie": cookie} if cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, "/login", body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        conn.close()
        return resp, text

    resp, page = request("GET", None, "")
    cookie = "; ".join(v.split(";", 1)[0] for v in resp.headers.get_all("Set-Cookie") or [])
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"address": address, "password": password, "csrf": csrf, "next": "/"})
    resp = request("POST", form, "; ".join(c for c in (cookie, device) if c))[0]
    for value in resp.headers.get_all("Set-Cookie") or []:
        if value.startswith("gk_device="):
            DEVICES[address] = value
    return resp.status


def at_once(jobs: list) -> list:  # type: ignore[type-arg]
    """Run the callables in threads released together; their results (or exceptions) in order."""
    results: list = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=120)
            results[i] = jobs[i]()
        except Exception as exc:  # a refused connection is an answer too
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return results


def checks(srv, address: str, src: str) -> int:  # type: ignore[no-untyped-def]
    """Password checks that failed for ``address`` from ``src`` (one log line per real check)."""
    return srv.log().count(f"login failed ip={src} account={address}")


def test_a_burst_of_guesses_gets_no_more_checks_than_the_limit(srv):  # type: ignore[no-untyped-def]
    """59 simultaneous wrong AUTH PLAIN got 54 argon2 checks with a limit of 10 (counted after the check)."""
    src = "127.0.0.5"

    def guess(i: int):  # type: ignore[no-untyped-def]
        def connect_and_guess() -> int:
            with smtplib.SMTP_SSL(
                "127.0.0.1", srv.port("smtp.submissions_port"), context=tls_client_context(),
                source_address=(src, 0), timeout=120,
            ) as s:  # fmt: skip
                s.ehlo("client.example")
                blob = base64.b64encode(f"\0{BOB}\0wrong guess {i}".encode()).decode()
                return s.docmd("AUTH", "PLAIN " + blob)[0]

        return connect_and_guess

    codes = at_once([guess(i) for i in range(59)])
    answered = [c for c in codes if isinstance(c, int)]
    assert len(answered) > 10, codes  # enough sessions to exceed the limit
    assert set(answered) <= {535, 454}, codes
    done = checks(srv, BOB, src)
    assert done <= AUTH["lockout_failures_account"], f"{done} password checks for one burst"
    assert answered.count(535) in (done, done - 1)  # the check that earns the lock answers 454
    # the client is now locked out of bob's account: the right password waits out the lock too
    assert smtp_auth(srv, BOB, PASSWORD, src) == 454
    assert "login refused" in srv.log()


def test_a_success_on_its_own_account_does_not_reset_the_clients_failures(srv):  # type: ignore[no-untyped-def]
    """One client, 60 failures over 12 rounds, each round starting with a success on its own account."""
    src = "127.0.0.6"
    codes: list[int] = []
    for _ in range(12):
        assert smtp_auth(srv, MALLORY, PASSWORD, src) == 235
        with smtplib.SMTP_SSL(
            "127.0.0.1", srv.port("smtp.submissions_port"), context=tls_client_context(),
            source_address=(src, 0), timeout=120,
        ) as s:  # fmt: skip
            s.ehlo("client.example")
            for victim in VICTIMS:
                blob = base64.b64encode(f"\0{victim}\0not the password".encode()).decode()
                codes.append(s.docmd("AUTH", "PLAIN " + blob)[0])
    limit = AUTH["lockout_failures_ip"]
    assert codes[:limit] == [535] * limit
    assert codes[limit:] == [454] * (len(codes) - limit), codes
    assert sum(checks(srv, v, src) for v in VICTIMS) == limit
    assert smtp_auth(srv, MALLORY, PASSWORD, src) == 235  # its own account: a known client


def test_guesses_from_elsewhere_do_not_lock_the_owner_out(srv):  # type: ignore[no-untyped-def]
    """10 wrong passwords from anywhere locked alice out of web, SMTP and IMAP, from everywhere."""
    home = "127.0.0.1"
    assert imap_login(srv, ALICE, PASSWORD, home) == "OK"  # alice's usual address: now a known client
    # one attacker: 10 wrong passwords over each protocol
    attacker = "127.0.0.7"
    for i in range(10):
        assert smtp_auth(srv, ALICE, f"guess {i}", attacker) in (535, 454)
        assert imap_login(srv, ALICE, f"guess {i}", attacker) != "OK"
        assert web_login(srv, ALICE, f"guess {i}", attacker) in (401, 429)
    assert smtp_auth(srv, ALICE, PASSWORD, attacker) == 454  # that client is locked out of alice's account
    assert web_login(srv, ALICE, PASSWORD, attacker) == 429
    # many attackers at once (distributed guessing): unknown clients queue behind them
    burst = at_once([lambda i=i: smtp_auth(srv, ALICE, f"spray {i}", f"127.0.1.{i}") for i in range(30)])
    assert all(code in (535, 454) for code in burst), burst
    # the owner, from home: web, SMTP, IMAP, app password — none locked, none refused
    assert web_login(srv, ALICE, PASSWORD, home) == 303
    cookie = DEVICES[ALICE]  # the browser is now known to alice's account, wherever it goes
    assert "HttpOnly" in cookie and "Path=/login" in cookie and "Max-Age=2592000" in cookie, cookie
    assert smtp_auth(srv, ALICE, PASSWORD, home) == 235
    assert imap_login(srv, ALICE, PASSWORD, home) == "OK"
    assert imap_login(srv, ALICE, APP_PASSWORD, home) == "OK"
    # from an address alice never used, once the attack has stopped: slowed at most, let in
    assert web_login(srv, ALICE, PASSWORD, "127.0.0.8") == 303
    assert smtp_auth(srv, ALICE, PASSWORD, "127.0.0.9") == 235
    # a network shared with a sprayer (a hotel's NAT): that address is locked for accounts it does
    # not know; alice's browser, known by its device cookie, still gets in from there
    shared = "127.0.0.10"
    for i in range(AUTH["lockout_failures_ip"]):
        assert smtp_auth(srv, f"someone{i}@example.org", "spray", shared) == 535
    assert web_login(srv, ALICE, PASSWORD, shared) == 429
    assert web_login(srv, ALICE, PASSWORD, shared, device=cookie.split(";", 1)[0]) == 303


def test_wrong_setup_codes_from_one_address_do_not_lock_out_another(make_server):  # type: ignore[no-untyped-def]
    """The wizard's setup code shares the throttle: 10 wrong codes from anywhere locked the owner out."""
    srv = make_server("gk", {"http": {"https_port": 0}, "auth": AUTH}).start()

    def claim(code: str, src: str) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=120, source_address=(src, 0))
        conn.request("GET", "/wizard/claim")
        resp = conn.getresponse()
        page = resp.read().decode()
        cookie = "; ".join(v.split(";", 1)[0] for v in resp.headers.get_all("Set-Cookie") or [])
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({"code": code, "csrf": csrf})
        headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", "/wizard/claim", body=body, headers=headers)
        resp = conn.getresponse()
        page = resp.read().decode()
        conn.close()
        return "claimed" if resp.status == 303 else ("locked" if "Too many wrong codes" in page else "wrong")

    neighbour = [claim("AAAA-BBBB-CCCC", "127.0.0.2") for _ in range(AUTH["lockout_failures_account"] + 1)]
    assert neighbour[0] == "wrong" and neighbour[-1] == "locked", neighbour
    code = (srv.data_dir / "setup-code.txt").read_text().strip()
    assert claim(code, "127.0.0.1") == "claimed"  # the owner's browser, elsewhere on the LAN


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_parallel_password_checks_are_bounded_by_memory(make_server):  # type: ignore[no-untyped-def]
    """Ten IMAP logins missing the credential cache at once: RSS went 46 → 235 MB (ten 19 MiB hashes)."""
    parallel = 2  # what a 512 MB board gets (passwords.parallel_hashes); set here so the test is the board's
    srv = make_server("gk", {"http": {"https_port": 0}, "auth": {"parallel_hashes": parallel}})  # 19 MiB, t=2
    users = [f"u{i}@example.org" for i in range(11)]
    prepare(srv, users, password=lambda a: "password of " + a)
    srv.start()

    def login(address: str) -> str:
        return imap_login(srv, address, "password of " + address, "127.0.0.1")

    assert at_once([lambda: login(users[0])] * 2) == ["OK", "OK"]  # warm: imports, TLS, a thread's arena
    time.sleep(1)
    pid = srv.pid()
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS
    before = status_kb(pid, "VmHWM")
    assert at_once([lambda a=a: login(a) for a in users[1:]]) == ["OK"] * 10
    peak = status_kb(pid, "VmHWM") - before
    hash_kb = 19456
    assert peak < (parallel + 1) * hash_kb, f"peak RSS grew by {peak} kB over ten logins at once (a hash is 19,456 kB)"
    print(f"peak RSS growth over 10 concurrent cache-missing logins: {peak} kB (before {before} kB)")
