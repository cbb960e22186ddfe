"""HTTP-level tests of the web UI against a real ``gk serve``: headers, cookies, CSRF, LAN-only
wizard, claim throttling, the wizard closing for good, owner recovery, autoconfig, mobileconfig."""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import plistlib
import re
import socket
import ssl
import subprocess
import sys
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
from support.gkserver import GK, GKServer

ADMIN, ADMIN_PW = "owner@test.example", "correct horse battery"
# mail listeners off: these tests are about the web service alone
NO_MAIL = {"smtp": {"port": 0, "submission_port": 0, "submissions_port": 0}, "imap": {"port": 0, "tls_port": 0}}


class Client:
    """A tiny cookie-keeping HTTP(S) client that reads the CSRF token from pages."""

    def __init__(self, srv: GKServer, https: bool = False, source: str = ""):
        self.srv = srv
        self.https = https
        self.source = (source, 0) if source else None  # another loopback address, e.g. 127.0.0.2
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def connection(self) -> http.client.HTTPConnection:
        if self.https:
            tls = ssl.create_default_context()
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(
                "127.0.0.1", self.srv.port("http.https_port"), context=tls, timeout=30, source_address=self.source
            )
        return http.client.HTTPConnection(
            "127.0.0.1", self.srv.port("http.port"), timeout=30, source_address=self.source
        )

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def session_id(self) -> str:
        """The session cookie's value (``gk_session`` over HTTP, ``__Host-gk_session`` over HTTPS)."""
        return self.cookies.get("__Host-gk_session" if self.https else "gk_session", "")

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None):
        conn = self.connection()
        hdrs = dict(headers or {})
        if self.cookies:
            hdrs["Cookie"] = self.cookie_header()
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        for value in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
            if "Max-Age=0" in value:
                self.cookies.pop(name)
        text = data.decode("utf-8", "replace")
        m = re.search(r'name="csrf" value="([^"]+)"', text)
        if m:
            self.csrf = m.group(1)
        return resp, text

    def post_multipart(self, path: str, fields: dict, files: list[tuple[str, str, bytes]] = ()):
        """POST multipart/form-data (the compose form): fields plus (field, filename, bytes) files."""
        boundary = "gktestboundary7MA4YWxkTrZu0gW"
        parts = []
        for k, v in {**fields, "csrf": self.csrf}.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
        for k, name, data in files:
            head = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            )
            parts.append(head.encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        conn = self.connection()
        hdrs = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Cookie": self.cookie_header()}
        conn.request("POST", path, body=body, headers=hdrs)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        conn.close()
        return resp, text

    def login(self, address: str, password: str) -> None:
        self.get("/login")
        resp, _ = self.post("/login", {"address": address, "password": password})
        assert resp.status == 303, resp.status

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict, csrf: bool = True):
        return self.request("POST", path, form={**form, **({"csrf": self.csrf} if csrf else {})})


def setup_code(srv: GKServer) -> str:
    return (srv.data_dir / "setup-code.txt").read_text().strip()


