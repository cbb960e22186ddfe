"""A private room does not exist for whoever is neither in it nor invited to it, against a real
``gk serve``. Over IRC (TLS and the WebSocket transport, real sockets) every command naming it
gets, line for line apart from the name, the answer a name nobody took gets; LIST leaves it out.
On the web every page, fragment, form, upload and live socket addressing it answers as for a
missing room (404, the same text), and no list or search shows it.

Joining it is the one answer that differs, and must: a join of a free name creates the room,
so any refusal says the name is taken. It is 473 and nothing else (no topic, no members). Whoever
is invited may join, so for them the room exists (its join page on the web).

One server for the module; the private room and its message are seeded before it starts.
"""

from __future__ import annotations

import itertools
import os
import re
import urllib.parse

import pytest
from support.gkserver import GKServer
from support.irc import PASSWORD, LineClient, chat_config, connect, ws_connect
from test_web_http import Client

websocket = pytest.importorskip("websocket", reason="websocket-client is in the test extra")

ALICE, BOB, CAROL, DAVE = "alice@example.org", "bob@example.org", "carol@example.org", "dave@example.org"
# a private room of alice's and a name nobody took, of the same length; bob is in neither
HIDDEN, ABSENT = "lockbox", "nowhere"
TOPIC = "where the plan is kept"
SECRET = "the surprise is on the fifth"
FILE = [("file", "a.txt", b"hi")]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):  # type: ignore[no-untyped-def]
    from gk.chat.core import ChatService

    s = GKServer(tmp_path_factory.mktemp("chatpriv") / "gk", {"http": {"https_port": 0}, **chat_config()})
    s.claimed({who: PASSWORD for who in (ALICE, BOB, CAROL, DAVE)})
    chat = ChatService.open(s.data_dir, [], None)
    chat.create_room(HIDDEN, "alice", private=True)
    chat.set_topic(HIDDEN, TOPIC, "alice")
    chat.post("alice", "#" + HIDDEN, SECRET)
    chat.invite(HIDDEN, "dave", "alice")  # dave may join it: for him it exists
    chat.stop()
    s.start()
    yield s
    s.stop()


# -- IRC --------------------------------------------------------------------------------------

_sync = itertools.count()


def answer(c: LineClient, line: str) -> list[str]:
    """Every line the server sends in answer to ``line`` (none for some): what comes before the
    PONG of a PING sent right after it."""
    token = f"sync{next(_sync)}"
    c.send(line)
    c.send(f"PING {token}")
    return c.until(rf" PONG \S+ :?{token}$")[:-1]


def same_but_name(hidden: list[str], absent: list[str]) -> bool:
    return [re.sub(HIDDEN, "ROOM", ln, flags=re.I) for ln in hidden] == [
        re.sub(ABSENT, "ROOM", ln, flags=re.I) for ln in absent
    ]


# every command that names a channel, in the forms a client probing for a room would send
COMMANDS = [
    "PRIVMSG {room} :is anyone here?",
    "PRIVMSG {ROOM},bob :two targets",
    "NOTICE {room} :is anyone here?",
    "@+typing=active TAGMSG {room}",
    "@+example.org/probe=1 TAGMSG {room}",
    "PART {room}",
    "PART {ROOM} :bye",
    "INVITE carol {room}",
    "INVITE alice {room}",
    "INVITE nosuchuser {room}",
    "KICK {room} alice",
    "KICK {room} alice :out",
    "TOPIC {room}",
    "TOPIC {ROOM}",
    "TOPIC {room} :mine now",
    "MODE {room}",
    "MODE {ROOM}",
    "MODE {room} +i",
    "MODE {room} -i",
    "MODE {room} b",
    "MODE {room} +k key",
    "NAMES {room}",
    "NAMES {room},#general",
    "WHO {room}",
    "CHATHISTORY LATEST {room} * 10",
    "CHATHISTORY BEFORE {room} timestamp=2099-01-01T00:00:00.000Z 10",
    "MARKREAD {room}",
    "MARKREAD {room} timestamp=2026-01-01T00:00:00.000Z",
    "REDACT {room} nosuchmsgid",
]


def irc_client(srv: GKServer, transport: str, user: str, caps: str) -> LineClient:
    if transport == "tls":
        return connect(srv.port("chat.irc_port"), user, caps)
    return ws_connect(srv.port("http.port"), user, caps)


