"""The mail REST API at ``/api/v1`` of a real ``gk serve``, driven with ``requests``; every
request and response (errors included) validated against ``/api/v1/openapi.json`` by
openapi-core (a maintained OpenAPI 3.1 validator).

Two users with their own mail, tokens made with the real ``gk token add``: bob's token never
reaches alice's messages (404, and alice's message unchanged), a read-only token never writes,
a token without ``mail`` scopes reads nothing, a session cookie alone opens nothing.
"""

from __future__ import annotations

import base64
import time

import pytest

openapi_core = pytest.importorskip("openapi_core", reason="the `test` extra is not installed (make setup)")
requests = pytest.importorskip("requests")
from openapi_core import OpenAPI  # noqa: E402
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse  # noqa: E402
from openapi_spec_validator import validate as validate_spec  # noqa: E402
from support.gkserver import GKServer, gk  # noqa: E402
from support.messages import drop_in_maildir  # noqa: E402
from support.ports import free_port  # noqa: E402

ALICE, BOB = "alice@test.example", "bob@test.example"
NO_MAIL = {"smtp": {"port": 0, "submission_port": 0, "submissions_port": 0}, "imap": {"port": 0, "tls_port": 0}}
PDF = b"%PDF-1.4 pretend report \x00\x01\x02 end"