def run_wizard(srv: GKServer, https_redirect: bool = False, stop_at: str = "") -> Client:
    """Click through the whole wizard over HTTPS, as the plain-HTTP wizard page sends the owner
    there (outgoing mail: direct); ``stop_at="outgoing"`` stops before that step."""
    c = Client(srv, https=True)
    c.get("/wizard/claim")
    resp, _ = c.post("/wizard/claim", {"code": setup_code(srv)})
    assert resp.status == 303 and resp.headers["Location"].endswith("/wizard/admin")
    c.get("/wizard/admin")
    resp, _ = c.post("/wizard/admin", {"address": ADMIN, "password": ADMIN_PW, "password2": ADMIN_PW})
    assert resp.status == 303, resp.status
    c.get("/wizard/host")
    resp, _ = c.post("/wizard/host", {"hostname": "mail.test.example", "domain": "test.example"})
    assert resp.headers["Location"].endswith("/wizard/timezone")
    resp, _ = c.post("/wizard/timezone", {"timezone": "Europe/Paris"})
    assert resp.headers["Location"].endswith("/wizard/tls")
    resp, _ = c.post("/wizard/tls", {"https_redirect": "1"} if https_redirect else {})
    resp, _ = c.post("/wizard/users", {"action": "add", "address": "bob@test.example", "password": "bob password 1"})
    assert resp.status == 303 and resp.headers["Location"].endswith("/wizard/users")
    resp, _ = c.post("/wizard/users", {"action": "continue"})
    _, page = c.get("/wizard/dns")
    assert "v=spf1 mx -all" in page and "10 mail.test.example." in page and "_dmarc.test.example" in page
    if importlib.util.find_spec("gk.mail.dnsrecords"):
        assert "v=DKIM1" in page
    resp, _ = c.post("/wizard/dns", {})
    assert resp.headers["Location"].endswith("/wizard/outgoing")
    if stop_at == "outgoing":
        return c
    resp, _ = c.post("/wizard/outgoing", {"mode": "direct"})
    assert resp.status == 303 and resp.headers["Location"].endswith("/wizard/chat")
    resp, _ = c.post("/wizard/chat", {"rooms": ""})  # the chat's step: the default rooms are enough
    assert resp.status == 303 and resp.headers["Location"].endswith("/wizard/family")
    resp, _ = c.post("/wizard/family", {"create": "1", "member": "bob@test.example"})
    assert resp.status == 303 and resp.headers["Location"].endswith("/wizard/ai")
    resp, _ = c.post("/wizard/ai", {"model": "none"})
    assert resp.headers["Location"].endswith("/wizard/summary")
    _, page = c.get("/wizard/summary")  # every feature's step has its line, with its Edit link
    for step, value in (("chat", "#general"), ("family", "shared with bob@test.example"), ("ai", "No assistant")):
        assert re.search(rf'<dd id="summary-{step}">{re.escape(value)} <a class="edit" href="/wizard/{step}"', page), (
            step
        )
    resp, _ = c.post("/wizard/summary", {})
    assert resp.headers["Location"].endswith("/dashboard")
    return c


@pytest.fixture
def server(make_server):
    return make_server(overrides=NO_MAIL).start()


def test_security_headers_and_cookie_flags(server):
    c = Client(server)
    resp, page = c.get("/wizard/claim")
    assert resp.status == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "<script>" not in page and " on" not in re.sub(r"<[^>]*>", "", "") and "onclick" not in page
    s = Client(server, https=True)
    resp, _ = s.get("/wizard/claim")
    assert resp.status == 200
    assert "Secure" in resp.headers["Set-Cookie"] and "HttpOnly" in resp.headers["Set-Cookie"]
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    resp, _ = s.get("/static/htmx-2.0.11.min.js")
    assert resp.status == 200 and resp.headers["X-Content-Type-Options"] == "nosniff"


def test_every_page_redirects_to_wizard_until_claimed(server):
    c = Client(server)
    for path in ("/", "/login", "/dashboard", "/mail", "/admin/users", "/.well-known/autoconfig/mail/config-v1.1.xml"):
        resp, _ = c.get(path)
        assert resp.status == 303 and resp.headers["Location"].endswith("/wizard"), path


def test_wizard_is_lan_only(make_server):
    # the peer 127.0.0.1 is outside this (narrowed) LAN list: the server must treat it as internet
    srv = make_server(overrides={**NO_MAIL, "http": {"lan_networks": ["10.0.0.0/8", "fd00::/8"]}}).start()
    c = Client(srv)
    for path in ("/wizard/claim", "/", "/login"):
        resp, page = c.get(path)
        assert resp.status == 403 and "local network" in page, path
    resp, _ = c.post("/wizard/claim", {"code": setup_code(srv)}, csrf=False)
    assert resp.status == 403
    assert (srv.data_dir / "setup-code.txt").exists()  # still unclaimed


