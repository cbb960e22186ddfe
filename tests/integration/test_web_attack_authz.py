"""Attack probes on the web layer's authorization, against a real ``gk serve`` over real sockets.

The route walk reads ``gk.web.routes.TABLES`` (every page's route with its policy): a visitor is
sent to the login page (or refused) on every route not on the reviewed public list, a user who
is not an administrator gets 403 on every administrator's route, and every route under /admin
is an administrator's. A route added later with a wrong policy fails here. Then user B against
user A's things by id (mail by folder+UID, chat messages, calendar and contact entries,
assistant conversations, approvals, app passwords, API tokens), the CSRF check, session
fixation and the session cookie's flags over HTTPS.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request

import pytest
from support.gkserver import NO_MAIL, GKServer, gk
from support.messages import drop_in_maildir
from test_web_http import Client

from gk.web import routes
from gk.web.app import Access

OWNER, ALICE, BOB = "owner@test.example", "alice@test.example", "bob@test.example"
PW = "correct horse battery"
# what a visitor may reach without signing in (reviewed; a new entry needs a reason)
PUBLIC = {
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/.well-known/autoconfig/mail/config-v1.1.xml"),
    ("GET", "/mail/config-v1.1.xml"),
    ("GET", "/.well-known/acme-challenge/<token>"),
    ("ANY", "/.well-known/caldav"),
    ("ANY", "/.well-known/carddav"),
    ("PROPFIND", "/"),
    ("GET", "/oauth/authorize"),
}
# the administrator's pages: every route with one of these prefixes must be ADMIN
ADMIN_PREFIXES = ("/admin/", "/dashboard", "/api/status", "/api/mail/", "/next-steps/")
SAMPLE = {
    "<address>": ALICE,
    "<app_id:int>": "1",
    "<msg_id:int>": "1",
    "<token>": "x",
    "<name>": "general",
    "<action_id>": "x",
    "<msgid>": "x",
    "<collection>": "calendar",
    "<conv:int>": "1",
    "<token_id:int>": "1",
    "<rid>": "x",
    "<grant_id:int>": "1",
    "<server_id:int>": "1",
}
SECRET = "Alice's secret plans"


def concrete(rule: str) -> str:
    for wildcard, value in SAMPLE.items():
        rule = rule.replace(wildcard, value)
    assert "<" not in rule, f"add a sample value for the wildcard in {rule}"
    return rule


def table() -> list[tuple[str, str, Access]]:
    out = []
    for tbl in routes.TABLES:
        for r in tbl:
            for method in (r.method,) if isinstance(r.method, str) else r.method:
                out.append((method, r.path, r.policy.access))
    return out


@pytest.fixture(scope="module")
def srv(tmp_path_factory):  # type: ignore[no-untyped-def]
    s = GKServer(
        tmp_path_factory.mktemp("attack") / "gk",
        {**NO_MAIL, "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192}},
    ).claimed({OWNER: PW, ALICE: PW, BOB: PW}, admins=(OWNER,))
    drop_in_maildir(
        s,
        ALICE,
        f"From: carol@else.example\r\nTo: {ALICE}\r\nSubject: {SECRET}\r\nMessage-ID: <a1@else.example>\r\n"
        "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>the plan</p>\r\n'
        '--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="plan.pdf"\r\n\r\n'
        "%PDF-1.4 plan\r\n--b--\r\n",
    )
    s.mcp_token = gk(s.data_dir, "token", "add", ALICE, "--scope", "mcp,mail:write", "--label", "t").stdout.strip()
    s.start()
    yield s
    s.stop()


def login(srv: GKServer, address: str) -> Client:
    c = Client(srv)
    c.login(address, PW)
    c.get("/account")  # the signed-in session's CSRF token (login issued a new one)
    return c


def post(c: Client, path: str, form: dict | None = None):  # type: ignore[no-untyped-def]
    """A POST with this session's own CSRF token (fetched from a page first)."""
    return c.request("POST", path, form={**(form or {}), "csrf": c.csrf})


# -- the route table --------------------------------------------------------------------------


def test_the_public_routes_are_the_reviewed_ones_and_admin_pages_are_admin_only():
    rows = table()
    assert len(rows) > 100
    assert {(m, p) for m, p, a in rows if a is Access.ANYONE} == PUBLIC
    for method, path, access in rows:
        if path.startswith(ADMIN_PREFIXES):
            assert access is Access.ADMIN, (method, path)


