"""IRC over WebSocket (IRCv3 ``websocket``) at ``/chat/irc`` on the web listener of a real
``gk serve``, driven by ``websocket-client``: the same sessions as the TLS port (SASL required,
rooms shared with TCP clients, chathistory), the Origin check before the upgrade, subprotocol
negotiation, oversize messages, malformed lines."""

from __future__ import annotations

import pytest
from support.irc import ALICE, BOB, PASSWORD, WS, connect, ws_connect

from gk import claim

websocket = pytest.importorskip("websocket", reason="websocket-client is in the test extra")


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):  # type: ignore[no-untyped-def]
    from support.gkserver import GKServer

    srv = GKServer(
        tmp_path_factory.mktemp("chatws"),
        {
            "http": {"websocket_origins": ["https://webirc.example.net"]},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
            "chat": {"line_burst": 400, "lines_per_second": 200.0},
        },
    )
    srv.write_config()
    srv.add_user(ALICE, PASSWORD)
    srv.add_user(BOB, PASSWORD)
    claim.claim(srv.data_dir, "test")  # an unclaimed box serves only the wizard
    claim.complete(srv.data_dir)
    srv.start()
    yield srv
    srv.stop()


def http_port(srv) -> int:  # type: ignore[no-untyped-def]
    return srv.port("http.port")


def irc_port(srv) -> int:  # type: ignore[no-untyped-def]
    return srv.port("chat.irc_port")


def test_sasl_join_and_messages_cross_to_tcp_both_ways(chat_server):  # type: ignore[no-untyped-def]
    w = ws_connect(http_port(chat_server), ALICE, "server-time message-tags echo-message")
    assert w.subprotocol == "text.ircv3.net"
    t = connect(irc_port(chat_server), BOB, "server-time message-tags")
    w.send("JOIN #wsroom")
    w.expect(r" 366 alice #wsroom ")
    t.send("JOIN #wsroom")
    t.expect(r" 366 bob #wsroom ")
    w.expect(r":bob!bob@\S+ JOIN #wsroom")
    w.send("PRIVMSG #wsroom :hello from the browser \u00e9")
    assert "msgid=" in w.expect(r"PRIVMSG #wsroom :hello from the browser")  # echo-message
    t.expect(r":alice!alice@\S+ PRIVMSG #wsroom :hello from the browser \u00e9$")
    t.send("PRIVMSG #wsroom :hello from the phone")
    w.expect(r":bob!bob@\S+ PRIVMSG #wsroom :hello from the phone$")
    w.send("PING :tok")
    w.expect(r"PONG \S+ :tok$")
    w.send("QUIT :bye")
    assert any(ln.startswith("ERROR ") for ln in w.until_closed())
    w.close()
    t.close()


def test_binary_subprotocol_and_chathistory(chat_server):  # type: ignore[no-untyped-def]
    t = connect(irc_port(chat_server), BOB, "")
    t.send("JOIN #wshist")
    t.expect(r" 366 bob #wshist ")
    for i in range(3):
        t.send(f"PRIVMSG #wshist :old message {i}")
    t.send("PING :sync")
    t.expect(r"PONG \S+ :sync$")
    w = ws_connect(
        http_port(chat_server),
        ALICE,
        "server-time message-tags batch draft/chathistory",
        subprotocols=["binary.ircv3.net", "text.ircv3.net"],
    )
    assert w.subprotocol == "binary.ircv3.net"  # the client's first choice
    w.send(b"JOIN #wshist\r\n")  # a trailing CRLF is tolerated
    w.expect(r" 366 alice #wshist ")
    w.send("CHATHISTORY LATEST #wshist * 10")
    w.expect(r"BATCH \+\S+ chathistory #wshist")
    lines = [w.expect(r"PRIVMSG #wshist :old message 0")]
    lines.append(w.expect(r"PRIVMSG #wshist :old message 1"))
    lines.append(w.expect(r"PRIVMSG #wshist :old message 2"))
    assert all("batch=" in ln and "time=" in ln for ln in lines)
    w.expect(r"BATCH -")
    w.close()
    t.close()