def test_csrf_missing_or_wrong_is_refused_and_changes_nothing(server):
    c = Client(server, https=True)
    c.get("/wizard/claim")
    resp, _ = c.post("/wizard/claim", {"code": setup_code(server)}, csrf=False)
    assert resp.status == 403
    resp, _ = c.request("POST", "/wizard/claim", form={"code": setup_code(server), "csrf": "forged"})
    assert resp.status == 403
    assert (server.data_dir / "setup-code.txt").exists()
    # the token in a header (as htmx sends it) is accepted
    resp, _ = c.request("POST", "/wizard/claim", form={"code": setup_code(server)}, headers={"X-CSRF-Token": c.csrf})
    assert resp.status == 303


def test_wrong_setup_code_is_refused_then_throttled(make_server):
    srv = make_server(overrides={**NO_MAIL, "http": {"setup_code_lockout_failures": 3}}).start()
    c = Client(srv, https=True)
    c.get("/wizard/claim")
    for _ in range(3):
        resp, page = c.post("/wizard/claim", {"code": "AAAA-BBBB-CCCC"})
        assert resp.status == 400 and "Wrong setup code" in page
    resp, page = c.post("/wizard/claim", {"code": setup_code(srv)})
    assert resp.status == 429 and "Too many wrong codes" in page  # locked out: even the right code waits
    assert (srv.data_dir / "setup-code.txt").exists()


def test_wrong_codes_from_one_address_do_not_lock_out_another(make_server):
    """Issue 9 §4: 10 wrong codes from any LAN address locked the owner out for 15 minutes, renewable."""
    srv = make_server(overrides=NO_MAIL).start()  # default limits: 10 wrong codes lock an address
    attacker = Client(srv, https=True, source="127.0.0.2")
    attacker.get("/wizard/claim")
    statuses = []
    for i in range(11):
        resp, page = attacker.post("/wizard/claim", {"code": f"AAAA-BBBB-{i:04d}"})
        statuses.append(resp.status)
    assert statuses[:10] == [400] * 10 and statuses[10] == 429, statuses
    resp, page = attacker.post("/wizard/claim", {"code": setup_code(srv)})
    assert resp.status == 429 and "Too many wrong codes" in page  # that address is locked out
    owner = Client(srv, https=True)  # 127.0.0.1: another device on the LAN
    owner.get("/wizard/claim")
    resp, page = owner.post("/wizard/claim", {"code": setup_code(srv)})
    assert resp.status == 303 and resp.headers["Location"].endswith("/wizard/admin"), (resp.status, page[-500:])
    events = srv.log()
    assert "Traceback" not in events


def test_wizard_completes_then_is_dead_login_works(server):
    c = run_wizard(server)
    assert not (server.data_dir / "setup-code.txt").exists()
    for path in ("/wizard", "/wizard/claim", "/wizard/admin", "/wizard/summary"):
        resp, _ = c.get(path)
        assert resp.status == 404, path
    resp, _ = c.post("/wizard/claim", {"code": "anything"})
    assert resp.status == 404
    resp, page = c.get("/dashboard")
    assert resp.status == 200 and "http" in page and "wizard_complete" in page
    # a fresh browser must log in; a wrong password is refused and recorded
    b = Client(server)
    resp, _ = b.get("/dashboard")
    assert resp.status == 303 and "/login" in resp.headers["Location"]
    b.get("/login")
    resp, page = b.post("/login", {"address": ADMIN, "password": "nope nope nope"})
    assert resp.status == 401 and "Wrong address or password" in page
    resp, _ = b.post("/login", {"address": ADMIN, "password": ADMIN_PW})
    assert resp.status == 303
    assert "Max-Age=" in resp.headers["Set-Cookie"] and "HttpOnly" in resp.headers["Set-Cookie"]
    resp, page = b.get("/dashboard")
    assert resp.status == 200 and "login_failed" in page
    # a non-admin may not see the dashboard or the queue API
    u = Client(server)
    u.get("/login")
    u.post("/login", {"address": "bob@test.example", "password": "bob password 1"})
    assert u.get("/dashboard")[0].status == 403
    assert u.get("/api/mail/queue")[0].status == 403
    # admin pages: CSRF-less POST refused, with token accepted
    resp, _ = b.post("/admin/users", {"address": "carol@test.example", "password": "carol password"}, csrf=False)
    assert resp.status == 403
    b.get("/admin/users")
    resp, page = b.post("/admin/users", {"address": "carol@test.example", "password": "carol password"})
    assert resp.status == 303  # post/redirect/get: the page after shows what was done, once
    assert "Added carol@test.example" in b.get("/admin/users")[1]
    resp, page = b.post("/admin/users", {"address": "dave@test.example", "password": "short"})
    assert resp.status == 400 and 'class="field-error"' in page
    # logout ends the server-side session
    b.post("/logout", {})
    assert b.get("/dashboard")[0].status == 303


