"""The web chat against a real ``gk serve``: pages over HTTP, the live timeline over its
WebSocket (``/chat/ws``, driven by ``websocket-client`` as htmx's ws extension speaks it: the
client sends its form values as JSON, the server sends HTML fragments), and shared files.

Checked: CSRF on every form POST, the WebSocket's session and Origin checks, a private room's
messages never reaching a non-member (pages, history, search, live socket, files), reconnect
after a drop resuming after the last message seen with no gap and no duplicate, edit/delete/
react/reply, unread counts and mentions, scrollback, search, DMs, rooms, upload limits and
authorization, IRC's ``draft/FILEHOST`` upload and a message crossing between IRC and the web.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
import urllib.parse

import pytest
from test_chat_irc import IRC, sasl
from test_web_http import Client

from gk import claim

websocket = pytest.importorskip("websocket", reason="websocket-client is in the test extra")

PASSWORD = "correct horse battery staple"
ALICE, BOB, CAROL = "alice@test.example", "bob@test.example", "carol@test.example"
MAX_UPLOAD = 64 * 1024
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):  # type: ignore[no-untyped-def]
    from support.gkserver import GKServer

    s = GKServer(
        tmp_path_factory.mktemp("webchat"),
        {
            "http": {"https_port": 0},
            "smtp": {"port": 0, "submission_port": 0, "submissions_port": 0},
            "imap": {"port": 0, "tls_port": 0},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
            "chat": {"max_upload_bytes": MAX_UPLOAD, "line_burst": 400, "lines_per_second": 200.0},
        },
    )
    s.write_config()
    for who in (ALICE, BOB, CAROL):
        s.add_user(who, PASSWORD)
    claim.claim(s.data_dir, "test")  # an unclaimed box serves only the wizard
    claim.complete(s.data_dir)
    s.start()
    yield s
    s.stop()


def user(srv, address: str) -> Client:  # type: ignore[no-untyped-def]
    c = Client(srv)
    c.login(address, PASSWORD)
    return c


def page(c: Client, path: str) -> str:
    resp, text = c.get(path)
    assert resp.status == 200, (path, resp.status, text[:500])
    return text


def last_of(text: str) -> str:
    return re.search(r'id="chat-last" name="after" value="([^"]*)"', text).group(1)


def msg_ids(text: str) -> list[str]:
    return re.findall(r'<article id="m-([A-Za-z0-9_-]+)"', text)


class Live:
    """The browser's side of ``/chat/ws``: what htmx's ws extension sends and receives."""

    def __init__(self, srv, c: Client | None, to: str, origin: str | None = None):  # type: ignore[no-untyped-def]
        port = srv.port("http.port")
        headers = [f"Cookie: {c.cookie_header()}"] if c is not None else []
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/chat/ws?to={urllib.parse.quote(to)}",
            timeout=60,
            header=headers,
            origin=origin if origin is not None else f"http://127.0.0.1:{port}",
        )
        self.seen: list[str] = []

    def resume(self, after: str, first: str = "", since: str = "") -> None:
        form = {"kind": "resume", "after": after, "first": first, "since": since, "HEADERS": {"HX-Request": "true"}}
        self.ws.send(json.dumps(form))

    def typing(self) -> None:
        self.ws.send(json.dumps({"kind": "typing"}))

    def recv(self, timeout: float = 60) -> str | None:
        self.ws.settimeout(timeout)
        try:
            opcode, data = self.ws.recv_data()
        except websocket.WebSocketConnectionClosedException:
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            return None
        text = data.decode()
        self.seen.append(text)
        return text

    def expect(self, pattern: str, timeout: float = 60) -> str:
        rx = re.compile(pattern, re.S)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.recv(max(0.1, deadline - time.monotonic()))
            if got is None:
                raise AssertionError(f"socket closed waiting for {pattern!r}; seen {self.seen[-5:]}")
            if rx.search(got):
                return got
        raise AssertionError(f"nothing matching {pattern!r}; seen {self.seen[-5:]}")

    def closed_code(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.recv(max(0.1, deadline - time.monotonic())) is None:
                return getattr(self, "close_code", 1006)
        raise AssertionError("still open")

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


def send(c: Client, to: str, text: str, **extra: str):  # type: ignore[no-untyped-def]
    resp, body = c.request(
        "POST",
        "/chat/send",
        form={"to": to, "text": text, **extra},
        headers={"X-CSRF-Token": c.csrf, "HX-Request": "true"},
    )
    assert resp.status == 200, (resp.status, body[:300])
    return body


def test_chat_page_and_two_users_live(srv):  # type: ignore[no-untyped-def]
    alice, bob = user(srv, ALICE), user(srv, BOB)
    resp, _ = alice.get("/chat")
    assert resp.status in (302, 303) and resp.headers["Location"].endswith("/chat/r/general")
    text = page(alice, "/chat/r/general")
    assert 'href="/chat"' in text and 'ws-connect="/chat/ws?to=%23general"' in text
    assert "/static/htmx-ext-ws-2.0.4.min.js" in text and "<script>" not in text
    bob_page = page(bob, "/chat/r/general")
    live = Live(srv, bob, "#general")
    live.resume(last_of(bob_page))
    send(alice, "#general", "hello <b>bob</b> from the web")
    got = live.expect(r"hello &lt;b&gt;bob&lt;/b&gt; from the web")
    assert 'hx-swap-oob="beforeend:#timeline"' in got and 'id="chat-last"' in got
    assert 'class="msg mention"' in got  # bob is named: highlighted for bob
    # typing reaches the other side
    live2 = Live(srv, alice, "#general")
    live2.resume(last_of(got))
    live.typing()
    assert "bob is typing" in live2.expect(r'id="typing"')
    live.close()
    live2.close()


def test_csrf_on_every_form_post(srv):  # type: ignore[no-untyped-def]
    alice = user(srv, ALICE)
    page(alice, "/chat/r/general")
    for path, form in [
        ("/chat/send", {"to": "#general", "text": "no token"}),
        ("/chat/rooms", {"name": "csrfroom"}),
        ("/chat/dm", {"user": "bob"}),
        ("/chat/r/general/topic", {"topic": "hijacked"}),
        ("/chat/r/general/leave", {}),
        ("/chat/r/general/invite", {"user": "carol"}),
    ]:
        resp, _ = alice.post(path, form, csrf=False)
        assert resp.status == 403, path
    resp, _ = alice.request("POST", "/chat/send", form={"to": "#general", "text": "bad"}, headers={"X-CSRF-Token": "x"})
    assert resp.status == 403
    text = page(alice, "/chat/r/general")
    assert "no token" not in text and "hijacked" not in text
    assert "csrfroom" not in page(alice, "/chat/rooms")


def test_websocket_needs_session_and_same_origin(srv):  # type: ignore[no-untyped-def]
    anon = Live(srv, None, "#general")
    # the route's policy turns a visitor away before the handler: the socket closes, nothing
    # sent, with no code htmx would retry (1005: none given)
    assert anon.closed_code() in (1005, 1008) and anon.seen == []
    alice = user(srv, ALICE)
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        Live(srv, alice, "#general", origin="https://evil.example")
    assert exc.value.status_code == 403
    nobody = Live(srv, alice, "nosuchuser")
    assert nobody.closed_code() == 1008


def test_private_room_never_reaches_non_members(srv):  # type: ignore[no-untyped-def]
    alice, carol = user(srv, ALICE), user(srv, CAROL)
    page(alice, "/chat/rooms")
    resp, _ = alice.post("/chat/rooms", {"name": "secret", "private": "1"})
    assert resp.status == 303 and resp.headers["Location"].endswith("/chat/r/secret")
    assert "🔒" in page(alice, "/chat/r/secret")
    carol_page = page(carol, "/chat/r/general")
    watch = Live(srv, carol, "#general")
    watch.resume(last_of(carol_page))
    # carol cannot open the room, its socket, its history, nor join it
    assert carol.get("/chat/r/secret")[0].status == 404
    assert Live(srv, carol, "#secret").closed_code() == 1008
    assert carol.get("/chat/older?to=%23secret&before=x")[0].status == 404
    assert carol.get("/chat/compose?to=%23secret")[0].status == 404
    resp, _ = carol.post("/chat/rooms", {"name": "secret"})
    assert resp.status == 303 and "error=" in resp.headers["Location"]
    resp, _ = carol.request(
        "POST", "/chat/send", form={"to": "#secret", "text": "let me in"}, headers={"X-CSRF-Token": carol.csrf}
    )
    assert resp.status == 404  # as for a room that does not exist (test_chat_private_rooms.py)
    send(alice, "#secret", "the surprise party is on friday")
    send(alice, "#general", "marker after the secret")
    got = watch.expect(r"marker after the secret")
    assert not any("surprise party" in s for s in watch.seen), watch.seen
    assert "surprise" not in got
    assert "surprise party" not in page(carol, "/chat/search?q=surprise")
    assert "secret" not in page(carol, "/chat/rooms")
    assert "surprise party" in page(alice, "/chat/search?q=surprise")
    # adding carol lets her in: the room appears in her list, live, and she sees the history
    resp, _ = alice.post("/chat/r/secret/invite", {"user": "carol"})
    assert resp.status == 303
    watch.expect(r'id="chat-convs".*href="/chat/r/secret"')
    assert 'href="/chat/r/secret"' in page(carol, "/chat/rooms")
    assert "surprise party" in page(carol, "/chat/r/secret")
    watch.close()


def test_reconnect_resumes_without_gap_or_duplicate(srv):  # type: ignore[no-untyped-def]
    alice, bob = user(srv, ALICE), user(srv, BOB)
    page(alice, "/chat/rooms")
    alice.post("/chat/rooms", {"name": "resume"})
    bob.get("/chat/rooms")
    bob.post("/chat/rooms", {"name": "resume"})
    for i in range(3):
        send(alice, "#resume", f"before {i}")
    first = page(bob, "/chat/r/resume")
    assert "before 2" in first
    live = Live(srv, bob, "#resume")
    live.resume(last_of(first))
    for i in range(5):
        send(alice, "#resume", f"live {i}")
    got = live.expect(r"live 4")
    seen_text = "".join(live.seen)
    last = re.findall(r'id="chat-last" name="after" value="([^"]*)"', seen_text)[-1]
    live.ws.sock.close()  # a dropped connection: no close frame
    for i in range(4):
        send(alice, "#resume", f"offline {i}")
    again = Live(srv, bob, "#resume")
    again.resume(last)
    again.expect(r"offline 3")
    send(alice, "#resume", "after reconnect")
    again.expect(r"after reconnect")
    every = first + "".join(live.seen) + "".join(again.seen)
    texts = re.findall(r'<p class="text">([^<]*)</p>', every)
    wanted = [f"before {i}" for i in range(3)] + [f"live {i}" for i in range(5)] + [f"offline {i}" for i in range(4)]
    wanted.append("after reconnect")
    assert texts == wanted, texts
    ids = msg_ids(first) + msg_ids("".join(live.seen)) + msg_ids("".join(again.seen))
    assert len(ids) == len(set(ids)) == len(wanted)
    # a reload resumes the same way: the page holds the newest, the socket adds nothing twice
    reload = page(bob, "/chat/r/resume")
    assert last_of(reload) == ids[-1]
    assert got
    again.close()


def test_edit_delete_react_reply(srv):  # type: ignore[no-untyped-def]
    alice, bob = user(srv, ALICE), user(srv, BOB)
    start = page(alice, "/chat/r/general")
    live = Live(srv, alice, "#general")
    live.resume(last_of(start))
    send(alice, "#general", "typo in this mesage")
    mid = msg_ids(live.expect(r"typo in this mesage"))[0]
    # bob may not edit or delete it
    page(bob, "/chat/r/general")
    assert bob.post(f"/chat/m/{mid}/edit", {"text": "hacked"})[0].status == 403
    assert bob.post(f"/chat/m/{mid}/delete", {})[0].status == 403
    assert bob.get(f"/chat/m/{mid}/edit")[0].status == 403
    # bob reacts: alice sees it live
    resp, frag = bob.request(
        "POST", f"/chat/m/{mid}/react", form={"reaction": "👍", "csrf": bob.csrf}, headers={"HX-Request": "true"}
    )
    assert resp.status == 200 and "👍 1" in frag
    live.expect(rf'id="m-{mid}".*👍 1')
    # bob replies: the quote shows
    send(bob, "#general", "you mean message", reply_to=mid)
    reply = live.expect(r"you mean message")
    assert 'class="quote"' in reply and "typo in this mesage" in reply
    # alice edits hers
    resp, form = alice.get(f"/chat/m/{mid}/edit")
    assert resp.status == 200 and 'name="text"' in form
    # the browser's own submission (no script, or Enter pressed before htmx bound the form): back
    # to the room, never a bare fragment; htmx's gets the message to swap in
    resp, _ = alice.post(f"/chat/m/{mid}/edit", {"text": "typo in this message"})
    assert resp.status == 303 and resp.getheader("Location", "").endswith("/chat/r/general")
    live.expect(rf'id="m-{mid}".*typo in this message')
    resp, frag = alice.request(
        "POST", f"/chat/m/{mid}/edit", form={"text": "typo in this message!", "csrf": alice.csrf},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert resp.status == 200 and "(edited)" in frag and "message!" in frag
    live.expect(rf'id="m-{mid}".*typo in this message!')
    resp, frag = alice.post(f"/chat/m/{mid}/delete", {})
    assert resp.status == 200 and "Message deleted" in frag
    live.expect(rf'id="m-{mid}".*Message deleted')
    assert "typo in this message" not in page(bob, "/chat/r/general")
    live.close()


def test_unread_counts_dm_and_mentions(srv):  # type: ignore[no-untyped-def]
    alice, carol = user(srv, ALICE), user(srv, CAROL)
    page(alice, "/chat/rooms")
    resp, _ = alice.post("/chat/dm", {"user": "carol"})
    assert resp.headers["Location"].endswith("/chat/dm/carol")
    page(alice, "/chat/dm/carol")
    send(alice, "carol", "hi carol, in private")
    send(alice, "carol", "second one")
    rooms = page(carol, "/chat/rooms")
    m = re.search(r'href="/chat/dm/alice"[^>]*>alice <span class="count"[^>]*>(\d+)</span>', rooms)
    assert m and m.group(1) == "2", rooms
    dm = page(carol, "/chat/dm/alice")
    assert "hi carol, in private" in dm
    rooms = page(carol, "/chat/rooms")
    assert not re.search(r'href="/chat/dm/alice"[^>]*>alice <span class="count"', rooms)  # read now
    # messages shown live by an open page are read too (the marker follows within a second)
    live = Live(srv, carol, "alice")
    live.resume(last_of(dm))
    send(alice, "carol", "seen live")
    live.expect(r"seen live")
    deadline = time.monotonic() + 60
    while re.search(r'href="/chat/dm/alice"[^>]*>alice <span class="count"', page(carol, "/chat/rooms")):
        assert time.monotonic() < deadline, "the open page never marked it read"
        time.sleep(0.3)
    live.close()
    assert "in private" not in page(user(srv, BOB), "/chat/search?q=private")  # bob is not in it
    assert user(srv, BOB).get("/chat/dm/nosuchperson")[0].status == 404


def test_scrollback_and_search(srv):  # type: ignore[no-untyped-def]
    alice = user(srv, ALICE)
    page(alice, "/chat/rooms")
    alice.post("/chat/rooms", {"name": "long"})
    for i in range(60):
        send(alice, "#long", f"line number {i:02d}")
    text = page(alice, "/chat/r/long")
    assert "line number 59" in text and "line number 09" not in text
    older = re.search(r'hx-get="(/chat/older\?[^"]+)"', text).group(1).replace("&amp;", "&")
    frag = page(alice, older)
    assert "line number 00" in frag and "line number 09" in frag and "line number 10" not in frag
    assert 'id="older"' not in frag  # nothing older
    found = page(alice, "/chat/search?q=number+42")
    assert "line number 42" in found and "around=" in found
    link = re.search(r'href="(/chat/r/long\?around=[^"#]+)', found).group(1)
    context = page(alice, link)
    assert "line number 42" in context and "line number 10" not in context  # around it, not the newest 50
    assert "Back to the latest messages" in context and "ws-connect" not in context


def _multipart(c: Client, path: str, fields: dict, name: str, data: bytes, ctype: str = "application/octet-stream"):  # type: ignore[no-untyped-def]
    boundary = "chatboundary42"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {ctype}\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    conn = c.connection()
    conn.request(
        "POST",
        path,
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Cookie": c.cookie_header()},
    )
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp, text


def _get_raw(srv, path: str, headers: dict) -> tuple[http.client.HTTPResponse, bytes]:  # type: ignore[no-untyped-def]
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=30)
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


def test_upload_limits_and_authorization(srv):  # type: ignore[no-untyped-def]
    alice, bob, carol = user(srv, ALICE), user(srv, BOB), user(srv, CAROL)
    page(alice, "/chat/rooms")
    alice.post("/chat/rooms", {"name": "photos", "private": "1"})
    alice.post("/chat/r/photos/invite", {"user": "bob"})
    page(bob, "/chat/rooms")
    bob.post("/chat/rooms", {"name": "photos"})
    start = page(bob, "/chat/r/photos")
    live = Live(srv, bob, "#photos")
    live.resume(last_of(start))
    page(alice, "/chat/r/photos")
    # no CSRF token: refused, nothing stored
    resp, _ = _multipart(alice, "/chat/files/upload?to=%23photos", {"to": "#photos"}, "x.png", PNG)
    assert resp.status == 403
    resp, frag = _multipart(
        alice, "/chat/files/upload?to=%23photos", {"to": "#photos", "csrf": alice.csrf, "text": "look"}, "dot.png", PNG
    )
    # a form the browser sent itself (no HX-Request): back to the room
    assert resp.status == 303 and resp.getheader("Location", "").endswith("/chat/r/photos"), frag
    got = live.expect(r"/chat/files/")
    path = re.search(r'<img src="(/chat/files/[^"]+)"', got).group(1)
    # a member sees it, inline, with a safe type; a non-member gets 404 like a missing file
    resp, data = _get_raw(srv, path, {"Cookie": bob.cookie_header()})
    assert resp.status == 200 and data == PNG
    assert resp.headers["Content-Type"] == "image/png" and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Disposition"].startswith("inline")
    assert _get_raw(srv, path, {"Cookie": carol.cookie_header()})[0].status == 404
    assert _get_raw(srv, path, {})[0].status == 401
    # HTML is never served as HTML: a download, octet-stream
    resp, _ = _multipart(
        alice,
        "/chat/files/upload?to=%23photos",
        {"to": "#photos", "csrf": alice.csrf},
        "evil.html",
        b"<script>alert(1)</script>",
        "text/html",
    )
    assert resp.status == 303
    got = live.expect(r"evil\.html")
    href = re.search(r'href="(/chat/files/[^"]+evil\.html)"', got).group(1)
    resp, _ = _get_raw(srv, href, {"Cookie": bob.cookie_header()})
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    # too large: a clear refusal, nothing posted
    resp, frag = _multipart(
        alice,
        "/chat/files/upload?to=%23photos",
        {"to": "#photos", "csrf": alice.csrf},
        "big.bin",
        b"x" * (MAX_UPLOAD + 1),
    )
    assert resp.status == 413 and "too large" in frag and "MB" in frag
    resp, frag = _multipart(
        alice,
        "/chat/files/upload?to=%23photos",
        {"to": "#photos", "csrf": alice.csrf},
        "huge.bin",
        b"x" * (MAX_UPLOAD * 3),
    )
    assert resp.status == 413 and "too large" in frag
    assert "big.bin" not in page(bob, "/chat/r/photos")
    # carol cannot upload into a room she is not in: a private one is not there for her (404)
    page(carol, "/chat/r/general")
    resp, _ = _multipart(carol, "/chat/files/upload?to=%23photos", {"to": "#photos", "csrf": carol.csrf}, "x.png", PNG)
    assert resp.status == 404
    live.close()


def _basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()


def test_filehost_for_irc_clients_and_irc_web_bridge(srv):  # type: ignore[no-untyped-def]
    irc = IRC(srv.port("chat.irc_port"))
    irc.send("CAP LS 302")
    irc.send("NICK x")
    irc.send("USER u 0 * :Alice")
    irc.expect(r"CAP \* LS ")
    irc.send("CAP REQ :sasl server-time message-tags echo-message")
    irc.expect(r"CAP .* ACK ")
    irc.send("AUTHENTICATE PLAIN")
    irc.expect(r"^AUTHENTICATE \+")
    irc.send("AUTHENTICATE " + sasl("alice", PASSWORD))
    irc.expect(r" 903 ")
    irc.send("CAP END")
    welcome = irc.until(r" 366 alice #general ")
    isupport = " ".join(welcome)
    for ln in (ln for ln in welcome if " 005 " in ln):  # 15 parameters at most (RFC 1459 2.3)
        assert len(ln.split(" :", 1)[0].split()) - 2 + 1 <= 15, ln
    url = re.search(r" draft/FILEHOST=(\S+)", isupport).group(1)
    assert url.endswith("/chat/files/upload")
    assert f" soju.im/FILEHOST={url} " in isupport  # the name gamja, senpai and Goguma read
    # upload as an IRC client would: the body, Basic auth, 201 + Location
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=30)
    conn.request(
        "POST",
        "/chat/files/upload",
        body=PNG,
        headers={
            "Authorization": _basic("alice"),
            "Content-Type": "image/png",
            "Content-Disposition": 'attachment; filename="from irc.png"',
        },
    )
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 201, resp.status
    location = resp.headers["Location"]
    assert "/chat/files/" in location and location.endswith("from_irc.png")
    conn.request(
        "POST",
        "/chat/files/upload",
        body=PNG,
        headers={"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()},
    )
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 401
    # an app password (what a phone's IRC app keeps) works as well
    from gk.config import load
    from gk.context import open_accounts

    accounts = open_accounts(load(srv.data_dir), srv.data_dir)
    try:
        accounts.add_app_password(ALICE, "phone", "abcd-efgh-ijkm-npqr")
    finally:
        accounts.db.close()
    app = "Basic " + base64.b64encode(b"alice:abcd-efgh-ijkm-npqr").decode()
    conn.request("POST", "/chat/files/upload", body=b"notes", headers={"Authorization": app})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 201 and resp.headers["Location"].endswith("/file")
    conn.request("POST", "/chat/files/upload", body=b"x" * (MAX_UPLOAD + 1), headers={"Authorization": _basic("alice")})
    resp = conn.getresponse()
    assert resp.status == 413 and b"too large" in resp.read()
    conn.close()
    fpath = urllib.parse.urlsplit(location).path
    # not shared yet: bob cannot read it; alice can (Basic, as her IRC client would)
    assert _get_raw(srv, fpath, {"Authorization": _basic("bob")})[0].status == 404
    assert _get_raw(srv, fpath, {"Authorization": _basic("alice")})[0].status == 200
    bob = user(srv, BOB)
    start = page(bob, "/chat/r/general")
    live = Live(srv, bob, "#general")
    live.resume(last_of(start))
    # IRC → web: the message and the file it shares, live
    irc.send(f"PRIVMSG #general :from my phone {location}")
    got = live.expect(r"from my phone")
    assert "<img src=" in got
    deadline = time.monotonic() + 60
    while _get_raw(srv, fpath, {"Cookie": bob.cookie_header()})[0].status != 200:
        assert time.monotonic() < deadline, "the share was never recorded"
        time.sleep(0.2)
    # web → IRC
    send(bob, "#general", "hello irc, from the browser")
    irc.expect(r":bob!\S+ PRIVMSG #general :hello irc, from the browser")
    live.typing()  # the browser's typing notice reaches IRC clients as +typing
    irc.expect(r"^@\S*\+typing=active\S* :bob!\S+ TAGMSG #general$")
    irc.close()
    live.close()


def test_changes_while_away_are_redrawn_on_resume(srv):  # type: ignore[no-untyped-def]
    """Edits, deletions and reactions (added or removed) made while a page was disconnected
    replace its messages when it resumes (new messages come after them, once)."""
    alice, bob = user(srv, ALICE), user(srv, BOB)
    page(alice, "/chat/rooms")
    alice.post("/chat/rooms", {"name": "away"})
    page(bob, "/chat/rooms")
    bob.post("/chat/rooms", {"name": "away"})
    for i in range(5):
        send(alice, "#away", f"original {i}")
    text = page(bob, "/chat/r/away")
    ids = msg_ids(text)
    alice.post(f"/chat/m/{ids[3]}/react", {"reaction": "👍"})  # seen by the page, removed while away
    text = page(bob, "/chat/r/away")
    assert "👍 1" in text
    first = re.search(r'name="first" value="([^"]*)"', text).group(1)
    since = re.search(r'id="chat-since" name="since" value="(\d+)"', text).group(1)
    assert first == ids[0]
    live = Live(srv, bob, "#away")
    live.resume(last_of(text), first, since)
    mark = live.expect(r'id="chat-since"')
    since = re.search(r'id="chat-since" name="since" value="(\d+)"', mark).group(1)
    live.ws.sock.close()  # away
    time.sleep(0.01)
    page(alice, "/chat/r/away")
    alice.post(f"/chat/m/{ids[0]}/edit", {"text": "rewritten 0"})
    alice.post(f"/chat/m/{ids[1]}/delete", {})
    alice.post(f"/chat/m/{ids[2]}/react", {"reaction": "🎉"})
    alice.post(f"/chat/m/{ids[3]}/react", {"reaction": "👍"})  # the same reaction again: removed
    send(alice, "#away", "new while away")
    back = Live(srv, bob, "#away")
    back.resume(last_of(text), first, since)
    back.expect(r"new while away")
    got = "".join(back.seen)
    assert re.search(rf'id="m-{ids[0]}"[^>]*hx-swap-oob="true".*rewritten 0', got, re.S)
    assert re.search(rf'id="m-{ids[1]}"[^>]*hx-swap-oob="true".*Message deleted', got, re.S)
    assert re.search(rf'id="m-{ids[2]}"[^>]*hx-swap-oob="true".*🎉 1', got, re.S)
    unreacted = re.search(rf'id="m-{ids[3]}"[^>]*hx-swap-oob="true"(.*?)(id="m-|$)', got, re.S)
    assert unreacted and "original 3" in unreacted.group(1) and "👍 1" not in unreacted.group(1), got
    assert f'id="m-{ids[4]}"' not in got  # unchanged: not sent again
    assert got.count("new while away") == 1
    back.close()


def test_chat_pages_in_french_have_no_english_left(srv):  # type: ignore[no-untyped-def]
    from test_web_french import assert_french, catalog_english

    known = catalog_english()
    carol = user(srv, CAROL)
    page(carol, "/chat/r/general")
    send(carol, "#general", "bonjour à tous")
    fr = {"Accept-Language": "fr-FR,fr;q=0.9"}
    for path, expected in [
        ("/chat/r/general", ("Salons", "Messages directs", "Partager un fichier", "Répondre")),
        ("/chat/rooms", ("Créer ou rejoindre un salon", "Message direct")),
        ("/chat/search?q=hello", ("Rechercher dans les messages", "résultats")),
    ]:
        resp, text = carol.get(path, headers=fr)
        assert resp.status == 200, path
        assert_french(text, *expected, known=known)
    resp, text = carol.get("/chat/r/nosuchroom", headers=fr)
    assert resp.status == 404 and "Ce salon n&#39;existe pas." in text


def test_a_chat_name_shared_by_two_users_is_refused(make_server):  # type: ignore[no-untyped-def]
    """dave@a and dave@b would be one chat identity (each reading the other's direct messages):
    the web chat refuses both, as the IRC server does."""
    s = make_server(
        overrides={
            "http": {"https_port": 0},
            "smtp": {"port": 0, "submission_port": 0, "submissions_port": 0},
            "imap": {"port": 0, "tls_port": 0},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
        }
    )
    s.write_config()
    s.add_user("dave@a.example", PASSWORD)
    s.add_user("dave@b.example", PASSWORD)
    claim.claim(s.data_dir, "test")
    claim.complete(s.data_dir)
    s.start()
    dave = user(s, "dave@a.example")
    resp, text = dave.get("/chat/r/general")
    assert resp.status == 403 and "shared by several users" in text
    assert Live(s, dave, "#general").closed_code() == 1008
    conn = http.client.HTTPConnection("127.0.0.1", s.port("http.port"), timeout=30)
    auth = "Basic " + base64.b64encode(f"dave@b.example:{PASSWORD}".encode()).decode()
    conn.request("POST", "/chat/files/upload", body=PNG, headers={"Authorization": auth})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 403
    conn.close()


def test_topic_live_and_leaving_a_room(srv):  # type: ignore[no-untyped-def]
    alice, bob = user(srv, ALICE), user(srv, BOB)
    page(alice, "/chat/rooms")
    alice.post("/chat/rooms", {"name": "plans"})
    alice.post("/chat/r/plans/invite", {"user": "bob"})
    start = page(bob, "/chat/r/plans")
    live = Live(srv, bob, "#plans")
    live.resume(last_of(start))
    resp, _ = alice.post("/chat/r/plans/topic", {"topic": "Summer <holidays>"})
    assert resp.status == 303
    assert 'id="topic"' in live.expect(r"Summer &lt;holidays&gt;")
    # bob leaves: his socket on the room closes, the room leaves his list, its page is a join offer
    resp, _ = bob.post("/chat/r/plans/leave", {})
    assert resp.status == 303 and resp.headers["Location"].endswith("/chat/rooms")
    assert live.closed_code() == 1008
    assert 'href="/chat/r/plans"' not in page(bob, "/chat/rooms").split("<section")[0]
    assert "You are not in this room yet." in page(bob, "/chat/r/plans")
    live.close()


def test_an_acknowledged_upload_survives_kill9(srv):  # type: ignore[no-untyped-def]
    """201 is sent after the file and its row are on disk: kill -9 right after loses neither."""
    payload = PNG + bytes(range(256)) * 64
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=30)
    conn.request(
        "POST",
        "/chat/files/upload",
        body=payload,
        headers={"Authorization": _basic("alice"), "Content-Disposition": 'attachment; filename="kept.png"'},
    )
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 201
    path = urllib.parse.urlsplit(resp.headers["Location"]).path
    conn.close()
    srv.kill9()
    srv.start()
    resp, data = _get_raw(srv, path, {"Authorization": _basic("alice")})
    assert resp.status == 200 and data == payload


def test_a_page_far_behind_jumps_to_the_newest(srv):  # type: ignore[no-untyped-def]
    """A page away while hundreds of messages came (or whose last message is unknown here) is
    given the newest ones in place of its timeline, not the whole backlog."""
    bob = user(srv, BOB)
    page(bob, "/chat/rooms")
    bob.post("/chat/rooms", {"name": "busy"})
    send(bob, "#busy", "where bob left")
    left = last_of(page(bob, "/chat/r/busy"))
    irc = IRC(srv.port("chat.irc_port"))
    irc.send("CAP REQ :sasl")
    irc.send("NICK x")
    irc.send("USER u 0 * :Alice")
    irc.send("AUTHENTICATE PLAIN")
    irc.send("AUTHENTICATE " + sasl("alice", PASSWORD))
    irc.send("CAP END")
    irc.expect(r" 001 ")
    irc.send("JOIN #busy")
    irc.expect(r" 366 alice #busy ")
    for part in range(4):  # under the flood limit (400 lines at once in this server)
        irc.sock.sendall(b"".join(b"PRIVMSG #busy :burst %d\r\n" % i for i in range(part * 130, part * 130 + 130)))
        irc.send(f"PING :sent{part}")
        irc.expect(rf"PONG .*sent{part}", timeout=120)
        time.sleep(0.7)
    live = Live(srv, bob, "#busy")
    live.resume(left)
    got = live.expect(r'<div id="timeline"[^>]*hx-swap-oob="true"')
    assert "burst 519" in got and "burst 400" not in got and 'id="older"' in got
    assert 'id="chat-last"' in got
    live.expect(r'id="live-state"')
    assert sum(s.count("<article") for s in live.seen) == 50
    live.close()
    unknown = Live(srv, bob, "#busy")
    unknown.resume("no-such-message-id")
    assert "burst 519" in unknown.expect(r'<div id="timeline"[^>]*hx-swap-oob="true"')
    unknown.close()
    irc.close()
