"""``/mcp`` of a real ``gk serve`` as MCP 2026-07-28 clients see it (stateless: ``server/discover``,
per-request ``_meta``, ``Mcp-Method``/``Mcp-Name`` headers, the spec's HTTP statuses and error
codes, ``resultType``, caching hints, ``subscriptions/listen``), the resources (mail folders and
messages) and prompts (EN/FR) through both the 2026-07-28 wire and the official Python SDK (a
2025-11-25 client), and every bad input's answer. Two users: neither ever sees the other's mail.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
from typing import Any

import anyio
import pytest

mcp = pytest.importorskip("mcp", reason="the `test` extra is not installed (make setup installs it)")
from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from support.gkserver import GKServer, gk  # noqa: E402
from support.messages import drop_in_maildir  # noqa: E402

ALICE, BOB, CAROL = "alice@test.example", "bob@test.example", "carol@test.example"
NO_MAIL = {"smtp": {"port": 0, "submission_port": 0, "submissions_port": 0}, "imap": {"port": 0, "tls_port": 0}}
V = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": V, "io.modelcontextprotocol/clientCapabilities": {}}


def mail(sender: str, to: str, subject: str, body: str) -> str:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{abs(hash(subject))}@test.example>\r\n"
        f"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from gk import claim

    srv = GKServer(tmp_path_factory.mktemp("mcpproto") / "gk", {**NO_MAIL, "ai": {"enabled": False}})
    srv.write_config()
    for user in (ALICE, BOB, CAROL):
        srv.add_user(user, "correct horse battery")
    claim.complete(srv.data_dir)
    drop_in_maildir(srv, ALICE, mail("carol@else.example", ALICE, "Budget meeting", "The budget is due Friday."))
    drop_in_maildir(srv, BOB, mail("frank@else.example", BOB, "Bob's parcel", "Your parcel ships tomorrow."))
    from gk.chat.core import ChatService

    chat = ChatService.open(srv.data_dir, [], None)  # the chat store, seeded before gk serve opens it
    chat.join("team", "alice")
    chat.join("team", "bob")
    chat.post("alice", "#team", "Lunch at noon?")
    chat.create_room("secret", "bob", private=True)
    chat.post("bob", "#secret", "the surprise party is friday")
    chat.stop()
    srv.tokens = {
        u: gk(srv.data_dir, "token", "add", u, "--scope", "mcp", "--label", "proto").stdout.strip()
        for u in (ALICE, BOB, CAROL)
    }
    srv.start()
    yield srv
    srv.stop()


def post(
    srv: GKServer,
    body: bytes | dict,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    user: str = ALICE,
) -> tuple[http.client.HTTPResponse, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=60)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {token or srv.tokens[user]}",
    }
    hdrs.update(headers or {})
    conn.request("POST", "/mcp", data, {k: v for k, v in hdrs.items() if v is not None})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp, (json.loads(raw) if raw and resp.getheader("Content-Type", "").startswith("application/json") else raw)


def modern(
    srv: GKServer,
    method: str,
    params: dict | None = None,
    id_: int = 1,
    name: str | None = None,
    headers: dict | None = None,
    user: str = ALICE,
) -> tuple[http.client.HTTPResponse, Any]:
    """A 2026-07-28 request: _meta in the body, the standard headers."""
    params = {"_meta": META, **(params or {})}
    hdrs = {"MCP-Protocol-Version": V, "Mcp-Method": method}
    if name is not None:
        hdrs["Mcp-Name"] = name
    hdrs.update(headers or {})
    return post(srv, {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}, headers=hdrs, user=user)


# -- 2026-07-28: discover, the envelope, results -------------------------------------------------


def test_discover_names_versions_capabilities_and_server(server):
    resp, out = modern(server, "server/discover", id_=7)
    assert resp.status == 200 and out["id"] == 7
    res = out["result"]
    assert res["resultType"] == "complete"
    assert res["supportedVersions"][0] == V and "2025-11-25" in res["supportedVersions"]
    caps = res["capabilities"]
    assert {"tools", "resources", "prompts", "completions"} <= set(caps) and caps["resources"]["subscribe"] is True
    assert res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "gk"
    assert "untrusted" in res["instructions"]
    resp, out = post(server, {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": META}},
                     token="gk-not-a-token", headers={"MCP-Protocol-Version": V, "Mcp-Method": "server/discover"})  # fmt: skip
    assert resp.status == 401 and "resource_metadata=" in resp.getheader("WWW-Authenticate")


def test_results_carry_result_type_and_private_caching_hints(server):
    _, out = modern(server, "tools/list")
    res = out["result"]
    assert res["resultType"] == "complete" and res["cacheScope"] == "private" and res["ttlMs"] == 0
    assert "mail_search" in [t["name"] for t in res["tools"]]
    _, out = modern(server, "tools/call", {"name": "mail_search", "arguments": {"text": "budget"}}, name="mail_search")
    res = out["result"]
    assert res["resultType"] == "complete" and "ttlMs" not in res
    assert [m["subject"] for m in res["structuredContent"]["messages"]] == ["Budget meeting"]


@pytest.mark.parametrize(
    "params,headers,status,code",
    [
        ({}, {}, 200, None),
        ({"_meta": {"io.modelcontextprotocol/protocolVersion": V}}, {}, 400, -32602),  # no clientCapabilities
        ({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}, {}, 400, -32602),  # no protocolVersion
        ({}, {"MCP-Protocol-Version": None}, 400, -32020),  # meta names a version, the header is missing
        ({}, {"MCP-Protocol-Version": "2025-11-25"}, 400, -32020),  # header and body disagree
        ({}, {"Mcp-Method": None}, 400, -32020),  # the method header is missing
        ({}, {"Mcp-Method": "TOOLS/LIST"}, 400, -32020),  # values are case-sensitive
        ({}, {"Mcp-Method": "  tools/list  "}, 200, None),  # whitespace around a value is not part of it
        ({}, {"mcp-method": "tools/list", "Mcp-Method": None}, 200, None),  # header names are not
    ],
)
def test_envelope_errors(server, params, headers, status, code):
    body = {"jsonrpc": "2.0", "id": 41, "method": "tools/list", "params": {"_meta": META}}
    if params:
        body["params"] = params
    hdrs = {"MCP-Protocol-Version": V, "Mcp-Method": "tools/list", **headers}
    resp, out = post(server, body, headers=hdrs)
    assert resp.status == status, out
    if code is None:
        assert "tools" in out["result"]
    else:
        assert out["id"] == 41 and out["error"]["code"] == code


def test_unsupported_version_lists_the_supported_ones(server):
    meta = {**META, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
    resp, out = post(server, {"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {"_meta": meta}},
                     headers={"MCP-Protocol-Version": "2099-01-01", "Mcp-Method": "tools/list"})  # fmt: skip
    assert resp.status == 400 and out["id"] == 5 and out["error"]["code"] == -32022
    assert out["error"]["data"] == {
        "supported": [V, "2025-11-25", "2025-06-18", "2025-03-26"],
        "requested": "2099-01-01",
    }


def test_mcp_name_must_match_the_tool_or_resource(server):
    args = {"name": "mail_search", "arguments": {"text": "budget"}}
    resp, out = modern(server, "tools/call", args, name="mail_read")
    assert resp.status == 400 and out["error"]["code"] == -32020
    resp, out = modern(server, "tools/call", args)  # Mcp-Name missing though the body names a tool
    assert resp.status == 400 and out["error"]["code"] == -32020
    resp, out = modern(server, "resources/read", {"uri": "gk-mail:///folder/INBOX"}, name="gk-mail:///folder/Sent")
    assert resp.status == 400 and out["error"]["code"] == -32020


@pytest.mark.parametrize("method", ["initialize", "ping", "logging/setLevel", "resources/subscribe", "no/such"])
def test_removed_and_unknown_methods_are_404(server, method):
    resp, out = modern(server, method, id_=9)
    assert resp.status == 404 and out == {"jsonrpc": "2.0", "id": 9, "error": out["error"]}
    assert out["error"]["code"] == -32601


def test_2025_clients_get_no_2026_fields_and_no_discover(server):
    _, out = post(
        server, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers={"MCP-Protocol-Version": "2025-11-25"}
    )
    assert "resultType" not in out["result"] and "ttlMs" not in out["result"]
    resp, out = post(server, {"jsonrpc": "2.0", "id": 2, "method": "server/discover"})
    assert resp.status == 200 and out["error"]["code"] == -32601


# -- bad input -----------------------------------------------------------------------------------


def test_wrong_accept_is_406_and_absent_accept_is_fine(server):
    for accept in ("text/html", "text/event-stream", "image/png"):
        resp, out = modern(server, "tools/list", headers={"Accept": accept})
        assert resp.status == 406 and out["error"]["code"] == -32600, accept
    resp, out = modern(server, "tools/list", headers={"Accept": None})
    assert resp.status == 200 and "tools" in out["result"]


def test_bad_bodies_in_the_2026_wire(server):
    hdrs = {"MCP-Protocol-Version": V, "Mcp-Method": "tools/list"}
    resp, out = post(server, b'{"jsonrpc": "2.0", "id": 1, "method": "tools/li', headers=hdrs)
    assert resp.status == 400 and out["error"]["code"] == -32700
    batch = [{"jsonrpc": "2.0", "id": i, "method": "tools/list", "params": {"_meta": META}} for i in (1, 2)]
    resp, out = post(server, json.dumps(batch).encode(), headers=hdrs)
    assert resp.status == 400 and out["error"]["code"] == -32600
    resp, out = post(server, b'"just a string"', headers=hdrs)
    assert resp.status == 400 and out["error"]["code"] == -32600
    resp, out = modern(server, "tools/call", {"name": "no_such_tool", "arguments": {}}, id_=3, name="no_such_tool")
    assert out["id"] == 3 and out["error"]["code"] == -32602
    resp, out = modern(server, "tools/call", {"name": "mail_read", "arguments": {"uid": "x"}}, name="mail_read")
    assert out["result"]["isError"] is True and out["result"]["resultType"] == "complete"
    big = {"name": "mail_search", "arguments": {"text": "y" * 300_000}}
    resp, out = modern(server, "tools/call", big, name="mail_search")
    assert resp.status == 413 and out["error"]["code"] == -32600


def test_revoked_token_is_refused(server):
    token = gk(server.data_dir, "token", "add", ALICE, "--scope", "mcp", "--label", "to-revoke").stdout.strip()
    resp, _ = modern(server, "tools/list", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    listing = gk(server.data_dir, "token", "list").stdout
    token_id = next(line.split()[0] for line in listing.splitlines() if "to-revoke" in line)
    gk(server.data_dir, "token", "del", token_id)
    resp, out = modern(server, "tools/list", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401 and out["error"]["code"] == -32600
    assert 'error="invalid_token"' in resp.getheader("WWW-Authenticate")


# -- resources -----------------------------------------------------------------------------------


def test_resources_are_each_users_own_folders(server):
    _, out = modern(server, "resources/list")
    res = out["result"]
    assert res["cacheScope"] == "private" and res["resultType"] == "complete"
    inbox = next(r for r in res["resources"] if r["name"] == "INBOX")
    assert inbox["uri"] == "gk-mail:///folder/INBOX" and inbox["mimeType"] == "text/plain"
    _, out = modern(server, "resources/read", {"uri": inbox["uri"]}, name=inbox["uri"])
    text = out["result"]["contents"][0]["text"]
    assert "Budget meeting" in text and "untrusted" in text and out["result"]["ttlMs"] == 0
    _, out = modern(server, "resources/read", {"uri": inbox["uri"]}, name=inbox["uri"], user=BOB)
    text = out["result"]["contents"][0]["text"]
    assert "Bob's parcel" in text and "Budget" not in text


def test_resource_templates_and_a_message_by_uri(server):
    _, out = modern(server, "resources/templates/list")
    templates = {t["name"]: t["uriTemplate"] for t in out["result"]["resourceTemplates"]}
    assert templates == {
        "mail_folder": "gk-mail:///folder/{folder}",
        "mail_message": "gk-mail:///message/{folder}/{uid}",
        "chat_room": "gk-chat:///room/{room}",
        "calendar": "gk-cal:///calendar/{calendar}",
    }
    _, found = modern(
        server, "tools/call", {"name": "mail_search", "arguments": {"text": "budget"}}, name="mail_search"
    )
    uid = found["result"]["structuredContent"]["messages"][0]["uid"]
    uri = f"gk-mail:///message/INBOX/{uid}"
    _, out = modern(server, "resources/read", {"uri": uri}, name=uri)
    text = out["result"]["contents"][0]["text"]
    assert "Subject: Budget meeting" in text and "<untrusted-mail>" in text
    # bob asks for alice's message: his INBOX has no such uid (or another message, never hers)
    resp, out = modern(server, "resources/read", {"uri": uri}, name=uri, user=BOB)
    assert "Budget" not in json.dumps(out)


@pytest.mark.parametrize("uri", ["gk-mail:///folder/Nope", "gk-mail:///message/INBOX/99999", "gk-mail:///message/INBOX/x",
                                 "file:///etc/passwd", "gk-mail:///folder/"])  # fmt: skip
def test_unknown_resource_is_invalid_params_with_its_uri(server, uri):
    resp, out = modern(server, "resources/read", {"uri": uri}, id_=12, name=uri)
    assert out["id"] == 12 and out["error"]["code"] == -32602 and out["error"]["data"] == {"uri": uri}


def test_chat_rooms_are_resources_of_their_members_only(server):
    _, out = modern(server, "resources/list")
    rooms = {r["uri"]: r for r in out["result"]["resources"] if r["uri"].startswith("gk-chat:")}
    # every user is in the default room (#general) and alice also in #team; never bob's private one
    assert set(rooms) == {"gk-chat:///room/general", "gk-chat:///room/team"}
    assert rooms["gk-chat:///room/team"]["name"] == "#team"
    _, out = modern(server, "resources/read", {"uri": "gk-chat:///room/team"}, name="gk-chat:///room/team")
    text = out["result"]["contents"][0]["text"]
    assert "<alice> Lunch at noon?" in text and "untrusted" in text
    # alice is not in bob's private room: no such resource for her, whatever she asks
    resp, out = modern(server, "resources/read", {"uri": "gk-chat:///room/secret"}, name="gk-chat:///room/secret")
    assert out["error"]["code"] == -32602 and "surprise" not in json.dumps(out)
    _, out = modern(
        server, "resources/read", {"uri": "gk-chat:///room/secret"}, name="gk-chat:///room/secret", user=BOB
    )
    assert "<bob> the surprise party is friday" in out["result"]["contents"][0]["text"]
    _, out = modern(server, "resources/templates/list")
    assert "gk-chat:///room/{room}" in [t["uriTemplate"] for t in out["result"]["resourceTemplates"]]


EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GK tests//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20261129T090000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:{summary}\r\n"
    "LOCATION:Room 4\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def dav_put(srv: GKServer, user: str, path: str, body: str) -> int:
    """A CalDAV PUT over HTTPS with the user's password, as a calendar app does."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the box's self-signed certificate
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port("http.https_port"), context=ctx, timeout=60)
    auth = "Basic " + base64.b64encode(f"{user}:correct horse battery".encode()).decode()
    conn.request("PUT", path, body.encode(), {"Authorization": auth, "Content-Type": "text/calendar"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def test_calendars_are_resources_with_their_coming_events(server):
    cal = f"/dav/{ALICE}/calendar/"
    past = EVENT.format(uid="old", start="20250105T090000Z", end="20250105T100000Z", summary="Long gone")
    soon = EVENT.format(uid="review", start="20270115T090000Z", end="20270115T100000Z", summary="Budget review")
    assert dav_put(server, ALICE, cal + "old.ics", past) in (201, 204)
    assert dav_put(server, ALICE, cal + "review.ics", soon) in (201, 204)
    _, out = modern(server, "resources/list")
    cals = {r["uri"]: r for r in out["result"]["resources"] if r["uri"].startswith("gk-cal:")}
    assert "gk-cal:///calendar/calendar" in cals and cals["gk-cal:///calendar/calendar"]["title"] == "Calendar"
    uri = "gk-cal:///calendar/calendar"
    _, out = modern(server, "resources/read", {"uri": uri}, name=uri)
    text = out["result"]["contents"][0]["text"]
    assert "2027-01-15 09:00 UTC: Budget review (Room 4)" in text and "Long gone" not in text and "untrusted" in text
    # bob's calendar URI is his own principal's: alice's event is never his
    resp, out = modern(server, "resources/read", {"uri": uri}, name=uri, user=BOB)
    assert "Budget review" not in json.dumps(out)
    for bad in ("gk-cal:///calendar/../alice", "gk-cal:///calendar/contacts", "gk-cal:///calendar/nope"):
        _, out = modern(server, "resources/read", {"uri": bad}, name=bad)
        assert out["error"]["code"] == -32602 and out["error"]["data"] == {"uri": bad}


# -- prompts -------------------------------------------------------------------------------------


def test_prompts_in_english_and_french(server):
    _, out = modern(server, "prompts/list")
    names = {p["name"]: p for p in out["result"]["prompts"]}
    assert names["summarise_unread_mail"]["title"] == "Summarise my unread mail"
    assert names["plan_my_week"]["arguments"] == [
        {"name": "focus", "description": "What to focus on (optional)", "required": False}
    ]
    _, out = modern(server, "prompts/list", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert {p["name"]: p["title"] for p in out["result"]["prompts"]}["plan_my_week"] == "Planifier ma semaine"
    args = {"name": "summarise_unread_mail", "arguments": {"folder": "Archive"}}
    _, out = modern(server, "prompts/get", args, name="summarise_unread_mail")
    text = out["result"]["messages"][0]["content"]["text"]
    assert out["result"]["messages"][0]["role"] == "user" and "Archive" in text and "mail_list_unread" in text
    # French by the request's _meta locale when the client sends no Accept-Language
    fr = {"name": "plan_my_week", "arguments": {"focus": "le budget"}, "_meta": {**META, "locale": "fr"}}
    _, out = modern(server, "prompts/get", fr, name="plan_my_week")
    text = out["result"]["messages"][0]["content"]["text"]
    assert text.startswith("Planifie ma semaine") and "Priorité : le budget" in text


@pytest.mark.parametrize(
    "params",
    [
        {"name": "no_such_prompt"},
        {"name": "plan_my_week", "arguments": {"nope": "x"}},
        {"name": "plan_my_week", "arguments": {"focus": 3}},
        {"name": "plan_my_week", "arguments": "focus"},
    ],
)
def test_bad_prompt_requests_are_invalid_params(server, params):
    resp, out = modern(server, "prompts/get", params, id_=21, name=params["name"])
    assert out["id"] == 21 and out["error"]["code"] == -32602


def test_folder_argument_completion_is_per_user(server):
    params = {
        "ref": {"type": "ref/prompt", "name": "summarise_unread_mail"},
        "argument": {"name": "folder", "value": "in"},
    }
    _, out = modern(server, "completion/complete", params)
    assert out["result"]["completion"]["values"] == ["INBOX"]


def test_the_python_sdk_lists_and_reads_resources_and_prompts(server):
    """The official SDK (a 2025-11-25 client, initialize without session) over the same URL."""
    import httpx2

    async def main():  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {server.tokens[BOB]}", "Accept-Language": "fr"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as client:
            url = f"http://127.0.0.1:{server.port('http.port')}/mcp"
            async with streamable_http_client(url, http_client=client) as (read, write):
                async with ClientSession(read, write) as session:
                    init = await session.initialize()
                    resources = await session.list_resources()
                    templates = await session.list_resource_templates()
                    contents = await session.read_resource("gk-mail:///folder/INBOX")
                    prompts = await session.list_prompts()
                    prompt = await session.get_prompt("summarise_unread_mail", {})
                    return init, resources, templates, contents, prompts, prompt

    init, resources, templates, contents, prompts, prompt = anyio.run(main)
    assert init.capabilities.resources is not None and init.capabilities.prompts is not None
    assert "gk-mail:///folder/INBOX" in [str(r.uri) for r in resources.resources]
    assert {t.name for t in templates.resource_templates} == {"mail_folder", "mail_message", "chat_room", "calendar"}
    assert "Bob's parcel" in contents.contents[0].text and "Budget" not in contents.contents[0].text
    assert {p.name: p.title for p in prompts.prompts}["summarise_unread_mail"] == "Résumer mon courrier non lu"
    assert prompt.messages[0].content.text.startswith("Résume mon courrier non lu dans INBOX")


# -- subscriptions/listen ------------------------------------------------------------------------


class Listen:
    """A raw subscriptions/listen stream: its frames read one by one."""

    def __init__(self, srv: GKServer, user: str, notifications: dict, id_: int = 77):
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=60)
        body = {"jsonrpc": "2.0", "id": id_, "method": "subscriptions/listen",
                "params": {"_meta": META, "notifications": notifications}}  # fmt: skip
        self.conn.request("POST", "/mcp", json.dumps(body), {
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {srv.tokens[user]}", "MCP-Protocol-Version": V,
            "Mcp-Method": "subscriptions/listen"})  # fmt: skip
        self.resp = self.conn.getresponse()

    def frame(self) -> dict:
        while True:
            line = self.resp.fp.readline()
            assert line, "the stream ended"
            if line.startswith(b"data: "):
                return json.loads(line[6:])

    def close(self) -> None:
        self.conn.close()


def test_listen_streams_resource_updates_to_their_own_user_only(server):
    inbox = "gk-mail:///folder/INBOX"
    alice = Listen(
        server, ALICE, {"resourcesListChanged": True, "toolsListChanged": True, "resourceSubscriptions": [inbox]}
    )
    bob = Listen(server, BOB, {"resourceSubscriptions": [inbox]}, id_=78)
    try:
        assert alice.resp.status == 200 and alice.resp.getheader("Content-Type") == "text/event-stream"
        ack = alice.frame()
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 77
        # GK's tool list is fixed while it runs: toolsListChanged is not agreed; the rest is
        assert ack["params"]["notifications"] == {"resourcesListChanged": True, "resourceSubscriptions": [inbox]}
        assert bob.frame()["method"] == "notifications/subscriptions/acknowledged"
        drop_in_maildir(server, ALICE, mail("dave@else.example", ALICE, "Fresh news", "hello"))
        modern(server, "tools/call", {"name": "mail_list_unread", "arguments": {}}, name="mail_list_unread")
        update = alice.frame()
        assert update["method"] == "notifications/resources/updated" and update["params"]["uri"] == inbox
        assert update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 77
        # bob's stream saw nothing of alice's mail: his next frame is his own update
        drop_in_maildir(server, BOB, mail("gina@else.example", BOB, "For bob", "hi"))
        modern(server, "tools/call", {"name": "mail_list_unread", "arguments": {}}, name="mail_list_unread", user=BOB)
        frame = bob.frame()
        assert frame["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 78
        assert frame["method"] == "notifications/resources/updated"
    finally:
        alice.close()
        bob.close()


def test_listen_needs_an_event_stream_and_a_filter(server):
    resp, out = modern(server, "subscriptions/listen", {"notifications": {}}, headers={"Accept": "application/json"})
    assert resp.status == 406
    resp, out = modern(server, "subscriptions/listen", {})
    assert resp.status == 400 and out["error"]["code"] == -32602


def test_a_user_may_hold_only_a_few_listen_streams(server):
    streams = [Listen(server, CAROL, {"resourcesListChanged": True}, id_=100 + i) for i in range(8)]
    try:
        for stream in streams:
            assert stream.frame()["method"] == "notifications/subscriptions/acknowledged"
        resp, out = modern(server, "subscriptions/listen", {"notifications": {}}, user=CAROL)
        assert resp.status == 429 and out["error"]["code"] == -32600
        alice = Listen(server, ALICE, {}, id_=200)  # another user still gets hers
        assert alice.frame()["method"] == "notifications/subscriptions/acknowledged"
        alice.close()
    finally:
        for stream in streams:
            stream.close()
    # closed streams are forgotten (at their next write: the keepalive) and carol may listen again
    deadline = time.monotonic() + 90
    while True:
        again = Listen(server, CAROL, {}, id_=301)
        if again.resp.status == 200:
            assert again.frame()["method"] == "notifications/subscriptions/acknowledged"
            again.close()
            break
        again.resp.read()
        again.close()
        assert time.monotonic() < deadline, "closed listen streams were never released"
        time.sleep(2)


# -- the official Python SDK as a 2026-07-28 client ----------------------------------------------


def test_the_python_sdk_speaks_2026_07_28_to_gk(server):
    """``mcp.Client`` in its default ``auto`` mode probes ``server/discover`` and, finding
    2026-07-28, goes stateless: tools, resources, prompts, completion and a listen stream that
    hears of alice's new mail, all through the SDK's own 2026-07-28 code."""
    import httpx2
    from mcp import Client

    url = f"http://127.0.0.1:{server.port('http.port')}/mcp"

    async def main():  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {server.tokens[ALICE]}"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                seen: dict[str, Any] = {"version": client.protocol_version, "server": client.server_info}
                seen["tools"] = [t.name for t in (await client.list_tools()).tools]
                found = await client.call_tool("mail_search", {"text": "budget"})
                seen["found"] = found.structured_content
                seen["resources"] = [str(r.uri) for r in (await client.list_resources()).resources]
                room = await client.read_resource("gk-chat:///room/team")
                seen["room"] = room.contents[0].text
                prompt = await client.get_prompt("plan_my_week", {"focus": "budget"})
                seen["prompt"] = prompt.messages[0].content.text
                async with client.listen(resource_subscriptions=["gk-mail:///folder/INBOX"]) as sub:
                    seen["honored"] = sub.honored.resource_subscriptions
                    drop_in_maildir(server, ALICE, mail("erin@else.example", ALICE, "SDK news", "via listen"))
                    await client.call_tool("mail_list_unread", {})
                    with anyio.fail_after(60):
                        seen["event"] = await sub.__anext__()
                return seen

    seen = anyio.run(main)
    assert seen["version"] == V and seen["server"].name == "gk"
    assert "mail_search" in seen["tools"]
    assert [m["subject"] for m in seen["found"]["messages"]] == ["Budget meeting"]
    assert {"gk-mail:///folder/INBOX", "gk-chat:///room/team"} <= set(seen["resources"])
    assert "<alice> Lunch at noon?" in seen["room"]
    assert "Focus: budget" in seen["prompt"]
    assert seen["honored"] == ["gk-mail:///folder/INBOX"]
    assert "gk-mail:///folder/INBOX" in repr(seen["event"])


def test_no_conformance_fixtures_without_test_mode(server):
    """Only GK_MCP_CONFORMANCE=1 (set by test_mcp_conformance.py alone) opens /mcp/conformance."""
    for method in ("POST", "GET"):
        conn = http.client.HTTPConnection("127.0.0.1", server.port("http.port"), timeout=60)
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}) if method == "POST" else None
        conn.request(
            method, "/mcp/conformance", body, {"Content-Type": "application/json", "Accept": "application/json"}
        )
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        assert resp.status == 404 and b"test_simple_text" not in raw
    _, out = modern(server, "tools/list")
    assert not [t for t in out["result"]["tools"] if t["name"].startswith("test_")]