def test_owner_recovery_reopens_only_claim_and_password(server):
    run_wizard(server)
    out = subprocess.run(
        [*GK, "claim", "recover", "--data-dir", str(server.data_dir)], capture_output=True, text=True, check=True
    )
    code = setup_code(server)
    assert code in out.stdout
    c = Client(server, https=True)
    resp, _ = c.get("/wizard/admin")
    assert resp.status == 404
    resp, _ = c.get("/wizard/claim")
    assert resp.status == 200
    resp, _ = c.post("/wizard/claim", {"code": code})
    assert resp.headers["Location"].endswith("/wizard/password")
    assert c.get("/wizard/host")[0].status == 404
    c.get("/wizard/password")
    new = "a brand new passphrase"
    resp, _ = c.post("/wizard/password", {"address": ADMIN, "password": new, "password2": new})
    assert resp.status == 303
    assert c.get("/wizard/claim")[0].status == 404  # closed again
    c.get("/login")
    resp, _ = c.post("/login", {"address": ADMIN, "password": new})
    assert resp.status == 303 and c.get("/dashboard")[0].status == 200


def test_recovery_during_setup_lets_another_browser_resume(server):
    a = Client(server, https=True)
    a.get("/wizard/claim")
    a.post("/wizard/claim", {"code": setup_code(server)})
    a.get("/wizard/admin")
    a.post("/wizard/admin", {"address": ADMIN, "password": ADMIN_PW, "password2": ADMIN_PW})
    b = Client(server, https=True)
    assert b.get("/wizard/claim")[0].status == 403  # being set up by another browser
    subprocess.run([*GK, "claim", "recover", "--data-dir", str(server.data_dir)], check=True, capture_output=True)
    b.get("/wizard/claim")
    resp, _ = b.post("/wizard/claim", {"code": setup_code(server)})
    assert resp.headers["Location"].endswith("/wizard/admin")
    b.get("/wizard/admin")
    resp, page = b.post("/wizard/admin", {"address": ADMIN, "password": "wrong password!!", "password2": ""})
    assert resp.status == 400 and "Wrong address or password" in page
    resp, _ = b.post("/wizard/admin", {"address": ADMIN, "password": ADMIN_PW, "password2": ""})
    assert resp.status == 303
    resp, _ = b.get("/wizard")
    assert resp.headers["Location"].endswith("/wizard/host")


def test_button_press_claims_an_open_claim_page(server):
    c = Client(server, https=True)
    c.get("/wizard/claim")
    resp, _ = c.post("/wizard/claim/button", {})
    assert resp.status == 200 and "HX-Redirect" not in resp.headers
    subprocess.run([*GK, "claim", "button", "--data-dir", str(server.data_dir)], check=True, capture_output=True)
    resp, _ = c.post("/wizard/claim/button", {})
    assert resp.headers["HX-Redirect"] == "/wizard/admin"
    assert c.get("/wizard/admin")[0].status == 200


def press_button(srv: GKServer) -> None:
    subprocess.run([*GK, "claim", "button", "--data-dir", str(srv.data_dir)], check=True, capture_output=True)