def plain(sender: str, to: str, subject: str, body: str) -> str:
    return (
        f"From: Sender <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{abs(hash(subject))}@t.example>\r\n"
        f"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    )


def rich(sender: str, to: str, subject: str) -> str:
    b64 = base64.b64encode(PDF).decode()
    return (
        f"From: {sender}\r\nTo: {to}\r\nCc: Carol <carol@else.example>\r\nSubject: {subject}\r\n"
        "Message-ID: <rich-1@t.example>\r\nDate: Sun, 29 Nov 2026 11:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
        '--XX\r\nContent-Type: multipart/alternative; boundary="YY"\r\n\r\n'
        "--YY\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe report is attached, Alice.\r\n"
        "--YY\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>The <b>report</b> is attached, Alice.</p>\r\n"
        "--YY--\r\n"
        '--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="report.pdf"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--XX--\r\n"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from gk import claim

    # remote mail waits in the queue: its relay is a closed loopback port (connection refused)
    relay = {"smarthost": "127.0.0.1", "smarthost_port": free_port(), "smarthost_tls": "none"}
    # the assistant on (no model: its /v1 API answers, nothing is loaded) for the scope checks of /v1
    srv = GKServer(tmp_path_factory.mktemp("api") / "gk", {**NO_MAIL, "queue": relay})
    srv.write_config()
    srv.add_user(ALICE, "correct horse battery", admin=True)
    srv.add_user(BOB, "correct horse battery")
    claim.complete(srv.data_dir)
    drop_in_maildir(srv, ALICE, plain("carol@else.example", ALICE, "Budget meeting", "The budget is due Friday."))
    drop_in_maildir(srv, ALICE, rich("dave@else.example", ALICE, "Quarterly report"))
    for i in range(7):
        drop_in_maildir(srv, ALICE, plain("news@else.example", ALICE, f"Newsletter {i}", f"issue {i}"), seen=True)
    drop_in_maildir(srv, BOB, plain("frank@else.example", BOB, "Bob's parcel", "Your parcel ships tomorrow."))

    def token(user: str, *scope: str) -> str:
        args = ("--scope", ",".join(scope)) if scope else ()
        return gk(srv.data_dir, "token", "add", user, *args, "--label", "api tests").stdout.strip()

    srv.tokens = {
        "alice": token(ALICE, "mail"),
        "bob": token(BOB, "mail:write"),
        "alice_read": token(ALICE, "mail:read"),
        "alice_ai": token(ALICE),
        "alice_chat": token(ALICE, "mcp,chat:read"),
    }
    srv.start()
    srv.base = f"http://127.0.0.1:{srv.port('http.port')}/api/v1"
    srv.spec_doc = requests.get(srv.base + "/openapi.json", timeout=30).json()
    srv.spec = OpenAPI.from_dict(srv.spec_doc)
    yield srv
    srv.stop()


def api(srv: GKServer, method: str, path: str, who: str | None = "alice", **kw) -> requests.Response:  # type: ignore[no-untyped-def]
    """One request, its request and response validated against the OpenAPI description."""
    headers = kw.pop("headers", {})
    if who is not None:
        headers["Authorization"] = f"Bearer {srv.tokens[who]}"
    resp = requests.request(method, srv.base + path, headers=headers, timeout=60, **kw)
    srv.spec.validate_response(RequestsOpenAPIRequest(resp.request), RequestsOpenAPIResponse(resp))
    return resp


def ids_by_subject(srv: GKServer, who: str = "alice", folder: str = "INBOX") -> dict[str, str]:
    listed = api(srv, "GET", "/messages", who, params={"folder": folder, "limit": 500}).json()
    return {m["subject"]: m["id"] for m in listed["messages"]}


# -- the description ----------------------------------------------------------------------------


def test_openapi_description_is_valid_31_and_public(server):
    resp = requests.get(server.base + "/openapi.json", timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/json")
    doc = resp.json()
    assert doc["openapi"].startswith("3.1")
    validate_spec(doc)  # raises on an invalid document
    assert {"/folders", "/messages", "/messages/{mid}", "/send", "/queue"} <= set(doc["paths"])


# -- reading ------------------------------------------------------------------------------------


def test_folders_with_counts(server):
    folders = {f["name"]: f for f in api(server, "GET", "/folders").json()["folders"]}
    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= set(folders)
    assert folders["Sent"]["special_use"] == "\\Sent"
    assert folders["INBOX"]["messages"] >= 9 and folders["INBOX"]["unread"] >= 2


def test_list_is_paged_newest_first(server):
    first = api(server, "GET", "/messages", params={"limit": 3}).json()
    second = api(server, "GET", "/messages", params={"limit": 3, "offset": 3}).json()
    assert first["total"] == second["total"] >= 9
    assert len(first["messages"]) == len(second["messages"]) == 3
    uids = [m["uid"] for m in first["messages"] + second["messages"]]
    assert uids == sorted(uids, reverse=True) and len(set(uids)) == 6
    unread = api(server, "GET", "/messages", params={"unread": "true"}).json()
    assert {m["subject"] for m in unread["messages"]} >= {"Budget meeting", "Quarterly report"}
    assert all(not m["seen"] for m in unread["messages"])


def test_search_finds_body_text(server):
    found = api(server, "GET", "/messages", params={"q": "budget"}).json()
    assert [m["subject"] for m in found["messages"]] == ["Budget meeting"] and found["total"] == 1
    assert "due Friday" in found["messages"][0]["snippet"]
    assert api(server, "GET", "/messages", params={"q": "no-such-word-anywhere"}).json()["total"] == 0


def test_read_gives_headers_bodies_and_attachments_and_downloads_them(server):
    mid = ids_by_subject(server)["Quarterly report"]
    msg = api(server, "GET", f"/messages/{mid}").json()
    assert msg["from"] == [{"name": "", "address": "dave@else.example"}]
    assert msg["cc"] == [{"name": "Carol", "address": "carol@else.example"}]
    assert msg["message_id"] == "<rich-1@t.example>"
    assert "The report is attached" in msg["text"] and "<b>report</b>" in msg["html"]
    assert any(h["name"] == "Subject" and h["value"] == "Quarterly report" for h in msg["headers"])
    (att,) = msg["attachments"]
    assert att["name"] == "report.pdf" and att["type"] == "application/pdf" and att["size"] == len(PDF)
    got = api(server, "GET", f"/messages/{mid}/attachments/{att['part']}")
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["Content-Type"] == "application/pdf" and "report.pdf" in got.headers["Content-Disposition"]
    raw = api(server, "GET", f"/messages/{mid}/raw")
    assert raw.headers["Content-Type"] == "message/rfc822" and b"Subject: Quarterly report" in raw.content
    assert api(server, "GET", f"/messages/{mid}/attachments/9").status_code == 404


# -- changing -----------------------------------------------------------------------------------


def test_flag_move_and_delete(server):
    drop_in_maildir(server, ALICE, plain("x@else.example", ALICE, "Disposable", "to be moved"))
    mid = ids_by_subject(server)["Disposable"]
    flagged = api(server, "POST", f"/messages/{mid}/flags", json={"add": ["\\Flagged", "\\Seen", "work"]}).json()
    assert flagged["flagged"] and flagged["seen"] and "work" in flagged["flags"]
    unflagged = api(server, "POST", f"/messages/{mid}/flags", json={"remove": ["\\Flagged"]}).json()
    assert not unflagged["flagged"] and unflagged["seen"]
    moved = api(server, "POST", f"/messages/{mid}/move", json={"folder": "Archive"}).json()
    assert moved["folder"] == "Archive" and moved["id"] != mid
    assert api(server, "GET", f"/messages/{mid}").status_code == 404  # the old id is gone
    assert api(server, "GET", f"/messages/{moved['id']}").json()["subject"] == "Disposable"
    gone = api(server, "DELETE", f"/messages/{moved['id']}").json()
    assert gone == {"deleted": True, "permanent": False}
    trash_id = ids_by_subject(server, folder="Trash")["Disposable"]
    assert api(server, "DELETE", f"/messages/{trash_id}").json() == {"deleted": True, "permanent": True}
    assert "Disposable" not in ids_by_subject(server, folder="Trash")
    assert api(server, "POST", f"/messages/{trash_id}/move", json={"folder": "INBOX"}).status_code == 404
    bad = api(server, "POST", f"/messages/{ids_by_subject(server)['Budget meeting']}/move", json={"folder": "Nope"})
    assert bad.status_code == 404 and "Nope" in bad.json()["error"]["message"]


def test_send_to_a_local_user_delivers_and_keeps_a_sent_copy(server):
    report = base64.b64encode(b"col1,col2\n1,2\n").decode()
    body = {
        "to": [BOB],
        "subject": "Lunch on Friday?",
        "text": "Shall we?",
        "html": "<p>Shall <i>we</i>?</p>",
        "attachments": [{"filename": "menu.csv", "content_type": "text/csv", "content_base64": report}],
    }
    sent = api(server, "POST", "/send", json=body)
    assert sent.status_code == 200, sent.text
    out = sent.json()
    assert out["delivered"] == [BOB] and out["queued"] == [] and out["sent_id"]
    assert api(server, "GET", f"/messages/{out['sent_id']}").json()["subject"] == "Lunch on Friday?"
    deadline = time.monotonic() + 60
    while "Lunch on Friday?" not in (got := ids_by_subject(server, "bob")) and time.monotonic() < deadline:
        time.sleep(0.5)
    msg = api(server, "GET", f"/messages/{got['Lunch on Friday?']}", "bob").json()
    assert msg["from"][0]["address"] == ALICE and "<i>we</i>" in msg["html"]
    assert [a["name"] for a in msg["attachments"]] == ["menu.csv"]
    # bob answers it: threading headers, and his copy is marked answered
    reply = api(server, "POST", "/send", "bob", json={"to": ALICE, "subject": "Re: Lunch", "text": "Yes",
                                                      "in_reply_to": msg["id"]})  # fmt: skip
    assert reply.status_code == 200
    assert "\\Answered" in api(server, "GET", f"/messages/{msg['id']}", "bob").json()["flags"]


def test_send_refusals_are_clear(server):
    assert api(server, "POST", "/send", json={"subject": "no one"}).status_code == 400
    bad = api(server, "POST", "/send", json={"to": ["nobody@test.example"], "text": "hi"})
    assert bad.status_code == 422 and "nobody@test.example" in bad.json()["error"]["message"]
    bad = api(server, "POST", "/send", json={"to": [BOB], "attachments": [{"filename": "a", "content_base64": "!!"}]})
    assert bad.status_code == 400 and "base64" in bad.json()["error"]["message"]
    for header_trick in ({"to": [BOB], "subject": "hi\r\nBcc: eve@far.example"},
                         {"to": [BOB + "\r\nBcc: eve@far.example"]}):  # fmt: skip
        resp = api(server, "POST", "/send", json={**header_trick, "text": "x"})
        assert resp.status_code == 400, resp.text


def test_queue_is_for_admins_and_shows_remote_mail(server):
    sent = api(server, "POST", "/send", json={"to": ["someone@far.example"], "subject": "Far away", "text": "hi"})
    assert sent.status_code == 202 and sent.json()["queued"] == ["someone@far.example"]
    queue = api(server, "GET", "/queue").json()
    assert queue["enabled"]
    mine = [m for m in queue["messages"] if m["id"] == sent.json()["queue_id"]]
    assert mine and mine[0]["recipients"][0]["address"] == "someone@far.example"
    refused = api(server, "GET", "/queue", "bob")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


# -- authorization ------------------------------------------------------------------------------


def test_another_users_message_is_not_found(server):
    mid = ids_by_subject(server)["Budget meeting"]
    before = api(server, "GET", f"/messages/{mid}").json()
    for method, path, body in (
        ("GET", f"/messages/{mid}", None),
        ("GET", f"/messages/{mid}/raw", None),
        ("GET", f"/messages/{mid}/attachments/1", None),
        ("POST", f"/messages/{mid}/flags", {"add": ["\\Flagged"]}),
        ("POST", f"/messages/{mid}/move", {"folder": "Trash"}),
        ("DELETE", f"/messages/{mid}", None),
    ):
        resp = api(server, method, path, "bob", json=body)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "not_found" and "Budget" not in resp.text
    # bob's own message, with alice's UID and folder: still alice's id means nothing to bob
    bob_mid = ids_by_subject(server, "bob")["Bob's parcel"]
    assert api(server, "GET", f"/messages/{bob_mid}", "alice").status_code == 404
    assert "Budget meeting" not in ids_by_subject(server, "bob")
    after = api(server, "GET", f"/messages/{mid}").json()
    assert after["flags"] == before["flags"] and after["folder"] == "INBOX"


def test_scopes_are_enforced(server):
    mid = ids_by_subject(server)["Budget meeting"]
    assert api(server, "GET", "/folders", "alice_read").status_code == 200
    for method, path, body in (
        ("POST", "/send", {"to": [BOB], "text": "x"}),
        ("POST", f"/messages/{mid}/flags", {"add": ["\\Flagged"]}),
        ("POST", f"/messages/{mid}/move", {"folder": "Trash"}),
        ("DELETE", f"/messages/{mid}", None),
    ):
        resp = api(server, method, path, "alice_read", json=body)
        assert resp.status_code == 403, (method, path)
        assert resp.json()["error"]["code"] == "insufficient_scope"
        assert 'scope="mail:write"' in resp.headers["WWW-Authenticate"]
    for who in ("alice_ai", "alice_chat"):  # tokens without any mail scope read nothing
        resp = api(server, "GET", "/folders", who)
        assert resp.status_code == 403 and "mail:read" in resp.json()["error"]["message"]
    me = api(server, "GET", "/me", "alice_read").json()
    assert me == {"address": ALICE, "admin": True, "scopes": ["mail:read"]}


def test_v1_takes_only_tokens_with_the_ai_scope(server):
    models = f"http://127.0.0.1:{server.port('http.port')}/v1/models"
    for who, status in (("alice_ai", 200), ("alice", 401), ("alice_read", 401), ("alice_chat", 401)):
        resp = requests.get(models, headers={"Authorization": f"Bearer {server.tokens[who]}"}, timeout=60)
        assert resp.status_code == status, (who, resp.text)


def test_missing_or_bad_tokens_and_cookies_are_401(server):
    for headers in ({}, {"Authorization": "Bearer gk-not-a-token"}, {"Authorization": "Basic YWxpY2U6eA=="}):
        resp = api(server, "GET", "/folders", None, headers=headers)
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    # a signed-in browser's session cookie opens nothing here (no CSRF exposure)
    web, _csrf = browser(server, ALICE)
    assert web.get(server.base + "/folders", timeout=30).status_code == 401
    assert web.post(server.base + "/send", json={"to": [BOB], "text": "csrf"}, timeout=30).status_code == 401


def csrf_of(page: str) -> str:
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0] if 'name="csrf"' in page else ""


def browser(srv: GKServer, address: str) -> tuple[requests.Session, str]:
    """A signed-in web session and the CSRF token of its account page."""
    web = requests.Session()
    site = f"http://127.0.0.1:{srv.port('http.port')}"
    form = web.get(site + "/login", timeout=30).text
    web.post(site + "/login", data={"address": address, "password": "correct horse battery", "csrf": csrf_of(form)},
             timeout=30)  # fmt: skip
    page = web.get(site + "/account", timeout=30, allow_redirects=False)
    assert page.status_code == 200
    return web, csrf_of(page.text)


def test_tokens_are_made_and_revoked_on_the_account_page(server):
    import re

    site = f"http://127.0.0.1:{server.port('http.port')}"
    web, csrf = browser(server, ALICE)
    form = {"csrf": csrf, "label": "phone app", "mail": "write", "chat": "read", "calendar": "", "mcp": "1"}
    made = web.post(site + "/account/tokens", data=form, timeout=30)
    assert made.status_code == 200
    token = re.search(r'id="new-api-token">([^<]+)<', made.text).group(1)
    assert token.startswith("gk-") and "Mail: read and write" in made.text and "Chat: read only" in made.text
    me = requests.get(server.base + "/me", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    assert me["scopes"] == ["chat:read", "mail:read", "mail:write", "mcp"]
    listing = gk(server.data_dir, "token", "list", ALICE).stdout
    assert "phone app" in listing and "mcp,mail:read,mail:write,chat:read" in listing and token not in listing
    again = web.get(site + "/account", timeout=30).text
    assert "phone app" in again and token not in again  # shown once
    ids = re.findall(r'action="/account/tokens/(\d+)/delete"', again)
    assert ids
    mine = ids[-1]
    # without the CSRF token, or from bob's session: refused, the token still works
    assert web.post(site + f"/account/tokens/{mine}/delete", data={}, timeout=30).status_code == 403
    bob, bob_csrf = browser(server, BOB)
    assert bob.post(site + f"/account/tokens/{mine}/delete", data={"csrf": bob_csrf}, timeout=30).status_code == 404
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(server.base + "/folders", headers=auth, timeout=30).status_code == 200
    kept = web.post(site + f"/account/tokens/{mine}/delete", data={"csrf": csrf}, timeout=30)
    assert kept.status_code == 400  # a removal needs its ticked "confirm" box
    gone = web.post(site + f"/account/tokens/{mine}/delete", data={"csrf": csrf, "confirm": "1"}, timeout=30)
    assert gone.status_code == 200 and "phone app" not in gone.text  # redirected to the account page
    assert requests.get(server.base + "/folders", headers=auth, timeout=30).status_code == 401
    empty = web.post(site + "/account/tokens", data={"csrf": csrf, "label": "nothing"}, timeout=30)
    assert empty.status_code == 400 and "at least one access" in empty.text


def test_bad_input_gets_json_errors(server):
    auth = {"Authorization": f"Bearer {server.tokens['alice']}"}
    mid = ids_by_subject(server)["Budget meeting"]
    for method, path, kw, status in (
        ("POST", f"/messages/{mid}/flags", {"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", f"/messages/{mid}/flags", {"data": "add=x", "headers": {"Content-Type": "text/plain"}}, 415),
        ("POST", f"/messages/{mid}/flags", {"json": {"add": ["bad flag"]}}, 400),
        ("POST", f"/messages/{mid}/flags", {"json": ["\\Seen"]}, 400),
        ("GET", "/messages", {"params": {"limit": "0"}}, 400),
        ("GET", "/messages", {"params": {"limit": "many"}}, 400),
        ("GET", "/messages", {"params": {"folder": "Nope"}}, 404),
        ("GET", "/messages/not-an-id", {}, 404),
        ("GET", "/messages/SU5CT1g.1.1.0000000000", {}, 404),
        ("GET", "/no-such-endpoint", {}, 404),
        ("PUT", "/folders", {}, 405),
    ):
        headers = {**auth, **kw.pop("headers", {})}
        resp = requests.request(method, server.base + path, headers=headers, timeout=30, **kw)
        assert resp.status_code == status, (method, path, resp.status_code, resp.text)
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.json()["error"]["message"]