def raw_handshake(port: int, headers: str) -> str:
    """The server's answer to a hand-written upgrade request (websocket-client itself refuses a
    101 without one of the subprotocols it asked for, as RFC 6455 lets a client)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            (
                "GET /chat/irc HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + headers + "\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n")[0].decode()


def test_no_or_unknown_subprotocol_falls_back_to_text(chat_server):  # type: ignore[no-untyped-def]
    port = http_port(chat_server)
    # an unknown one: accepted without the Sec-WebSocket-Protocol header (the spec's MAY)
    head = raw_handshake(port, "Sec-WebSocket-Protocol: chat.example, another.example\r\n")
    assert head.startswith("HTTP/1.1 101 ") and "sec-websocket-protocol" not in head.lower(), head
    head = raw_handshake(port, "Sec-WebSocket-Protocol: chat.example, text.ircv3.net\r\n")
    assert "Sec-WebSocket-Protocol: text.ircv3.net" in head, head
    # none asked: text messages
    w = WS(port, subprotocols=[])
    assert w.subprotocol is None
    w.send("CAP LS 302")
    opcode, data = w.ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_TEXT and b"sasl=PLAIN" in data
    w.close()


def test_origin_checked_before_the_upgrade(chat_server):  # type: ignore[no-untyped-def]
    port = http_port(chat_server)
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        WS(port, origin="https://evil.example.com")
    assert exc.value.status_code == 403
    # the page's own host (any scheme) and a configured origin are accepted
    for origin in (f"http://127.0.0.1:{port}", "https://webirc.example.net"):
        w = WS(port, origin=origin)
        w.send("CAP LS 302")
        w.expect(r"CAP \* LS ")
        w.close()


def test_plain_http_get_is_not_an_irc_session(chat_server):  # type: ignore[no-untyped-def]
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"http://127.0.0.1:{http_port(chat_server)}/chat/irc/", timeout=60)
    assert exc.value.code == 426


def test_unauthenticated_privmsg_refused_and_malformed_line_survived(chat_server):  # type: ignore[no-untyped-def]
    w = WS(http_port(chat_server))
    w.send("CAP LS 302")
    w.expect(r"CAP \* LS ")
    w.send("PRIVMSG #general :not logged in")
    w.expect(r" 451 ")
    w.close()
    w = ws_connect(http_port(chat_server), ALICE)
    w.send("@bad key=1 PING :x")
    w.expect(r" 421 alice \* :Malformed line")
    w.send("PRIVMSG #general :" + "x" * 600)  # within a WebSocket message, over the IRC line limit
    w.expect(r" 417 alice :Input line was too long")
    w.send("PING :still-here")
    w.expect(r"PONG \S+ :still-here$")
    w.close()


def test_oversize_message_is_an_error_and_a_close(chat_server):  # type: ignore[no-untyped-def]
    w = ws_connect(http_port(chat_server), ALICE)
    w.send("PRIVMSG #general :" + "x" * 9000)
    abnf = websocket.ABNF
    frame = w.ws.recv_frame()
    texts = []
    while frame.opcode != abnf.OPCODE_CLOSE:
        texts.append(frame.data.decode())
        frame = w.ws.recv_frame()
    assert any(t.startswith("ERROR :Input line was too long") for t in texts), texts
    assert frame.data[:2] == (1009).to_bytes(2, "big"), frame.data  # Message Too Big
    w.close()
    # the server is fine: the next connection works
    w = ws_connect(http_port(chat_server), ALICE)
    w.close()


def test_over_https_too(chat_server):  # type: ignore[no-untyped-def]
    w = ws_connect(chat_server.port("http.https_port"), BOB, tls=True)
    w.send("PING :tls")
    w.expect(r"PONG \S+ :tls$")
    w.close()


def test_flood_limits_as_on_tcp(make_server):  # type: ignore[no-untyped-def]
    srv = make_server(
        overrides={
            "http": {"https_port": 0},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
            "chat": {"line_burst": 20, "lines_per_second": 1.0},
        }
    )
    srv.write_config()
    srv.add_user(ALICE, PASSWORD)
    claim.claim(srv.data_dir, "test")
    claim.complete(srv.data_dir)
    srv.start()
    w = ws_connect(srv.port("http.port"), ALICE)
    for i in range(60):
        try:
            w.send(f"PING :{i}")
        except (websocket.WebSocketConnectionClosedException, OSError):
            break
    lines = w.until_closed()
    assert any(ln.startswith("ERROR :Excess flood") for ln in lines), lines
    w.close()


def test_fragments_pings_and_bad_utf8(chat_server):  # type: ignore[no-untyped-def]
    abnf = websocket.ABNF
    w = ws_connect(http_port(chat_server), ALICE)
    # one IRC line in three fragments, a ping between them: one message, answered once
    w.ws.send_frame(abnf.create_frame("PING ", abnf.OPCODE_TEXT, fin=0))
    w.ws.ping(b"are you there")
    w.ws.send_frame(abnf.create_frame(":frag", abnf.OPCODE_CONT, fin=0))
    w.ws.send_frame(abnf.create_frame("mented", abnf.OPCODE_CONT, fin=1))
    w.ws.settimeout(60)
    pongs, texts = [], []
    while not any(t.endswith(b" :fragmented") for t in texts):
        frame = w.ws.recv_frame()
        (pongs if frame.opcode == abnf.OPCODE_PONG else texts).append(frame.data)
    assert pongs == [b"are you there"], (pongs, texts[-5:])
    # a text message that is not UTF-8 breaks the text subprotocol: close 1007
    w.ws.send_frame(abnf.create_frame(b"PING :\xff\xfe", abnf.OPCODE_TEXT))
    frame = w.ws.recv_frame()
    while frame.opcode != abnf.OPCODE_CLOSE:
        frame = w.ws.recv_frame()
    assert frame.data[:2] == (1007).to_bytes(2, "big"), frame.data
    w.close()
    # in binary.ircv3.net any bytes are a line; the session answers its own way (no crash)
    w = ws_connect(http_port(chat_server), ALICE, subprotocols=["binary.ircv3.net"])
    w.send(b"\xff\xfe PING")
    w.expect(r" 421 ")
    w.send(b"PING :after")
    w.expect(r"PONG \S+ :after$")
    w.close()