def test_button_press_with_two_browsers_waiting_goes_to_neither(server):
    """Issue 9 §4: a LAN device polling the button endpoint every 0.2 s won the claim when the owner
    pressed the button. With two browsers waiting, the press is refused to both, each told to use
    the setup code, and the owner still claims with it."""
    intruder = Client(server, https=True, source="127.0.0.2")
    intruder.get("/wizard/claim")
    resp, _ = intruder.post("/wizard/claim/button", {})
    assert resp.status == 200 and "HX-Redirect" not in resp.headers
    owner = Client(server, https=True)
    owner.get("/wizard/claim")
    assert "HX-Redirect" not in owner.post("/wizard/claim/button", {})[0].headers
    press_button(server)
    for who in (intruder, owner):  # the intruder polls first, as it would at 0.2 s
        resp, page = who.post("/wizard/claim/button", {})
        assert resp.status == 286 and "HX-Redirect" not in resp.headers, resp.status
        assert "Enter the setup code instead" in page
    assert (server.data_dir / "setup-code.txt").exists()  # still unclaimed
    assert intruder.get("/wizard/claim")[0].status == 200
    press_button(server)  # pressing again does not help the intruder either
    for who in (intruder, owner):
        resp, _ = who.post("/wizard/claim/button", {})
        assert "HX-Redirect" not in resp.headers
    resp, _ = owner.post("/wizard/claim", {"code": setup_code(server)})
    assert resp.status == 303 and resp.headers["Location"].endswith("/wizard/admin")


def test_button_press_goes_to_the_browser_waiting_before_it(server):
    owner = Client(server, https=True)
    owner.get("/wizard/claim")
    owner.post("/wizard/claim/button", {})
    press_button(server)
    late = Client(server, https=True, source="127.0.0.2")  # opened the page after the press
    late.get("/wizard/claim")
    for _ in range(3):
        resp, _ = late.post("/wizard/claim/button", {})
        assert resp.status == 200 and "HX-Redirect" not in resp.headers
    resp, _ = owner.post("/wizard/claim/button", {})
    assert resp.headers["HX-Redirect"] == "/wizard/admin"
    assert owner.get("/wizard/admin")[0].status == 200
    assert late.get("/wizard/claim")[0].status == 403  # being set up by another browser


def test_autoconfig_and_mobileconfig(make_server):
    server = make_server().start()  # every mail port configured
    c = run_wizard(server)
    anon = Client(server)
    for path in ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"):
        resp, body = anon.get(path + "?emailaddress=bob%40test.example")
        assert resp.status == 200 and "xml" in resp.headers["Content-Type"]
        root = ET.fromstring(body)
        servers = {
            (s.tag, s.findtext("socketType")): (s.findtext("hostname"), int(s.findtext("port") or 0))
            for s in root.iter()
            if s.tag in ("incomingServer", "outgoingServer")
        }
        assert servers[("incomingServer", "SSL")] == ("mail.test.example", server.port("imap.tls_port"))
        assert servers[("incomingServer", "STARTTLS")][1] == server.port("imap.port")
        assert servers[("outgoingServer", "SSL")][1] == server.port("smtp.submissions_port")
        assert servers[("outgoingServer", "STARTTLS")][1] == server.port("smtp.submission_port")
        assert root.findtext("emailProvider/domain") == "test.example"
    resp, _ = anon.get("/devices/gk.mobileconfig")
    assert resp.status == 303  # login first
    resp, _ = c.get("/devices/gk.mobileconfig")
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/x-apple-aspen-config"
    assert "attachment" in resp.headers["Content-Disposition"]
    conn = c.connection()
    conn.request("GET", "/devices/gk.mobileconfig", headers={"Cookie": c.cookie_header()})
    profile = plistlib.loads(conn.getresponse().read())
    mail = profile["PayloadContent"][0]
    assert mail["PayloadType"] == "com.apple.mail.managed" and mail["EmailAddress"] == ADMIN
    assert mail["IncomingMailServerPortNumber"] == server.port("imap.tls_port")
    assert mail["OutgoingMailServerPortNumber"] == server.port("smtp.submissions_port")
    # the self-signed certificate travels in the profile as a root the device then trusts
    [cert] = [p for p in profile["PayloadContent"] if p["PayloadType"] == "com.apple.security.root"]
    served = ssl.PEM_cert_to_DER_cert((server.data_dir / "tls" / "cert.pem").read_text())
    assert cert["PayloadContent"] == served and cert["PayloadUUID"] != mail["PayloadUUID"]
    resp, _ = anon.get("/.well-known/caldav")
    assert resp.status == 301 and resp.headers["Location"].endswith("/dav/")
    resp, page = c.get("/devices")
    assert str(server.port("imap.tls_port")) in page and "mail.test.example" in page
    assert (
        '<svg xmlns="http://www.w3.org/2000/svg"' in page
        and f"127.0.0.1:{server.port('http.https_port')}/devices" in page
    )


