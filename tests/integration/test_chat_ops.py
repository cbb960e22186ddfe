"""Running the chat, against a real ``gk serve``: ``gk chat rooms|history|export`` read what
IRC clients wrote; every user of the box (one added while it runs too) is a member of the
default room; a mention or direct message left unread past ``[chat] digest_after`` arrives as
one mail digest in the user's INBOX (read over IMAP), in their language, once; a message read
in time or a user who opted out gets none."""

from __future__ import annotations

import email
import email.policy
import imaplib
import json
import re
import time

import pytest
from support.gkserver import gk
from support.imap import tls_client_context
from support.irc import ALICE, BOB, PASSWORD, chat_config, connect
from test_web_http import NO_MAIL, Client, run_wizard

from gk import claim

CAROL = "carol@example.org"
DAVE = "dave@example.org"  # French
ERIN = "erin@example.org"  # opted out of digests
DIGEST_AFTER = 15.0  # seconds: long enough for a client to mark a message read on a loaded machine


def set_language(srv, address: str, lang: str) -> None:  # type: ignore[no-untyped-def]
    from gk.config import load
    from gk.context import open_accounts

    store = open_accounts(load(srv.data_dir), srv.data_dir)
    try:
        store.set_profile(address, language=lang)
    finally:
        store.db.close()


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):  # type: ignore[no-untyped-def]
    from support.gkserver import GKServer

    srv = GKServer(
        tmp_path_factory.mktemp("chatops"),
        {"http": {"https_port": 0}, **chat_config(digest_after=DIGEST_AFTER)},
    )
    srv.write_config()
    for who in (ALICE, BOB, CAROL, DAVE, ERIN):
        srv.add_user(who, PASSWORD, admin=who == ALICE)
    set_language(srv, DAVE, "fr")
    claim.claim(srv.data_dir, "test")  # an unclaimed box serves only the wizard
    claim.complete(srv.data_dir)
    srv.start()
    yield srv
    srv.stop()


def irc_port(srv) -> int:  # type: ignore[no-untyped-def]
    return int(srv.port("chat.irc_port"))


def inbox(srv, user: str) -> list[email.message.EmailMessage]:  # type: ignore[no-untyped-def]
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imap.tls_port"), ssl_context=tls_client_context(), timeout=30)
    try:
        m.login(user, PASSWORD)
        m.select("INBOX")
        _, data = m.uid("SEARCH", "ALL")
        out = []
        for uid in data[0].split():
            _, parts = m.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next(p[1] for p in parts if isinstance(p, tuple))
            out.append(email.message_from_bytes(raw, policy=email.policy.default))
        return out
    finally:
        m.logout()


def digests(srv, user: str) -> list[email.message.EmailMessage]:  # type: ignore[no-untyped-def]
    return [m for m in inbox(srv, user) if "[Chat]" in str(m["Subject"])]


def wait_for(fn, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1)


def test_cli_rooms_history_and_export(chat_server, tmp_path):  # type: ignore[no-untyped-def]
    a = connect(irc_port(chat_server), ALICE, "echo-message message-tags server-time")
    b = connect(irc_port(chat_server), BOB, "message-tags")
    try:
        a.until(r" 366 alice #general ")  # the default room: joined at the first login
        a.send("JOIN #backups")
        a.expect(r" 366 alice #backups ")
        a.send("TOPIC #backups :what we keep")
        a.expect(r"TOPIC #backups :what we keep")
        a.send("PRIVMSG #backups :first line \u00e9t\u00e9")
        first = re.search(r"msgid=([^; ]+)", a.expect(r"PRIVMSG #backups :first line")).group(1)  # type: ignore[union-attr]
        a.send(f"@+draft/reply={first} PRIVMSG #backups :a reply")
        a.expect(r"PRIVMSG #backups :a reply")
        a.send("PRIVMSG #backups :\x01ACTION waves\x01")
        a.expect(r"ACTION waves")
        a.send("PRIVMSG bob :just between us")
        a.expect(r"PRIVMSG bob :just between us")
        b.expect(r"PRIVMSG bob :just between us")
    finally:
        a.close()
        b.close()
    rooms = gk(chat_server.data_dir, "chat", "rooms").stdout
    assert re.search(r"^#backups\tpublic\t1 member\(s\)\t3 message\(s\)\twhat we keep$", rooms, re.M), rooms
    assert re.search(r"^#general\tpublic\t5 member\(s\)\t", rooms, re.M), rooms  # every user of the box
    history = gk(chat_server.data_dir, "chat", "history", "#backups").stdout.splitlines()
    assert [re.sub(r"^\S+ \S+ ", "", ln) for ln in history] == [
        "<alice> first line \u00e9t\u00e9",
        "<alice> a reply (in reply to <alice> first line \u00e9t\u00e9)",
        "* alice waves",
    ]
    assert "<alice> just between us" in gk(chat_server.data_dir, "chat", "history", "alice,bob").stdout

    out = tmp_path / "chat.json"
    r = gk(chat_server.data_dir, "chat", "export", "-o", str(out))
    assert "exported" in r.stderr and out.stat().st_mode & 0o077 == 0
    data = json.loads(out.read_text())
    assert data["format"] == "gk-chat-export/1"
    rooms_json = {r["name"]: r for r in data["rooms"]}
    backups = rooms_json["backups"]
    assert backups["topic"] == "what we keep" and backups["members"] == ["alice"] and not backups["private"]
    texts = [m["text"] for m in backups["messages"]]
    assert texts == ["first line \u00e9t\u00e9", "a reply", "\x01ACTION waves\x01"]
    assert backups["messages"][1]["reply_to"] == first == backups["messages"][0]["msgid"]
    assert backups["messages"][0]["time_iso"].endswith("Z")
    assert any(
        d["members"] == ["alice", "bob"] and d["messages"][0]["text"] == "just between us" for d in data["direct"]
    )

    one = json.loads(gk(chat_server.data_dir, "chat", "export", "backups").stdout)
    assert [r["name"] for r in one["rooms"]] == ["backups"] and one["direct"] == []
    r = gk(chat_server.data_dir, "chat", "export", "#nosuch", check=False)
    assert r.returncode == 1 and "no room named #nosuch" in r.stderr
    r = gk(chat_server.data_dir, "chat", "history", "#nosuch", check=False)
    assert r.returncode == 1 and "no room named #nosuch" in r.stderr