@pytest.mark.parametrize("transport", ["tls", "websocket"])
def test_irc_answers_about_a_private_room_as_about_a_missing_one(srv, transport):  # type: ignore[no-untyped-def]
    bob = irc_client(srv, transport, BOB, "message-tags draft/chathistory draft/read-marker")
    alice = irc_client(srv, transport, ALICE, "")
    try:
        answer(bob, "PING start")  # the welcome and the default room's JOIN read
        answer(alice, "PING start")
        # the control: the room is there, private, with its topic (a member sees it)
        assert f" 324 alice #{HIDDEN} :+nti" in "\n".join(answer(alice, f"MODE #{HIDDEN}"))
        differ = []
        no_such: set[str] = set()
        for template in COMMANDS:
            hidden = answer(bob, template.format(room="#" + HIDDEN, ROOM="#" + HIDDEN.upper()))
            absent = answer(bob, template.format(room="#" + ABSENT, ROOM="#" + ABSENT.upper()))
            if not same_but_name(hidden, absent):
                differ.append(f"{template}\n  private: {hidden}\n  missing: {absent}")
            no_such |= {ln.rsplit(" :", 1)[1] for ln in absent if f" 403 bob #{ABSENT.lower()} " in ln.lower()}
        assert not differ, "answers that tell a private room from a missing one:\n" + "\n".join(differ)
        assert no_such == {"No such channel"}, no_such  # one wording, whichever command asked
        listed = answer(bob, "LIST")
        assert listed[-1].endswith("End of /LIST") and not any(HIDDEN in ln for ln in listed), listed
        # joining is refused with 473 alone: no topic, no member, no line of it
        refused = answer(bob, "JOIN #" + HIDDEN)
        assert len(refused) == 1 and f" 473 bob #{HIDDEN} :" in refused[0], refused
        assert not any(TOPIC in ln or SECRET in ln for ln in bob.seen), bob.seen
        assert not [ln for ln in bob.seen if HIDDEN in ln.lower() and "alice" in ln]  # nor its member
        # nothing bob sent changed the room, and no probe created the missing one
        assert f" 332 alice #{HIDDEN} :{TOPIC}" in "\n".join(answer(alice, f"TOPIC #{HIDDEN}"))
        assert answer(alice, f"NAMES #{HIDDEN}")[0].endswith(f" #{HIDDEN} :alice")
        assert f" 403 alice #{ABSENT} " in "\n".join(answer(alice, f"MODE #{ABSENT}"))
    finally:
        bob.close()
        alice.close()


# -- the web ----------------------------------------------------------------------------------


def web_user(srv: GKServer, address: str) -> Client:
    c = Client(srv)
    c.login(address, PASSWORD)
    c.get("/chat/rooms")  # the session's CSRF token
    assert c.csrf
    return c


def _normal(text: str, name: str) -> str:
    text = re.sub(r'nonce="[^"]*"', 'nonce=""', text)  # per response
    return re.sub(name, "ROOM", text, flags=re.I)


def _live_close(srv: GKServer, c: Client, to: str) -> tuple[int, str]:
    """The close code and reason ``/chat/ws?to=`` answers (it checks the room after the upgrade)."""
    port = srv.port("http.port")
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/chat/ws?to={urllib.parse.quote(to)}",
        timeout=30,
        header=[f"Cookie: {c.cookie_header()}"],
        origin=f"http://127.0.0.1:{port}",
    )
    try:
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big"), data[2:].decode()
    finally:
        ws.close()


def test_web_answers_about_a_private_room_as_about_a_missing_one(srv):  # type: ignore[no-untyped-def]
    bob = web_user(srv, BOB)
    htmx = {"HX-Request": "true", "X-CSRF-Token": bob.csrf}
    # (what, request for a room name, the status both must get)
    probes = [
        ("room page", lambda n: bob.get(f"/chat/r/{n}"), 404),
        ("older", lambda n: bob.get(f"/chat/older?to=%23{n}&before=x"), 404),
        ("compose", lambda n: bob.get(f"/chat/compose?to=%23{n}"), 404),
        ("send", lambda n: bob.post("/chat/send", {"to": f"#{n}", "text": "let me in"}), 404),
        ("send (htmx)", lambda n: bob.request("POST", "/chat/send", {"to": f"#{n}", "text": "x"}, htmx), 200),
        ("invite", lambda n: bob.post(f"/chat/r/{n}/invite", {"user": "carol"}), 404),
        ("topic", lambda n: bob.post(f"/chat/r/{n}/topic", {"topic": "mine now"}), 404),
        ("leave", lambda n: bob.post(f"/chat/r/{n}/leave", {}), 303),
        ("upload", lambda n: bob.post_multipart(f"/chat/files/upload?to=%23{n}", {"to": f"#{n}"}, FILE), 404),
    ]
    differ = []
    for what, probe, status in probes:
        (rh, th), (ra, ta) = probe(HIDDEN), probe(ABSENT)
        hidden = (rh.status, _normal(rh.getheader("Location", ""), HIDDEN), _normal(th, HIDDEN))
        absent = (ra.status, _normal(ra.getheader("Location", ""), ABSENT), _normal(ta, ABSENT))
        if hidden != absent or rh.status != status:
            at = max(len(os.path.commonprefix([hidden[2], absent[2]])) - 80, 0)  # where they part
            seen = f"private {hidden[:2]} {hidden[2][at : at + 160]!r}"
            differ.append(f"{what}: {seen}\n  missing {absent[:2]} {absent[2][at : at + 160]!r}")
        assert SECRET not in th and TOPIC not in th, what
    assert not differ, "answers that tell a private room from a missing one:\n" + "\n".join(differ)
    # the live timeline's socket closes alike
    assert _live_close(srv, bob, "#" + HIDDEN) == _live_close(srv, bob, "#" + ABSENT)
    # no list, search or room page of bob's shows it
    for path in ("/chat/rooms", "/chat/search?q=surprise", "/chat/r/general"):
        resp, text = bob.get(path)
        assert resp.status == 200 and HIDDEN not in text and SECRET not in text, path
    # dave is invited: for him the room exists, its join page (not its messages, not its members)
    dave = web_user(srv, DAVE)
    resp, text = dave.get(f"/chat/r/{HIDDEN}")
    assert resp.status == 200 and f'name="name" value="{HIDDEN}"' in text, (resp.status, text[:300])
    assert SECRET not in text
    # and alice's room is as it was: her topic, her message, no member added, nothing from bob
    alice = web_user(srv, ALICE)
    resp, text = alice.get(f"/chat/r/{HIDDEN}")
    assert resp.status == 200 and TOPIC in text and SECRET in text
    assert "let me in" not in text and "mine now" not in text