def test_a_visitor_is_sent_to_the_login_page_on_every_route_not_public(srv):
    for method, path, access in table():
        if access is Access.ANYONE:
            continue
        visitor = Client(srv)
        visitor.get("/login")  # a visitor's session and its CSRF token: the policy must still say no
        assert visitor.csrf
        form = {"csrf": visitor.csrf} if method != "GET" else None
        resp, _ = visitor.request(method, concrete(path), form=form)
        assert resp.status == 303, (method, path, resp.status)
        assert urllib.parse.urlsplit(resp.headers["Location"]).path == "/login", (method, path)
        # and without a session at all (what a cross-site form sends): refused too
        resp, _ = Client(srv).request(method, concrete(path), form={} if method != "GET" else None)
        assert resp.status in (303, 403), (method, path, resp.status)


def test_a_user_gets_403_on_every_administrators_route(srv):
    bob = login(srv, BOB)
    bob.get("/account")
    for method, path, access in table():
        if access is not Access.ADMIN:
            continue
        form = {"csrf": bob.csrf, "address": BOB, "password": PW, "confirm": "1"} if method != "GET" else None
        resp, _ = bob.request(method, concrete(path), form=form)
        assert resp.status == 403, (method, path, resp.status)
    # nothing changed: alice (the sample <address>) is still there with her password
    login(srv, ALICE)


def test_the_mounted_apis_want_credentials(srv):
    anon = Client(srv)
    for method, path in [
        ("PROPFIND", f"/dav/{ALICE}/"),
        ("GET", f"/dav/{ALICE}/calendar/"),
        ("GET", "/v1/models"),
        ("GET", "/api/v1/messages?folder=INBOX"),
        ("GET", "/api/v1/me"),
        ("GET", "/chat/files/x/y"),
        ("POST", "/chat/files/upload"),
    ]:
        resp, _ = anon.request(method, path)
        assert resp.status == 401, (method, path, resp.status)
    resp, _ = anon.request("POST", "/mcp", headers={"Content-Type": "application/json"})
    assert resp.status in (401, 415), resp.status


# -- user B against user A's things ------------------------------------------------------------


def test_another_users_mail_by_folder_and_uid(srv):
    alice, bob = login(srv, ALICE), login(srv, BOB)
    alice.get("/mail")  # the store picks up the delivered file
    bob.get("/mail")
    resp, page = alice.get("/mail/read?folder=INBOX&uid=1")
    assert resp.status == 200 and SECRET.replace("'", "&#39;") in page, page[-3000:]
    for path in (
        "/mail/read?folder=INBOX&uid=1",
        "/mail/body?folder=INBOX&uid=1",
        "/mail/part?folder=INBOX&uid=1&part=2",
        f"/mail/read?folder=../../{ALICE}/Maildir&uid=1",
        f"/mail/read?folder=..%2F..%2F{ALICE}%2FMaildir&uid=1",
        f"/mail/read?folder=/{ALICE}/INBOX&uid=1",
        f"/mail?folder=../../{ALICE}/Maildir",
    ):
        resp, page = bob.get(path)
        assert resp.status in (400, 404), (path, resp.status)
        assert "plan" not in page and "Alice" not in page, path
    for path, form in (
        ("/mail/flag", {"folder": "INBOX", "uid": "1", "flag": "flagged", "on": "1"}),
        ("/mail/move", {"folder": "INBOX", "uid": "1", "dest": "Trash"}),
        ("/mail/delete", {"folder": "INBOX", "uid": "1"}),
        ("/mail/bulk", {"folder": "INBOX", "uids": "1", "uid": "1", "action": "delete"}),
    ):
        resp, _ = post(bob, path, form)
        assert resp.status in (303, 400, 404), (path, resp.status)
    resp, page = alice.get("/mail/read?folder=INBOX&uid=1")
    assert resp.status == 200 and "the plan" not in page  # the body is in its frame
    assert alice.get("/mail/body?folder=INBOX&uid=1")[1].count("the plan") == 1
    assert "secret plans" in alice.get("/mail?folder=INBOX")[1]
    assert "secret plans" not in alice.get("/mail?folder=Trash")[1]


