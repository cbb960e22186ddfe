"""The side-effect tools of ``/mcp`` against a real ``gk serve``: the official ``mcp`` SDK as the
client of two users, the web UI (cookie + CSRF, as a browser) as the only place an action is
approved, IMAP (imaplib over TLS) and ``gk chat history`` to see what really happened.

A write tool only queues; nothing is delivered, moved or posted until the owner approves in
their own web session; another user's session, a request with the MCP bearer token and a
replay all fail; every call is in the audit log.
"""

from __future__ import annotations

import base64
import imaplib
import json
import re
import sqlite3
import time

import pytest

pytest.importorskip("mcp", reason="the `test` extra is not installed (make setup installs it)")
from support.gkserver import GKServer, gk
from support.imap import tls_client_context
from test_mcp_server import call, drop_in_maildir, mail, post, rpc, session_run
from test_web_http import Client

ALICE, BOB, OWNER = "alice@test.example", "bob@test.example", "owner@test.example"
PASSWORD = "correct horse battery"
WRITE_TOOLS = {"mail_send", "mail_reply", "mail_move", "mail_flag", "mail_delete", "chat_post"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from gk import claim

    srv = GKServer(
        tmp_path_factory.mktemp("mcpact") / "gk",
        {
            "smtp": {"port": 0, "submission_port": 0, "submissions_port": 0},
            "imap": {"port": 0},
            "ai": {"enabled": False},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
        },
    )
    srv.write_config()
    for user in (ALICE, BOB):
        srv.add_user(user, PASSWORD)
    srv.add_user(OWNER, PASSWORD, admin=True)
    claim.complete(srv.data_dir)
    drop_in_maildir(srv, ALICE, mail(BOB, ALICE, "Weekend plans", "Shall we hike on Saturday?"))
    srv.tokens = {
        user: gk(
            srv.data_dir, "token", "add", user, "--scope", "mcp,mail:write,chat:write", "--label", "tests"
        ).stdout.strip()
        for user in (ALICE, BOB)
    }
    srv.cal_tokens = {  # the calendar write tools need calendar:write
        user: gk(srv.data_dir, "token", "add", user, "--scope", "mcp,calendar:write", "--label", "cal").stdout.strip()
        for user in (ALICE, BOB)
    }
    srv.start()
    yield srv
    srv.stop()


def web(srv: GKServer, address: str) -> Client:
    c = Client(srv)
    c.login(address, PASSWORD)
    return c


def imap(srv: GKServer, address: str) -> imaplib.IMAP4_SSL:
    conn = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imap.tls_port"), ssl_context=tls_client_context(), timeout=60)
    conn.login(address, PASSWORD)
    return conn


def subjects(srv: GKServer, address: str, folder: str) -> list[str]:
    conn = imap(srv, address)
    try:
        typ, _ = conn.select(f'"{folder}"', readonly=True)
        assert typ == "OK"
        _, data = conn.uid("SEARCH", "ALL")
        uids = data[0].split()
        out = []
        for uid in uids:
            _, msg = conn.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            out.append(msg[0][1].decode().split(":", 1)[1].strip())
        return out
    finally:
        conn.logout()


def uid_of(srv: GKServer, address: str, folder: str, subject: str) -> int:
    found = call(srv, srv.tokens[address], "mail_search", {"text": subject, "folder": folder})
    return found.structured_content["messages"][0]["uid"]


def queued(result) -> str:  # type: ignore[no-untyped-def]
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["status"] == "pending_approval"
    assert out["elicitation"]["mode"] == "url" and out["elicitation"]["url"] == out["approval_url"]
    assert "queued for approval" in result.content[0].text.lower() and out["action_id"] in result.content[0].text
    return out["action_id"]


def approve(c: Client, action_id: str, csrf: bool = True):  # type: ignore[no-untyped-def]
    c.get(f"/approvals/{action_id}")
    return c.post(f"/approvals/{action_id}/approve", {}, csrf=csrf)


def state(srv: GKServer, action_id: str) -> str:
    db = sqlite3.connect(srv.data_dir / "mcp.sqlite3")
    try:
        return db.execute("SELECT state FROM pending_actions WHERE id = ?", (action_id,)).fetchone()[0]
    finally:
        db.close()


def test_write_tools_are_listed_with_their_annotations(server):
    async def work(session):  # type: ignore[no-untyped-def]
        return await session.list_tools()

    _, listed = session_run(server, server.tokens[ALICE], work)
    tools = {t.name: t for t in listed.tools}
    assert WRITE_TOOLS <= set(tools)
    for name in WRITE_TOOLS:
        a = tools[name].annotations
        assert a.read_only_hint is False, name
        assert a.destructive_hint is (name == "mail_delete"), name
        assert a.open_world_hint is (name in {"mail_send", "mail_reply", "chat_post"}), name
        assert tools[name].output_schema["required"][:2] == ["status", "action_id"]
    jsonschema = pytest.importorskip("jsonschema")
    for name in WRITE_TOOLS:
        jsonschema.Draft202012Validator.check_schema(tools[name].input_schema)
        jsonschema.Draft202012Validator.check_schema(tools[name].output_schema)
    result = call(server, server.tokens[BOB], "mail_flag", {"folder": "Sent", "uids": [1], "flag": "seen"})
    assert result.is_error  # Bob's Sent is empty
    result = call(server, server.tokens[BOB], "chat_post", {"to": "alice", "text": "schema check"})
    jsonschema.validate(result.structured_content, tools["chat_post"].output_schema)
    _, out = post(server, rpc("tools/list"), headers={"Accept-Language": "fr"})
    titles = {t["name"]: t["title"] for t in out["result"]["tools"]}
    assert titles["mail_send"] == "Envoyer un courriel" and titles["chat_post"] == "Publier un message de discussion"


def test_send_waits_for_the_owners_click_in_their_own_web_session(server):
    result = call(server, server.tokens[ALICE], "mail_send",
                  {"to": [BOB], "subject": "Lunch at the usual place", "body": "Noon at the usual place?"})  # fmt: skip
    action = queued(result)
    url = result.structured_content["approval_url"]
    assert url == f"http://127.0.0.1:{server.port('http.port')}/approvals/{action}"
    # queued only: nothing delivered, nothing in Sent
    assert "Lunch at the usual place" not in subjects(server, BOB, "INBOX")
    assert "Lunch at the usual place" not in subjects(server, ALICE, "Sent")

    # another user's web session: as unknown as a made-up id, and nothing runs
    bob = web(server, BOB)
    resp, page = bob.get(f"/approvals/{action}")
    assert resp.status == 404 and "Lunch" not in page
    resp, _ = bob.post(f"/approvals/{action}/approve", {})
    assert resp.status == 404
    resp, _ = bob.post(f"/approvals/{action}/reject", {})
    assert resp.status == 404
    # anything an MCP client can send: its bearer token on the web route, JSON-RPC methods, tools
    resp, _ = Client(server).request(
        "POST", f"/approvals/{action}/approve", form={}, headers={"Authorization": f"Bearer {server.tokens[ALICE]}"}
    )
    assert resp.status == 403
    _, out = post(server, rpc("approvals/approve", {"id": action}))
    assert out["error"]["code"] == -32601
    _, out = post(server, rpc("tools/call", {"name": "approve", "arguments": {"id": action}}))
    assert out["error"]["code"] == -32602
    # the owner's own session without the CSRF token
    alice = web(server, ALICE)
    resp, _ = approve(alice, action, csrf=False)
    assert resp.status == 403
    assert state(server, action) == "pending"
    assert "Lunch at the usual place" not in subjects(server, BOB, "INBOX")

    # the owner sees the full payload, then approves
    _, page = alice.get("/approvals")
    assert f"/approvals/{action}" in page and "Lunch at the usual place" in page
    _, page = alice.get(f"/approvals/{action}")
    assert BOB in page and "Noon at the usual place?" in page and 'id="approve"' in page
    resp, page = approve(alice, action)
    assert resp.status == 200 and 'data-state="done"' in page
    assert subjects(server, BOB, "INBOX").count("Lunch at the usual place") == 1
    assert "Lunch at the usual place" in subjects(server, ALICE, "Sent")
    # executed once: a replay is refused and sends nothing more
    resp, page = alice.post(f"/approvals/{action}/approve", {})
    assert resp.status == 409 and 'data-state="done"' in page
    assert subjects(server, BOB, "INBOX").count("Lunch at the usual place") == 1
    # the nav badge counts what waits
    _, badge = alice.get("/approvals/count")
    assert badge == ""


def test_the_approval_page_shows_the_whole_message_with_its_attachments(server):
    drop_in_maildir(server, ALICE, mail("carol@else.example", ALICE, "Invoice 42", "Please pay."))
    uid = uid_of(server, ALICE, "INBOX", "Invoice 42")
    notes = base64.b64encode(b"hello notes").decode()
    action = queued(call(server, server.tokens[ALICE], "mail_send", {
        "to": [BOB], "cc": [OWNER], "subject": "Papers <b>here</b>", "body": "See attached <script>x()</script>",
        "attachments": [{"filename": "notes.txt", "content_type": "text/plain", "content_base64": notes}],
        "forward": [{"folder": "INBOX", "uid": uid}],
    }))  # fmt: skip
    alice = web(server, ALICE)
    _, page = alice.get(f"/approvals/{action}")
    assert f"{BOB}, {OWNER}" in page and "Papers &lt;b&gt;here&lt;/b&gt;" in page
    assert "See attached &lt;script&gt;x()&lt;/script&gt;" in page and "<script>x()" not in page
    assert "notes.txt (text/plain, 11 B)" in page
    assert "carol@else.example: Invoice 42 (message/rfc822" in page
    approve(alice, action)
    conn = imap(server, BOB)
    conn.select("INBOX", readonly=True)
    _, data = conn.uid("SEARCH", "SUBJECT", "Papers")
    _, structure = conn.uid("FETCH", data[0].split()[-1], "(BODYSTRUCTURE)")
    conn.logout()
    text = structure[0].decode()
    assert '"notes.txt"' in text and '"MESSAGE" "RFC822"' in text.upper()


def test_reply_flag_move_delete_after_approval(server):
    alice = web(server, ALICE)
    uid = uid_of(server, ALICE, "INBOX", "Weekend plans")
    action = queued(call(server, server.tokens[ALICE], "mail_reply",
                         {"folder": "INBOX", "uid": uid, "body": "Yes, let's go!"}))  # fmt: skip
    _, badge = alice.get("/approvals/count")
    assert '<span class="count" id="approvals-count">1</span>' == badge
    _, page = alice.get(f"/approvals/{action}")
    assert "Re: Weekend plans" in page and BOB in page
    approve(alice, action)
    assert "Re: Weekend plans" in subjects(server, BOB, "INBOX")
    conn = imap(server, BOB)
    conn.select("INBOX", readonly=True)
    _, data = conn.uid("SEARCH", "SUBJECT", '"Re: Weekend plans"')
    _, raw = conn.uid("FETCH", data[0].split()[0], "(BODY.PEEK[HEADER])")
    conn.logout()
    assert b"In-Reply-To: <" in raw[0][1]

    flag = queued(
        call(server, server.tokens[ALICE], "mail_flag", {"folder": "INBOX", "uids": [uid], "flag": "flagged"})
    )
    conn = imap(server, ALICE)
    conn.select("INBOX", readonly=True)
    _, flags = conn.uid("FETCH", str(uid), "(FLAGS)")
    assert b"\\Flagged" not in flags[0] and b"\\Answered" in flags[0]  # the reply marked it answered
    approve(alice, flag)
    _, flags = conn.uid("FETCH", str(uid), "(FLAGS)")
    conn.logout()
    assert b"\\Flagged" in flags[0]

    move = queued(
        call(server, server.tokens[ALICE], "mail_move", {"folder": "INBOX", "uids": [uid], "dest": "Archive"})
    )
    assert "Weekend plans" in subjects(server, ALICE, "INBOX")
    approve(alice, move)
    assert "Weekend plans" not in subjects(server, ALICE, "INBOX")
    assert "Weekend plans" in subjects(server, ALICE, "Archive")

    archived = uid_of(server, ALICE, "Archive", "Weekend plans")
    rejected = queued(call(server, server.tokens[ALICE], "mail_delete", {"folder": "Archive", "uids": [archived]}))
    _, page = alice.get(f"/approvals/{rejected}")
    resp, page = alice.post(f"/approvals/{rejected}/reject", {})
    assert resp.status == 200 and 'data-state="rejected"' in page
    resp, _ = approve(alice, rejected)
    assert resp.status == 409
    assert "Weekend plans" in subjects(server, ALICE, "Archive")
    delete = queued(call(server, server.tokens[ALICE], "mail_delete", {"folder": "Archive", "uids": [archived]}))
    approve(alice, delete)
    assert "Weekend plans" not in subjects(server, ALICE, "Archive")
    assert "Weekend plans" in subjects(server, ALICE, "Trash")


def test_an_action_on_a_message_that_changed_is_not_carried_out(server):
    drop_in_maildir(server, BOB, mail(ALICE, BOB, "Shifting sands", "this one moves away"))
    uid = uid_of(server, BOB, "INBOX", "Shifting sands")
    first = queued(call(server, server.tokens[BOB], "mail_move", {"folder": "INBOX", "uids": [uid], "dest": "Junk"}))
    second = queued(call(server, server.tokens[BOB], "mail_delete", {"folder": "INBOX", "uids": [uid]}))
    bob = web(server, BOB)
    approve(bob, first)
    resp, page = approve(bob, second)
    assert resp.status == 200 and 'data-state="failed"' in page and "no longer in INBOX" in page
    assert "Shifting sands" in subjects(server, BOB, "Junk")


def test_chat_post_appears_in_history_only_after_approval(server):
    def history() -> str:
        return gk(server.data_dir, "chat", "history", "alice,bob").stdout

    refused = call(server, server.tokens[ALICE], "chat_post", {"to": "nobody-here", "text": "hi"})
    assert refused.is_error and "nobody-here" in refused.content[0].text
    action = queued(call(server, server.tokens[ALICE], "chat_post", {"to": "bob", "text": "Approved hello 7731"}))
    assert "Approved hello 7731" not in history()
    alice = web(server, ALICE)
    _, page = alice.get(f"/approvals/{action}")
    assert "Approved hello 7731" in page
    resp, page = approve(alice, action)
    assert 'data-state="done"' in page
    assert "Approved hello 7731" in history()


def test_expired_actions_cannot_be_approved(server):
    action = queued(call(server, server.tokens[BOB], "mail_send", {"to": [ALICE], "subject": "Too late", "body": "x"}))
    db = sqlite3.connect(server.data_dir / "mcp.sqlite3")
    with db:
        db.execute("UPDATE pending_actions SET expires = ? WHERE id = ?", (time.time() - 1, action))
    db.close()
    bob = web(server, BOB)
    resp, page = approve(bob, action)
    assert resp.status == 409
    bob.get("/approvals")
    assert state(server, action) == "expired"
    assert "Too late" not in subjects(server, ALICE, "INBOX")
    # a month later its message is dropped; the page still says what it was
    db = sqlite3.connect(server.data_dir / "mcp.sqlite3")
    with db:
        db.execute("UPDATE pending_actions SET decided = ? WHERE id = ?", (time.time() - 40 * 86400, action))
    db.close()
    bob.get("/approvals")
    resp, page = bob.get(f"/approvals/{action}")
    assert resp.status == 200 and "no longer kept" in page and ALICE in page and "Too late" in page


def test_schema_invalid_arguments_get_the_specs_tool_error(server):
    for name, args in (
        ("mail_send", {"subject": "no recipient", "body": "x"}),
        ("mail_send", {"to": [], "subject": "s", "body": "x"}),
        ("mail_send", {"to": [BOB], "subject": "s", "body": "x", "bcc": [BOB]}),
        ("mail_flag", {"folder": "INBOX", "uids": [1], "flag": "deleted"}),
        ("mail_move", {"folder": "INBOX", "uids": [0], "dest": "Junk"}),
        ("mail_delete", {"folder": "INBOX", "uids": list(range(1, 200))}),
        ("chat_post", {"to": "bob", "text": ""}),
    ):
        _, out = post(server, rpc("tools/call", {"name": name, "arguments": args}, 11))
        assert out["result"]["isError"] is True and "structuredContent" not in out["result"], (name, args)
    # a bad address, a local user that does not exist: refused at once, nothing queued
    bad = call(server, server.tokens[ALICE], "mail_send", {"to": ["not an address"], "subject": "s", "body": "x"})
    assert bad.is_error
    ghost = call(server, server.tokens[ALICE], "mail_send", {"to": ["ghost@test.example"], "subject": "s", "body": "x"})
    assert ghost.is_error and "5.1.1" in ghost.content[0].text
    # another user's message is not found: alice cannot act on bob's mail by uid
    other = call(server, server.tokens[ALICE], "mail_delete", {"folder": "INBOX", "uids": [4000]})
    assert other.is_error


def test_every_call_is_audited_with_who_approved(server):
    call(server, server.tokens[BOB], "mail_list_folders", {})
    db = sqlite3.connect(server.data_dir / "mcp.sqlite3")
    db.row_factory = sqlite3.Row
    rows = db.execute(
        "SELECT c.*, a.decided_by, a.decided FROM tool_calls c LEFT JOIN pending_actions a ON a.id = c.action_id"
    ).fetchall()
    db.close()
    by_tool = {(r["address"], r["tool"], r["outcome"]) for r in rows}
    assert (BOB, "mail_list_folders", "ok") in by_tool
    assert (ALICE, "mail_send", "queued") in by_tool and (ALICE, "mail_send", "error") in by_tool
    sent = [r for r in rows if r["tool"] == "mail_send" and r["outcome"] == "queued" and r["address"] == ALICE]
    assert sent[0]["decided_by"] == ALICE and sent[0]["decided"] > 0 and sent[0]["result_chars"] > 0
    assert (
        json.loads(sent[0]["arguments"])["subject"] == "Lunch at the usual place"
        and len(sent[0]["arguments_sha256"]) == 64
    )
    assert all(r["via"] == "mcp" for r in rows)
    # each user sees their own calls; the administrator sees everyone's
    _, page = web(server, BOB).get("/approvals")
    assert "mail_list_folders" in page and "mail_reply" not in page
    resp, _ = web(server, BOB).get("/admin/audit")
    assert resp.status == 403
    resp, page = web(server, OWNER).get("/admin/audit")
    assert resp.status == 200 and ALICE in page and BOB in page and re.search(r"mail_send", page)


def test_the_approval_pages_in_french(server):
    from test_web_french import FR, assert_french, catalog_english

    known = catalog_english()
    alice = web(server, ALICE)
    action = queued(call(server, server.tokens[ALICE], "mail_send", {"to": [BOB], "subject": "Bonjour", "body": "x"}))
    _, page = alice.get(f"/approvals/{action}", headers=FR)
    assert_french(page, "Envoyer un courriel", "en attente d’approbation", "Approuver", "Refuser", known=known)
    resp, page = alice.request("POST", f"/approvals/{action}/reject", form={"csrf": alice.csrf}, headers=FR)
    assert_french(page, "Refusée : rien n’a été fait.", known=known)
    _, page = alice.get("/approvals", headers=FR)
    assert_french(page, "Approbations", "Vos appels d’outils", "refusée", known=known)
    _, page = web(server, OWNER).get("/admin/audit", headers=FR)  # its arguments column is the calls' own data
    assert "Appels d’outils" in page and "Décidée par" in page and "mis en attente" in page


def test_a_queued_action_survives_kill_9_and_is_approved_once_after(server):
    """Last in this module: it restarts the server."""
    action = queued(call(server, server.tokens[BOB], "chat_post", {"to": "alice", "text": "After the crash 5150"}))
    server.kill9()
    server.start()
    bob = web(server, BOB)
    _, page = bob.get(f"/approvals/{action}")
    assert "After the crash 5150" in page and 'data-state="pending"' in page
    resp, page = approve(bob, action)
    assert 'data-state="done"' in page
    assert gk(server.data_dir, "chat", "history", "alice,bob").stdout.count("After the crash 5150") == 1


# -- calendar_create_event / calendar_update_event / calendar_cancel_event ---------------------------
CAL_TOOLS = {"calendar_create_event", "calendar_update_event", "calendar_cancel_event"}


def events_on(srv: GKServer, address: str, day: str) -> list[dict]:
    out = call(srv, srv.cal_tokens[address], "calendar_list_events", {"start": day, "end": day + "T23:59"})
    assert not out.is_error, out.content
    return out.structured_content["events"]


def eventually_subject(srv: GKServer, address: str, subject: str, count: int = 1) -> None:
    deadline = time.monotonic() + 90
    while subjects(srv, address, "INBOX").count(subject) < count:
        assert time.monotonic() < deadline, (subject, subjects(srv, address, "INBOX"))
        time.sleep(0.5)


def test_calendar_write_tools_need_calendar_write(server):
    async def work(session):  # type: ignore[no-untyped-def]
        return await session.list_tools()

    _, without = session_run(server, server.tokens[ALICE], work)
    assert not CAL_TOOLS & {t.name for t in without.tools}
    with pytest.raises(BaseExceptionGroup) as info:
        call(server, server.tokens[ALICE], "calendar_create_event", {"title": "x", "start": "2026-12-01"})
    assert "insufficient scope" in repr(info.value) or "403" in repr(info.value), repr(info.value)
    _, listed = session_run(server, server.cal_tokens[ALICE], work)
    tools = {t.name: t for t in listed.tools}
    assert CAL_TOOLS <= set(tools)
    for name in CAL_TOOLS:
        a = tools[name].annotations
        assert a.read_only_hint is False and a.open_world_hint is True, name
        assert a.destructive_hint is (name == "calendar_cancel_event"), name
        assert a.idempotent_hint is (name != "calendar_create_event"), name
    _, out = post(server, rpc("tools/list"), token=server.cal_tokens[ALICE], headers={"Accept-Language": "fr"})
    titles = {t["name"]: t["title"] for t in out["result"]["tools"]}
    assert titles["calendar_create_event"] == "Créer un événement d'agenda"
    # bad input is the tool's error at once, nothing queued
    for args in ({"title": "x", "start": "2026-12-01T10:00", "end": "2026-12-01T09:00"},
                 {"title": "x", "start": "tomorrow"}, {"title": "x", "start": "2026-12-01", "calendar": "nope"},
                 {"title": "x", "start": "2026-12-01", "attendees": ["not an address"]}):  # fmt: skip
        refused = call(server, server.cal_tokens[ALICE], "calendar_create_event", args)
        assert refused.is_error, args
    # an all-day event is shown as such on the approval page
    action = queued(call(server, server.cal_tokens[ALICE], "calendar_create_event",
                         {"title": "Holiday 5521", "start": "2026-12-21", "end": "2026-12-24"}))  # fmt: skip
    _, page = web(server, ALICE).get(f"/approvals/{action}")
    assert "Holiday 5521" in page and "Mon December 21, 2026 → Wed December 23, 2026 (All day)" in page, page


def test_calendar_create_update_cancel_with_invitations_after_approval(server):
    day, alice, bob = "2026-12-10", web(server, ALICE), web(server, BOB)
    args = {"title": "Budget review", "start": f"{day}T14:00", "location": "Room 4", "attendees": [BOB]}
    action = queued(call(server, server.cal_tokens[ALICE], "calendar_create_event", args))
    assert events_on(server, ALICE, day) == []  # nothing until approved
    _, page = alice.get(f"/approvals/{action}")
    assert "Budget review" in page and "Room 4" in page and BOB in page
    assert "Thu December 10, 2026, 14:00 – 15:00 (UTC)" in page, page  # the reader's language and zone
    _, page = alice.get(f"/approvals/{action}", headers={"Accept-Language": "fr"})
    assert "jeu. 10 décembre 2026, 14:00 – 15:00" in page, page
    resp, _ = approve(bob, action)
    assert resp.status == 404 and state(server, action) == "pending"
    resp, page = approve(alice, action)
    assert resp.status == 200 and 'data-state="done"' in page, page
    [event] = events_on(server, ALICE, day)
    assert event["summary"] == "Budget review" and event["start"].startswith(f"{day}T14:00")
    assert event["end"].startswith(f"{day}T15:00") and event["location"] == "Room 4"
    eventually_subject(server, BOB, "Invitation: Budget review")
    uid = event["uid"]

    # bob cannot touch alice's event: not found, as a missing one — or, once the invitation is in his
    # own calendar (RFC 6638 implicit scheduling, gk.dav), an action on his copy queued for him
    for tool, extra in (("calendar_update_event", {"title": "Hijacked"}), ("calendar_cancel_event", {})):
        refused = call(server, server.cal_tokens[BOB], tool, {"uid": uid, **extra})
        text = refused.content[0].text
        assert (refused.is_error and "not found" in text) or (not refused.is_error and "Queued" in text), text
        if not refused.is_error and tool == "calendar_update_event":
            # an action on bob's own copy: alice cannot approve it, and bob's approval leaves hers alone
            mine = queued(refused)
            assert approve(alice, mine)[0].status == 404 and state(server, mine) == "pending"
            assert 'data-state="done"' in approve(bob, mine)[1]
            assert [e["summary"] for e in events_on(server, ALICE, day)] == ["Budget review"]

    # update: a new start keeps the hour's duration; nothing changes until approved
    moved = {"uid": uid, "title": "Budget review (moved)", "start": "2026-12-11T16:00"}
    action = queued(call(server, server.cal_tokens[ALICE], "calendar_update_event", moved))
    assert [e["summary"] for e in events_on(server, ALICE, day)] == ["Budget review"]
    resp, page = approve(alice, action)
    assert 'data-state="done"' in page, page
    assert events_on(server, ALICE, day) == []
    [event] = events_on(server, ALICE, "2026-12-11")
    assert event["summary"] == "Budget review (moved)" and event["uid"] == uid
    assert event["start"].startswith("2026-12-11T16:00") and event["end"].startswith("2026-12-11T17:00")
    eventually_subject(server, BOB, "Invitation: Budget review (moved)")

    # an action approved after the event changed elsewhere does nothing
    stale = queued(call(server, server.cal_tokens[ALICE], "calendar_cancel_event", {"uid": uid}))
    action = queued(call(server, server.cal_tokens[ALICE], "calendar_update_event", {"uid": uid, "location": "Room 9"}))
    assert 'data-state="done"' in approve(alice, action)[1]
    resp, page = approve(alice, stale)
    assert 'data-state="failed"' in page and "changed elsewhere" in page, page
    assert [e["location"] for e in events_on(server, ALICE, "2026-12-11")] == ["Room 9"]

    # cancel: the attendee is told
    action = queued(call(server, server.cal_tokens[ALICE], "calendar_cancel_event", {"uid": uid}))
    assert len(events_on(server, ALICE, "2026-12-11")) == 1
    resp, page = approve(alice, action)
    assert 'data-state="done"' in page, page
    assert events_on(server, ALICE, "2026-12-11") == []
    eventually_subject(server, BOB, "Cancelled: Budget review (moved)")


# -- one occurrence of a repeating event -------------------------------------------------------------
SERIES = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//tests//EN
BEGIN:VEVENT
UID:weekly-sync-7731
DTSTAMP:20261101T000000Z
DTSTART:20261207T090000Z
DTEND:20261207T093000Z
RRULE:FREQ=WEEKLY;COUNT=4
SUMMARY:Weekly sync 7731
ORGANIZER:mailto:{alice}
ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{bob}
END:VEVENT
END:VCALENDAR
"""


def itip_parts(srv: GKServer, address: str, subject: str) -> list[str]:
    """The text/calendar parts of the mails with ``subject`` in the INBOX (IMAP)."""
    import email
    import email.policy

    conn = imap(srv, address)
    try:
        conn.select("INBOX", readonly=True)
        _, data = conn.uid("SEARCH", "SUBJECT", f'"{subject}"')
        out = []
        for uid in data[0].split():
            _, msg = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            parsed = email.message_from_bytes(msg[0][1], policy=email.policy.default)
            out += [p.get_content() for p in parsed.walk() if p.get_content_type() == "text/calendar"]
        return out
    finally:
        conn.logout()


def test_calendar_tools_change_and_cancel_one_occurrence(server):
    """A weekly series with bob invited, saved by a CalDAV client; the tools move one occurrence
    and cancel another (recurrence_id from calendar_list_events): an override with its
    RECURRENCE-ID and an EXDATE, each mailed to bob as that instance alone."""
    import caldav

    client = caldav.DAVClient(url=f"https://127.0.0.1:{server.port('http.https_port')}/dav/", username=ALICE,
                              password=PASSWORD, ssl_verify_cert=False, enable_rfc6764=False)  # fmt: skip
    dav = client.principal().calendar(name="Calendar")
    dav.save_event(SERIES.format(alice=ALICE, bob=BOB))
    eventually_subject(server, BOB, "Invitation: Weekly sync 7731")
    tok, alice = server.cal_tokens[ALICE], web(server, ALICE)

    def series() -> list[dict]:
        out = call(server, tok, "calendar_list_events", {"start": "2026-12-07", "end": "2026-12-31"})
        return [e for e in out.structured_content["events"] if e["uid"] == "weekly-sync-7731"]

    listed = series()
    assert [e["start"][:16] for e in listed] == [f"2026-12-{d:02d}T09:00" for d in (7, 14, 21, 28)]
    assert all(e["recurring"] and e["recurrence_id"] == e["start"] for e in listed)
    second, third = listed[1]["recurrence_id"], listed[2]["recurrence_id"]

    # no such occurrence, or an event that does not repeat: the tool's error, nothing queued
    for rid in ("2026-12-15T09:00", "2026-12-14T09:30"):
        bad = call(
            server, tok, "calendar_update_event", {"uid": "weekly-sync-7731", "recurrence_id": rid, "location": "x"}
        )
        assert bad.is_error and "no occurrence" in bad.content[0].text, bad.content

    # move the second occurrence two hours later, at another place: only that one changes
    moved = {"uid": "weekly-sync-7731", "recurrence_id": second, "start": "2026-12-14T11:00", "location": "Room 2"}
    action = queued(call(server, tok, "calendar_update_event", moved))
    _, page = alice.get(f"/approvals/{action}")
    assert "only the occurrence of Mon December 14, 2026, 09:00" in page, page
    assert "Mon December 14, 2026, 11:00 – 11:30" in page and "whole repeating series" not in page, page
    assert 'data-state="done"' in approve(alice, action)[1]
    listed = series()
    assert [e["start"][11:16] for e in listed] == ["09:00", "11:00", "09:00", "09:00"]
    assert listed[1]["recurrence_id"] == second and listed[1]["location"] == "Room 2"
    eventually_subject(server, BOB, "Invitation: Weekly sync 7731", count=2)
    update = itip_parts(server, BOB, "Invitation: Weekly sync 7731")[-1]
    assert "METHOD:REQUEST" in update and "RECURRENCE-ID:20261214T090000Z" in update, update
    assert "RRULE" not in update and update.count("BEGIN:VEVENT") == 1 and "LOCATION:Room 2" in update

    # cancel the third: an EXDATE; bob is told of that instance only
    action = queued(call(server, tok, "calendar_cancel_event", {"uid": "weekly-sync-7731", "recurrence_id": third}))
    _, page = alice.get(f"/approvals/{action}")
    assert "only the occurrence of Mon December 21, 2026, 09:00" in page, page
    assert 'data-state="done"' in approve(alice, action)[1]
    assert [e["start"][8:10] for e in series()] == ["07", "14", "28"]
    eventually_subject(server, BOB, "Cancelled: Weekly sync 7731")
    [cancel] = itip_parts(server, BOB, "Cancelled: Weekly sync 7731")
    assert "METHOD:CANCEL" in cancel and "RECURRENCE-ID:20261221T090000Z" in cancel, cancel
    assert "RRULE" not in cancel and cancel.count("BEGIN:VEVENT") == 1

    # what a CalDAV client now reads: the series, its EXDATE and the override
    data = dav.event_by_uid("weekly-sync-7731").data
    assert "RRULE:FREQ=WEEKLY;COUNT=4" in data and "EXDATE" in data and "20261221T090000Z" in data
    assert "RECURRENCE-ID:20261214T090000Z" in data
    # the cancelled occurrence is no longer one
    gone = call(server, tok, "calendar_cancel_event", {"uid": "weekly-sync-7731", "recurrence_id": third})
    assert gone.is_error and "no occurrence" in gone.content[0].text