def test_a_user_added_while_running_joins_the_default_room(chat_server):  # type: ignore[no-untyped-def]
    gk(chat_server.data_dir, "user", "add", "frank@example.org", "--password-stdin", input=PASSWORD + "\n")

    def members() -> str:
        line = next(
            ln for ln in gk(chat_server.data_dir, "chat", "rooms").stdout.splitlines() if ln.startswith("#general\t")
        )
        return line.split("\t")[2]

    assert wait_for(lambda: members() == "6 member(s)"), members()
    f = connect(irc_port(chat_server), "frank@example.org")
    try:
        f.send("NAMES #general")
        names = f.expect(r" 353 frank ")
        assert "frank" in names and "carol" in names
    finally:
        f.close()


def test_unread_mentions_and_direct_messages_are_mailed_once(chat_server):  # type: ignore[no-untyped-def]
    p = irc_port(chat_server)
    e = connect(p, ERIN)
    b = connect(p, BOB, "echo-message message-tags server-time")
    c = connect(p, CAROL, "message-tags server-time draft/read-marker")
    try:
        c.until(r" 366 carol #general ")
        # erin opts out on her account page
        web = Client(chat_server)
        web.login(ERIN, PASSWORD)
        _, page = web.get("/account")
        assert 'name="digest" value="1" checked' in page
        resp, _ = web.post("/account/chat-digest", {})
        assert resp.status == 303
        _, page = web.get("/account")
        assert 'name="digest" value="1">' in page  # unchecked now
        b.send("PRIVMSG #general :alice: lunch at noon? dave and erin too")
        b.expect(r"PRIVMSG #general :alice: lunch")
        b.send("PRIVMSG alice :are you there?")
        b.expect(r"PRIVMSG alice :are you there\?")
        b.send("PRIVMSG #general :@carol please read this")
        b.expect(r"PRIVMSG #general :@carol please")
        b.send("PRIVMSG #general :nobody is named here")
        b.expect(r"PRIVMSG #general :nobody is named")
        # carol reads it at once: her read marker passes the message
        seen = c.expect(r"PRIVMSG #general :@carol please")
        stamp = re.search(r"time=([^; ]+)", seen).group(1)  # type: ignore[union-attr]
        c.send(f"MARKREAD #general timestamp={stamp}")
        c.expect(r"MARKREAD #general timestamp=")
    finally:
        for cl in (b, c, e):
            cl.close()

    got = wait_for(lambda: digests(chat_server, ALICE), 180)
    assert len(got) == 1, [str(m["Subject"]) for m in got]
    mail = got[0]
    assert str(mail["Subject"]) == "[Chat] 2 unread messages"
    assert mail["Auto-Submitted"] == "auto-generated" and mail["To"] == ALICE
    body = mail.get_content()
    assert "bob in #general" in body and "alice: lunch at noon?" in body
    assert "bob, in a direct message" in body and "are you there?" in body
    assert "nobody is named here" not in body and "/chat" in body and "/account" in body

    fr = wait_for(lambda: digests(chat_server, DAVE), 60)
    assert [str(m["Subject"]) for m in fr] == ["[Chat] 1 message non lu"]
    assert "bob dans #general" in fr[0].get_content()

    # two more rounds: nothing more for anyone, carol (read in time) and erin (opted out) got none
    time.sleep(3 * min(60.0, DIGEST_AFTER / 2) + 2)
    assert len(digests(chat_server, ALICE)) == 1
    assert len(digests(chat_server, DAVE)) == 1
    assert digests(chat_server, CAROL) == []
    assert digests(chat_server, ERIN) == []
    # bob sent all of these: his only digest is alice's direct message of the first test
    assert all("lunch" not in m.get_content() for m in digests(chat_server, BOB))