def test_another_users_app_passwords_and_tokens(srv):
    alice, bob = login(srv, ALICE), login(srv, BOB)
    post(alice, "/account/app-passwords", {"name": "phone"})
    post(alice, "/account/tokens", {"label": "script", "mail": "read"})
    _, page = alice.get("/account")
    app_ids = re.findall(r"/account/app-passwords/(\d+)/delete", page)
    token_ids = re.findall(r"/account/tokens/(\d+)/delete", page)
    assert app_ids and token_ids
    for path in [f"/account/app-passwords/{i}/delete" for i in app_ids] + [
        f"/account/tokens/{i}/delete" for i in token_ids
    ]:
        resp, _ = post(bob, path, {"confirm": "1"})
        assert resp.status == 404, (path, resp.status)
    _, after = alice.get("/account")
    assert re.findall(r"/account/app-passwords/(\d+)/delete", after) == app_ids
    assert re.findall(r"/account/tokens/(\d+)/delete", after) == token_ids


def test_another_users_assistant_conversation(srv):
    alice, bob = login(srv, ALICE), login(srv, BOB)
    resp, _ = post(alice, "/assistant/new", {"message": SECRET})
    assert resp.status == 303
    conv = resp.headers["Location"].rsplit("/", 1)[1]
    for path in (f"/assistant/c/{conv}", f"/assistant/c/{conv}/export", f"/assistant/c/{conv}/stream"):
        resp, page = bob.get(path)
        assert resp.status == 404 and "secret" not in page, (path, resp.status)
    for action in ("send", "stop", "rename", "delete"):
        resp, _ = post(bob, f"/assistant/c/{conv}/{action}", {"message": "hi", "title": "pwned"})
        assert resp.status == 404, (action, resp.status)
    resp, page = alice.get(f"/assistant/c/{conv}")
    assert resp.status == 200 and "secret plans" in page and "pwned" not in page