def test_http_redirects_to_https_once_wizard_set_it(server):
    c = run_wizard(server, https_redirect=True)
    h = Client(server)
    resp, _ = h.get("/dashboard?x=1")
    assert resp.status == 301
    assert resp.headers["Location"] == f"https://127.0.0.1:{server.port('http.https_port')}/dashboard?x=1"
    assert c.get("/dashboard")[0].status == 200
    assert "Set-Cookie" not in c.get("/dashboard")[0].headers


def test_wizard_moves_to_https_before_the_setup_code(server):
    """Issue 9 §4: the wizard posted the setup code and admin password over HTTP. Over HTTP it is
    now one page that sends the owner to HTTPS and shows the certificate fingerprint to expect."""
    with socket.create_connection(("127.0.0.1", server.port("http.https_port")), timeout=30) as raw:
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        with tls.wrap_socket(raw) as t:
            served = hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest().upper()
    expected = ":".join(served[i : i + 2] for i in range(0, 64, 2))  # as a browser shows it
    h = Client(server)
    for path in ("/", "/wizard/claim", "/wizard/admin"):
        resp, page = h.get(path)
        if resp.status == 303:
            resp, page = h.get(urllib.parse.urlsplit(resp.headers["Location"]).path)
        assert resp.status == 200, path
        assert expected in page and 'name="code"' not in page and 'type="password"' not in page, path
        link = re.search(r'id="continue-https" href="([^"]+)"', page).group(1)
        assert link.startswith(f"https://127.0.0.1:{server.port('http.https_port')}/wizard"), link
    # a POST over HTTP, with a valid CSRF token and the right code, changes nothing
    resp, page = h.post("/wizard/claim", {"code": setup_code(server)})
    assert resp.status == 403 and (server.data_dir / "setup-code.txt").exists()
    assert "gk_session" in h.cookies and "Secure" not in resp.headers.get("Set-Cookie", "")
    # the HTTP session does not carry over to HTTPS, under either cookie name
    s = Client(server, https=True)
    for name in ("gk_session", "__Host-gk_session"):
        s.cookies = {name: h.cookies["gk_session"]}
        resp, _ = s.get("/wizard/claim")
        assert resp.status == 200
        cookie = resp.headers["Set-Cookie"]
        assert cookie.startswith("__Host-gk_session=") and "Secure" in cookie and h.cookies["gk_session"] not in cookie
    s.cookies = {"__Host-gk_session": h.cookies["gk_session"]}
    resp, _ = s.request("POST", "/wizard/claim", form={"code": setup_code(server), "csrf": h.csrf})
    assert resp.status == 403 and (server.data_dir / "setup-code.txt").exists()  # the HTTP token is no good
    # over HTTPS: a new session id at the claim and again once the administrator exists
    o = Client(server, https=True)
    o.get("/wizard/claim")
    anonymous = o.session_id()
    resp, _ = o.post("/wizard/claim", {"code": setup_code(server)})
    assert resp.status == 303 and "Secure" in resp.headers["Set-Cookie"]
    claimant = o.session_id()
    assert claimant and claimant != anonymous
    o.get("/wizard/admin")
    resp, _ = o.post("/wizard/admin", {"address": ADMIN, "password": ADMIN_PW, "password2": ADMIN_PW})
    assert resp.status == 303 and o.session_id() not in (anonymous, claimant)
    assert o.get("/wizard/host")[0].status == 200
    for old in (anonymous, claimant):  # the earlier ids open nothing
        stale = Client(server, https=True)
        stale.cookies = {"__Host-gk_session": old}
        resp, _ = stale.get("/wizard/host")
        assert resp.status == 303 and resp.headers["Location"].endswith("/wizard/claim")