def test_admin_manages_rooms_and_members_see_it_live(chat_server):  # type: ignore[no-untyped-def]
    web = Client(chat_server)
    web.login(ALICE, PASSWORD)
    _, page = web.get("/admin/rooms")
    assert 'id="room-general"' in page and "/admin/rooms/general/delete" not in page  # a default room stays
    resp, page = web.post("/admin/rooms", {"name": "bad name!"})
    assert resp.status == 400 and "Room names are 1 to 50" in page
    resp, page = web.post("/admin/rooms", {"name": "Family", "topic": "the family", "private": "1"})
    assert resp.status == 200 and "Created #family." in page
    resp, page = web.post("/admin/rooms", {"name": "family"})
    assert resp.status == 400 and "exists already" in page
    rooms = gk(chat_server.data_dir, "chat", "rooms").stdout
    assert "#family\tprivate\t1 member(s)\t0 message(s)\tthe family" in rooms, rooms  # the admin is in it

    b = connect(irc_port(chat_server), BOB, "echo-message message-tags")
    try:
        b.send("JOIN #family")
        b.expect(r" 473 bob #family ")  # private: invitation only
        resp, page = web.post("/admin/rooms/family/members", {"account": "bob"})
        assert resp.status == 200 and "bob is a member of #family." in page
        b.send("PRIVMSG #family :hello family")
        b.expect(r"PRIVMSG #family :hello family")
        resp, page = web.post("/admin/rooms/family", {"topic": "everyone's family room"})  # private unticked
        assert resp.status == 200
        b.expect(r"TOPIC #family :everyone's family room")
        assert "#family\tpublic\t2 member(s)\t1 message(s)" in gk(chat_server.data_dir, "chat", "rooms").stdout

        resp, body = web.get("/admin/rooms/family/export")
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
        exported = json.loads(body)
        assert [m["text"] for m in exported["rooms"][0]["messages"]] == ["hello family"]
        assert exported["direct"] == []  # a room's archive holds no one's private messages

        resp, page = web.post("/admin/rooms/family/delete", {})
        assert resp.status == 400 and "Tick the box" in page
        resp, page = web.post("/admin/rooms/general/delete", {"confirm": "1"})
        assert resp.status == 400 and "default room" in page
        resp, page = web.post("/admin/rooms/family/delete", {"confirm": "1"})
        assert resp.status == 200 and "Deleted #family" in page
        b.expect(r"PART #family")
        assert "#family" not in gk(chat_server.data_dir, "chat", "rooms").stdout
        resp, _ = web.post("/admin/rooms/family", {"topic": "x"})
        assert resp.status == 404
    finally:
        b.close()

    resp, _ = web.post("/admin/rooms", {"name": "nocsrf"}, csrf=False)
    assert resp.status == 403
    user = Client(chat_server)
    user.login(BOB, PASSWORD)
    resp, page = user.get("/admin/rooms")
    assert resp.status == 403 and "room-general" not in page
    resp, _ = user.post("/admin/rooms", {"name": "mine"})
    assert resp.status == 403
    assert "#mine" not in gk(chat_server.data_dir, "chat", "rooms").stdout


def test_devices_page_lists_the_irc_server_and_apps(chat_server):  # type: ignore[no-untyped-def]
    web = Client(chat_server)
    web.login(BOB, PASSWORD)
    _, page = web.get("/devices")
    m = re.search(r'<table id="chat-settings"[^>]*>.*?</table>', page, re.S)
    assert m, page
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", m.group(0))
    assert cells == ["mx.test.example", str(irc_port(chat_server)), "TLS", "SASL PLAIN", "bob", cells[5]]
    for app in ("Goguma", "Halloy", "WeeChat", "irssi", 'href="/chat"'):
        assert app in page
    web.post("/account/language", {"language": "fr"})
    _, page = web.get("/devices")
    assert "Discuter sur téléphones et ordinateurs" in page and "votre mot de passe" in page


def test_wizard_chat_step_creates_rooms(make_server):  # type: ignore[no-untyped-def]
    srv = make_server("chatwizard", NO_MAIL).start()
    c = run_wizard(srv, stop_at="outgoing")
    resp, _ = c.post("/wizard/outgoing", {"mode": "direct"})
    assert resp.status == 303 and resp.headers["Location"].endswith("/wizard/chat")
    _, page = c.get("/wizard/chat")
    assert "<strong>#general</strong>" in page and str(srv.port("chat.irc_port")) in page
    resp, page = c.post("/wizard/chat", {"rooms": "family\n#Projects, bad name!"})
    assert resp.status == 400 and "Room names are 1 to 50" in page
    resp, _ = c.post("/wizard/chat", {"rooms": "family\n#Projects"})
    assert resp.status == 303 and resp.headers["Location"].endswith("/wizard/family")  # then the calendar step
    rooms = gk(srv.data_dir, "chat", "rooms").stdout
    assert re.search(r"^#family\tpublic\t", rooms, re.M) and re.search(r"^#projects\tpublic\t", rooms, re.M), rooms
    # everyone with an account joins the rooms named here (they were in nobody's list, not even
    # the owner's)
    assert re.search(r"^#family\tpublic\t2 member\(s\)", rooms, re.M), rooms  # the admin and the wizard's user