def test_another_users_approval(srv):
    req = urllib.request.Request(
        f"http://127.0.0.1:{srv.port('http.port')}/mcp",
        data=json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "mail_send", "arguments": {"to": [BOB], "subject": "hi", "body": "x"}},
            }
        ).encode(),
        headers={
            "Authorization": f"Bearer {srv.mcp_token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        },
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        action = json.load(resp)["result"]["structuredContent"]["action_id"]
    alice, bob = login(srv, ALICE), login(srv, BOB)
    assert bob.get(f"/approvals/{action}")[0].status == 404
    for verb in ("approve", "reject"):
        resp, _ = post(bob, f"/approvals/{action}/{verb}")
        assert resp.status == 404, (verb, resp.status)
    resp, page = alice.get(f"/approvals/{action}")
    assert resp.status == 200 and f"/approvals/{action}/approve" in page  # still pending


def test_another_users_calendar_event_and_contact(srv):
    alice, bob = login(srv, ALICE), login(srv, BOB)
    alice.get("/calendar")
    resp, _ = post(
        alice,
        "/calendar/event",
        {
            "cal": f"{ALICE}/calendar",
            "title": SECRET,
            "start_date": "2026-12-24",
            "timezone": "Europe/Paris",
            "start_time": "10:00",
            "end_time": "11:00",
            "repeat": "",
        },
    )
    assert resp.status == 303, resp.status
    _, page = alice.get("/calendar?view=month&date=2026-12-24")
    m = re.search(r'/calendar/event\?(cal=[^"]*href=[^"]+)"', page)
    assert m, page[-2000:]
    query = m.group(1).replace("&amp;", "&")
    params = dict(urllib.parse.parse_qsl(query))
    resp, page = bob.get("/calendar/event?" + query)
    assert resp.status in (403, 404) and "secret" not in page, resp.status
    resp, _ = post(bob, "/calendar/event/delete", {"cal": params["cal"], "href": params["href"]})
    assert resp.status in (403, 404), resp.status
    resp, _ = post(bob, "/calendar/event", {**params, "title": "pwned", "start_date": "2026-12-24"})
    assert resp.status in (403, 404), resp.status
    resp, page = alice.get("/calendar/event?" + query)
    assert resp.status == 200 and "secret plans" in page and "pwned" not in page
    # contacts
    alice.get("/contacts")
    resp, _ = post(alice, "/contacts/edit", {"book": f"{ALICE}/contacts", "given": "Carol", "family": "Secret"})
    assert resp.status == 303, resp.status
    cquery = urllib.parse.urlsplit(resp.headers["Location"]).query
    cparams = dict(urllib.parse.parse_qsl(cquery))
    for path in ("/contacts/contact?" + cquery, "/contacts/edit?" + cquery):
        resp, page = bob.get(path)
        assert resp.status in (403, 404) and "Secret" not in page, (path, resp.status)
    resp, _ = post(bob, "/contacts/delete", {"book": cparams["book"], "href": cparams["href"]})
    assert resp.status in (403, 404), resp.status
    assert alice.get("/contacts/contact?" + cquery)[0].status == 200


def test_another_users_chat_messages(srv):
    alice, bob = login(srv, ALICE), login(srv, BOB)
    resp, _ = post(alice, "/chat/dm", {"user": "owner"})
    assert resp.status == 303, resp.status
    resp, _ = post(alice, "/chat/send", {"to": "owner", "text": SECRET})
    assert resp.status in (200, 303), resp.status
    _, page = alice.get("/chat/dm/owner")
    msgids = re.findall(r"/chat/m/([^/\"]+)/edit", page)
    assert msgids, page[-2000:]
    for to in ("owner", "alice", "alice\nowner", "owner\nalice"):
        q = urllib.parse.urlencode({"to": to})
        for path in (f"/chat/older?{q}&before=zzzzzzzz", f"/chat/compose?{q}"):
            resp, page = bob.get(path)
            assert "secret plans" not in page, (path, resp.status)
    assert "secret plans" not in bob.get("/chat/search?q=secret")[1]
    for msgid in msgids:
        assert bob.get(f"/chat/m/{msgid}/edit")[0].status in (403, 404)
        for action, form in (("edit", {"text": "pwned"}), ("delete", {}), ("react", {"reaction": "+1"})):
            resp, page = post(bob, f"/chat/m/{msgid}/{action}", form)
            assert resp.status in (403, 404), (action, resp.status)
            assert "secret plans" not in page
    _, page = alice.get("/chat/dm/owner")
    assert "secret plans" in page and "pwned" not in page


# -- CSRF, sessions, cookies -------------------------------------------------------------------


def test_csrf_token_must_be_this_sessions(srv):
    alice, bob = login(srv, ALICE), login(srv, BOB)
    alice.get("/account")
    bob.get("/account")
    target = "/account/language"
    assert bob.request("POST", target, form={"language": "fr"})[0].status == 403
    assert bob.request("POST", target, form={"language": "fr", "csrf": alice.csrf})[0].status == 403
    headers = {"X-CSRF-Token": alice.csrf}
    assert bob.request("POST", target, form={"language": "fr"}, headers=headers)[0].status == 403
    assert bob.request("POST", target, form={"language": "fr", "csrf": ""})[0].status == 403
    assert 'lang="en"' in bob.get("/account")[1]  # nothing changed
    # and every unsafe route of the tables refuses a session without its token
    for method, path, _access in table():
        if method in ("GET", "ANY", "PROPFIND") or path == "/login":
            continue
        resp, _ = bob.request(method, concrete(path), form={"csrf": alice.csrf})
        assert resp.status == 403, (method, path, resp.status)


def test_a_stolen_session_id_dies_with_logout_and_password_change(srv):
    """A copied session id (a shared computer, a leaked cookie) stops working once its owner
    signs out, and every other session of an account ends when its password changes."""
    new_pw = "another long passphrase 2"
    from gk import config
    from gk.context import open_accounts

    accounts = open_accounts(config.load(srv.data_dir), srv.data_dir)
    accounts.add_user("carol@test.example", PW)
    accounts.db.close()
    first, second = Client(srv), Client(srv)
    first.login("carol@test.example", PW)
    second.login("carol@test.example", PW)
    first.get("/account")
    thief = Client(srv)
    thief.cookies["gk_session"] = first.session_id()
    assert thief.get("/account")[0].status == 200
    resp, _ = first.request("POST", "/logout", form={"csrf": first.csrf})
    assert resp.status == 303
    assert thief.get("/account")[0].status == 303  # the copy died with the sign-out
    thief.cookies["gk_session"] = second.session_id()
    assert thief.get("/account")[0].status == 200
    third = Client(srv)
    third.login("carol@test.example", PW)
    third.get("/account")
    form = {"current": PW, "password": new_pw, "password2": new_pw, "csrf": third.csrf}
    resp, _ = third.request("POST", "/account/password", form=form)
    assert resp.status == 303, resp.status
    assert thief.get("/account")[0].status == 303  # every other session ended
    assert second.get("/account")[0].status == 303
    assert third.get("/account")[0].status == 200  # the one that changed it stays


def test_session_fixation_and_cookie_flags_over_https(srv):
    c = Client(srv, https=True)
    resp, _ = c.get("/login")
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("__Host-gk_session=")
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= flags
    planted = c.session_id()
    resp, _ = c.post("/login", {"address": ALICE, "password": PW})
    assert resp.status == 303
    assert c.session_id() and c.session_id() != planted
    cookies = [v for v in resp.headers.get_all("Set-Cookie") if v.startswith("__Host-gk_session=")]
    assert cookies and {"secure", "httponly", "samesite=lax"} <= {f.strip().lower() for f in cookies[0].split(";")}
    # the id the attacker planted before the login opens nothing after it
    attacker = Client(srv, https=True)
    attacker.cookies["__Host-gk_session"] = planted
    resp, _ = attacker.get("/account")
    assert resp.status == 303 and "/login" in resp.headers["Location"]
    # an id the attacker made up is never taken: the server issues its own
    made_up = Client(srv, https=True)
    made_up.cookies["__Host-gk_session"] = "attacker-chosen-session-id"
    made_up.get("/login")
    assert made_up.session_id() != "attacker-chosen-session-id"
    # a session issued over plain HTTP opens nothing over HTTPS
    http = login(srv, ALICE)
    crossed = Client(srv, https=True)
    crossed.cookies["__Host-gk_session"] = http.session_id()
    assert crossed.get("/account")[0].status == 303


def test_every_page_carries_the_csp_and_security_headers(srv):
    """Each GET route of the tables, as the administrator: an HTML answer runs only the box's own
    scripts and is never framed by another site (the mail body's frame has its own, stricter
    policy: test_web_attack_content.py)."""
    owner = login(srv, OWNER)
    seen = 0
    for method, path, _access in table():
        if method != "GET" or path in ("/mail/body", "/mail/part", "/chat/ws") or "stream" in path:
            continue
        resp, _ = owner.get(concrete(path))
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        if not resp.headers.get("Content-Type", "").startswith("text/html"):
            continue
        seen += 1
        policy = {d.strip() for d in resp.headers["Content-Security-Policy"].split(";")}
        assert {"script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"} <= policy, path
        assert resp.headers["X-Frame-Options"] == "DENY", path
        assert resp.headers["Cache-Control"] == "no-store", path
    assert seen > 30


def test_another_users_assistant_tool_servers(srv):
    from support.ports import free_port

    # the owner's: only an administrator's tool servers may be on the box or the LAN (a member's
    # at 127.0.0.1 is refused before it is kept), and nothing may listen for the entry to stay
    alice, bob = login(srv, OWNER), login(srv, BOB)
    alice.get("/assistant/tools")
    url = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens: the listing fails, the entry stays
    resp, _ = post(alice, "/assistant/tools/servers", {"name": "alicetools", "url": url, "token": "alice-secret"})
    assert resp.status in (200, 303), resp.status
    _, page = alice.get("/assistant/tools")
    ids = re.findall(r"/assistant/tools/servers/(\d+)/remove", page)
    assert ids and "alicetools" in page
    bob.get("/assistant/tools")
    for sid in ids:
        for action in ("refresh", "remove"):
            resp, page = post(bob, f"/assistant/tools/servers/{sid}/{action}", {"confirm": "1"})
            assert resp.status == 404, (action, resp.status)
    assert "alicetools" not in bob.get("/assistant/tools")[1]
    assert re.findall(r"/assistant/tools/servers/(\d+)/remove", alice.get("/assistant/tools")[1]) == ids
    # another user's OAuth grant: not found, whatever the id
    for grant in ("1", "2", "999"):
        assert post(bob, f"/account/oauth/{grant}/revoke", {})[0].status == 404