def test_http_login_session_is_not_valid_over_https(server):
    run_wizard(server)  # HTTPS stays optional (https_redirect off): a login over HTTP works on HTTP only
    h = Client(server)
    h.login(ADMIN, ADMIN_PW)
    assert h.get("/dashboard")[0].status == 200
    s = Client(server, https=True)
    s.cookies = {"__Host-gk_session": h.cookies["gk_session"], "gk_session": h.cookies["gk_session"]}
    resp, _ = s.get("/dashboard")
    assert resp.status == 303 and "/login" in resp.headers["Location"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-x", "-q"]))


def test_account_password_app_password_language_queue_api(make_server):
    import imaplib

    server = make_server().start()  # with IMAP and the queue running
    admin = run_wizard(server)
    # an app password made in the web UI logs a mail client in over IMAPS (shared AccountStore)
    admin.get("/account")
    resp, _ = admin.post("/account/app-passwords", {"name": "phone"})
    assert resp.status == 303
    _, page = admin.get("/account")
    app_pw = re.search(r'id="new-app-password">([^<]+)<', page).group(1)
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4_SSL("127.0.0.1", server.port("imap.tls_port"), ssl_context=tls) as imap:
        assert imap.login(ADMIN, app_pw)[0] == "OK"
    assert "phone" in admin.get("/account")[1]
    # password change: the wrong current password is refused; the new one works, the old one not
    resp, page = admin.post("/account/password", {"current": "bad", "password": "x" * 12, "password2": "x" * 12})
    assert resp.status == 400 and 'class="field-error"' in page
    new = "an even better passphrase"
    resp, page = admin.post("/account/password", {"current": ADMIN_PW, "password": new, "password2": new})
    assert resp.status == 303 and "Password changed." in admin.get("/account")[1]
    fresh = Client(server)
    fresh.get("/login")
    assert fresh.post("/login", {"address": ADMIN, "password": ADMIN_PW})[0].status == 401
    fresh.login(ADMIN, new)
    # French from Accept-Language, then the user's own setting wins
    resp, page = Client(server).get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert "Se connecter" in page and 'lang="fr"' in page
    admin.get("/account")
    admin.post("/account/language", {"language": "fr"})
    _, page = admin.get("/account", headers={"Accept-Language": "en"})
    assert "Changer le mot de passe" in page
    # the queue API (admin only) is the queue service's snapshot
    resp, body = admin.get("/api/mail/queue")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["messages"] == []


def test_login_next_accepts_only_a_local_path(server):
    """Issue 9 §4: ``next=/%09/evil.example/phish`` answered ``303 Location: https://evil.example/phish``."""
    run_wizard(server)
    port = server.port("http.port")
    for raw in ("/%09/evil.example/phish", "/%0A/evil.example", "//evil.example", "/%5Cevil.example", "/%2509/evil"):
        c = Client(server)
        resp, page = c.get("/login?next=" + raw)
        assert resp.status == 200 and 'name="next" value="/"' in page, raw
        resp, _ = c.post("/login", {"address": ADMIN, "password": ADMIN_PW, "next": urllib.parse.unquote(raw)})
        assert resp.status == 303, raw
        assert resp.headers["Location"] == f"http://127.0.0.1:{port}/", (raw, resp.headers["Location"])
    c = Client(server)
    c.get("/login?next=/mail%3Ffolder%3DSent")
    resp, _ = c.post("/login", {"address": ADMIN, "password": ADMIN_PW, "next": "/mail?folder=Sent"})
    assert resp.headers["Location"] == f"http://127.0.0.1:{port}/mail?folder=Sent"
