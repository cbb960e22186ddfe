"""The IRC server against a real ``gk serve``: raw TLS sockets, lines checked as the client
reads them. Registration (CAP 302, SASL PLAIN mandatory), two users talking, echo-message with
msgid/server-time tags, chathistory replay on a second device, malformed and oversize lines,
flood limits."""

from __future__ import annotations

import hashlib
import re
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from support.irc import ALICE, ALL_CAPS, BOB, IRC, PASSWORD, connect, sasl
from support.skips import skip_or_fail

__all__ = ["ALICE", "ALL_CAPS", "BOB", "IRC", "PASSWORD", "connect", "sasl"]  # for the other chat tests


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):  # type: ignore[no-untyped-def]
    from support.gkserver import GKServer

    srv = GKServer(
        tmp_path_factory.mktemp("chat"),
        {
            "http": {"https_port": 0},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
            "chat": {"line_burst": 400, "lines_per_second": 200.0},
        },
    )
    srv.write_config()
    srv.add_user(ALICE, PASSWORD)
    srv.add_user(BOB, PASSWORD)
    srv.start()
    yield srv
    srv.stop()


def port(srv) -> int:  # type: ignore[no-untyped-def]
    return srv.port("chat.irc_port")


def test_registration_sasl_and_welcome(chat_server):  # type: ignore[no-untyped-def]
    c = IRC(port(chat_server))
    c.send("CAP LS 302")
    ls = c.expect(r"CAP \* LS ")
    assert "sasl=PLAIN" in ls and "draft/chathistory" in ls and "echo-message" in ls
    c.send("NICK somebody")
    c.send("USER u 0 * :Alice")
    c.send("CAP REQ :sasl server-time")
    assert c.expect(r"CAP \S+ (ACK|NAK)").endswith("ACK :sasl server-time")
    c.send("CAP REQ :sasl no-such-cap")
    assert c.expect(r"CAP \S+ (ACK|NAK)").endswith("NAK :sasl no-such-cap")
    c.send("AUTHENTICATE PLAIN")
    c.expect(r"^AUTHENTICATE \+$")
    c.send("AUTHENTICATE " + sasl("alice", PASSWORD))  # the local part works as the user name too
    assert " 900 somebody alice!alice@" in c.expect(r" 900 ")
    c.expect(r" 903 ")
    c.send("CAP END")
    lines = c.until(r" (422|376) ")
    assert any(" NICK alice" in ln for ln in lines), lines  # nick = the account, reserved
    assert any(re.search(r" 001 alice :Welcome", ln) for ln in lines)
    isupport = next(ln for ln in lines if " 005 " in ln)
    assert "CHATHISTORY=1000" in isupport and "MSGREFTYPES=msgid,timestamp" in isupport
    # the default room is joined on first use, and replayed on every connection
    c.expect(r"^@time=\S+ :alice!alice@\S+ JOIN #general$")
    c.expect(r" 366 alice #general ")
    c.send("NICK bob")
    c.expect(r" 432 alice bob ")
    c.send("PING :tok")
    c.expect(r"PONG \S+ :tok$")
    c.send("FROBNICATE x")
    c.expect(r" 421 alice FROBNICATE :Unknown command")
    c.send("JOIN")
    c.expect(r" 461 alice JOIN :Not enough parameters")
    c.send("QUIT :bye")
    c.expect(r"^ERROR ")
    c.close()


def test_sasl_failure_and_no_login_without_sasl(chat_server):  # type: ignore[no-untyped-def]
    c = IRC(port(chat_server))
    c.send("CAP LS 302")
    c.send("CAP REQ :sasl")
    c.send("AUTHENTICATE PLAIN")
    c.expect(r"^AUTHENTICATE \+")
    c.send("AUTHENTICATE " + sasl(ALICE, "wrong password"))
    c.expect(r" 904 ")
    c.send("AUTHENTICATE SCRAM-SHA-256")
    c.expect(r" 908 \S+ PLAIN ")
    c.send("NICK alice")
    c.send("USER u 0 * :x")
    c.send("PRIVMSG #general :hi")
    c.expect(r" 451 ")
    c.send("CAP END")
    assert "SASL" in c.expect(r"^ERROR ")
    assert c.line(30) is None
    c.close()
    # a client that never asks for CAP is refused too
    c = IRC(port(chat_server))
    c.send("NICK alice")
    c.send("USER u 0 * :x")
    c.expect(r"^ERROR :You must log in with SASL")
    c.close()


def test_two_users_talk_with_echo_and_tags(chat_server):  # type: ignore[no-untyped-def]
    a = connect(port(chat_server), ALICE, ALL_CAPS)
    b = connect(port(chat_server), BOB, "server-time message-tags account-tag")
    a.expect(r" 366 alice #general ")
    b.expect(r" 366 bob #general ")
    a.send("JOIN #talk")
    a.expect(r"^@\S+ :alice!alice@\S+ JOIN #talk alice :?alice$")  # extended-join
    b.send("JOIN #talk")
    joined = a.expect(r"JOIN #talk")
    assert ":bob!bob@" in joined
    a.send("PRIVMSG #talk :hello bob")
    echo = a.expect(r"PRIVMSG #talk :hello bob$")
    tags = dict(t.partition("=")[::2] for t in echo[1:].split(" ", 1)[0].split(";"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", tags["time"])
    assert len(tags["msgid"]) >= 10 and tags["account"] == "alice"
    got = b.expect(r"PRIVMSG #talk :hello bob$")
    assert f"msgid={tags['msgid']}" in got and ":alice!alice@" in got
    # a direct message, and a reply tag carried through
    b.send(f"@+draft/reply={tags['msgid']} PRIVMSG alice :hi alice")
    dm = a.expect(r"PRIVMSG alice :hi alice$")
    assert f"+draft/reply={tags['msgid']}" in dm and ":bob!bob@" in dm
    # CTCP (WeeChat's, irssi's /ctcp, HexChat's replies) goes through live, and is not history
    b.send("PRIVMSG alice :\x01VERSION\x01")
    a.expect(r":bob!bob@\S+ PRIVMSG alice :\x01VERSION\x01$")
    a.send("NOTICE bob :\x01VERSION weechat 4.5\x01")
    a.expect(r":alice!alice@\S+ NOTICE bob :\x01VERSION weechat 4.5\x01$")  # echo-message
    b.expect(r":alice!alice@\S+ NOTICE bob :\x01VERSION weechat 4.5\x01$")
    a.send("CHATHISTORY LATEST bob * 10")
    a.send("PING :ctcp")
    assert not any("VERSION" in ln for ln in a.until(r"PONG \S+ :ctcp$"))
    b.send("ISON alice nobody bob")
    b.expect(r" 303 bob :alice bob$")
    b.send("USERHOST alice nobody")
    b.expect(r" 302 bob :alice=\+alice@\S+$")
    for cmd, reply in (
        ("VERSION", " 351 bob GK\\. "),
        ("TIME", " 391 bob "),
        ("MOTD", " 422 bob "),
        ("LUSERS", " 251 bob "),
    ):
        b.send(cmd)
        b.expect(reply)
    b.send("PRIVMSG nobody :x")
    b.expect(r" 401 bob nobody ")
    b.send("PRIVMSG #nowhere :x")
    b.expect(r" 403 bob #nowhere ")
    # topic, names, who, whois, list, mode, away
    a.send("TOPIC #talk :plans for the weekend")
    b.expect(r":alice!\S+ TOPIC #talk :plans for the weekend$")
    b.send("NAMES #talk")
    assert b.expect(r" 353 bob = #talk ").endswith(":alice bob")
    b.send("WHO #talk")
    b.expect(r" 352 bob #talk alice ")
    b.expect(r" 315 bob #talk ")
    b.send("WHOIS alice")
    b.expect(r" 330 bob alice alice ")
    b.expect(r" 318 bob alice ")
    b.send("LIST")
    assert b.expect(r" 322 bob #talk ").endswith(" 2 :plans for the weekend")
    b.expect(r" 323 ")
    b.send("MODE #talk")
    b.expect(r" 324 bob #talk :?\+nt")
    b.send("AWAY :lunch")
    b.expect(r" 306 bob ")
    b.send("PART #talk :later")
    a.expect(r":bob!\S+ PART #talk :later$")
    b.send("PRIVMSG #talk :still here?")
    b.expect(r" 404 bob #talk ")
    a.close()
    b.close()


def test_second_device_sees_live_and_replays_history(chat_server):  # type: ignore[no-untyped-def]
    p = port(chat_server)
    phone = connect(p, ALICE, ALL_CAPS)
    phone.send("JOIN #family")
    phone.expect(r" 366 alice #family ")
    sent = []
    for i in range(5):
        phone.send(f"PRIVMSG #family :message {i}")
        echo = phone.expect(rf"PRIVMSG #family :message {i}$")
        sent.append(re.search(r"msgid=([^; ]+)", echo).group(1))  # type: ignore[union-attr]
    laptop = connect(p, ALICE, ALL_CAPS)
    laptop.expect(r"JOIN #family")  # memberships are replayed to a new device
    laptop.send("CHATHISTORY LATEST #family * 3")
    lines = laptop.until(r"^:\S+ BATCH -")
    assert any(re.search(r"BATCH \+\S+ chathistory #family$", ln) for ln in lines)
    texts = [ln.rsplit(":", 1)[1] for ln in lines if " PRIVMSG " in ln]
    assert texts == ["message 2", "message 3", "message 4"]
    assert all("batch=" in ln for ln in lines if " PRIVMSG " in ln)
    laptop.send(f"CHATHISTORY BEFORE #family msgid={sent[2]} 10")
    lines = laptop.until(r"BATCH -")
    assert [ln.rsplit(":", 1)[1] for ln in lines if " PRIVMSG " in ln] == ["message 0", "message 1"]
    laptop.send(f"CHATHISTORY AFTER #family msgid={sent[2]} 1")
    lines = laptop.until(r"BATCH -")
    assert [ln.rsplit(":", 1)[1] for ln in lines if " PRIVMSG " in ln] == ["message 3"]
    laptop.send(f"CHATHISTORY BETWEEN #family msgid={sent[0]} msgid={sent[4]} 10")
    lines = laptop.until(r"BATCH -")
    assert [ln.rsplit(":", 1)[1] for ln in lines if " PRIVMSG " in ln] == ["message 1", "message 2", "message 3"]
    laptop.send(f"CHATHISTORY AROUND #family msgid={sent[2]} 3")
    lines = laptop.until(r"BATCH -")
    assert [ln.rsplit(":", 1)[1] for ln in lines if " PRIVMSG " in ln] == ["message 1", "message 2", "message 3"]
    laptop.send("CHATHISTORY LATEST #family timestamp=2000-01-01T00:00:00.000Z 2")
    lines = laptop.until(r"BATCH -")
    assert [ln.rsplit(":", 1)[1] for ln in lines if " PRIVMSG " in ln] == ["message 3", "message 4"]
    laptop.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 50")
    targets = laptop.until(r"BATCH -")
    assert any(re.search(r" CHATHISTORY TARGETS #family timestamp=\S+Z$", ln) for ln in targets), targets
    laptop.send("CHATHISTORY LATEST #family bogus 2")
    laptop.expect(r"FAIL CHATHISTORY INVALID_PARAMS")
    laptop.send("CHATHISTORY LATEST #secret-of-others * 2")
    laptop.expect(r"FAIL CHATHISTORY INVALID_TARGET")
    # live on both devices: a message from the laptop reaches the phone, echoed to the laptop
    laptop.send("PRIVMSG #family :from the laptop")
    laptop.expect(r"PRIVMSG #family :from the laptop$")
    phone.expect(r":alice!\S+ PRIVMSG #family :from the laptop$")
    phone.close()
    laptop.close()


def test_malformed_and_oversize_lines(chat_server):  # type: ignore[no-untyped-def]
    c = connect(port(chat_server), ALICE, "message-tags")
    c.send(b"PRIVMSG #general :" + b"x" * 600)
    c.expect(r" 417 alice :Input line was too long")
    c.send(b"@+a=" + b"y" * 9000 + b" PRIVMSG #general :hi")
    c.expect(r" 417 ")
    c.send(b"x" * 20000)  # no newline for longer than any line may be
    c.expect(r" 417 ")
    c.send(b"@bad key=1 PING :x")
    c.expect(r" 421 alice \* :Malformed")
    c.send(b"\xff\xfe PING")
    c.expect(r" 421 ")
    c.send(b":")
    c.expect(r" 421 ")
    c.send("PING :still alive")
    c.expect(r"PONG \S+ :still alive$")
    c.close()


def test_flood_lockout_and_shared_names(make_server):  # type: ignore[no-untyped-def]
    srv = make_server(
        "flood",
        {
            "http": {"https_port": 0},
            "auth": {
                "argon2_time_cost": 1,
                "argon2_memory_kib": 8192,
                "lockout_failures_account": 2,
                "delay_after_failures": 5,
            },
            "chat": {"line_burst": 20, "lines_per_second": 1.0},
        },
    )
    srv.write_config()
    srv.add_user(ALICE, PASSWORD)
    srv.add_user("carol@example.org", PASSWORD)
    srv.add_user("carol@other.example", PASSWORD)
    srv.start()
    c = connect(port(srv), ALICE)
    c.send(b"\r\n".join(b"PING :%d" % i for i in range(200)))
    assert "Excess flood" in c.expect(r"^ERROR ")
    c.close()
    # chat names are local parts: two users named carol would share one identity, so neither logs in
    c = IRC(port(srv))
    c.send("CAP REQ :sasl")
    c.send("AUTHENTICATE PLAIN")
    c.expect(r"^AUTHENTICATE \+")
    c.send("AUTHENTICATE " + sasl("carol@example.org", PASSWORD))
    c.expect(r" 904 ")
    c.close()
    # the same lockout as IMAP and SMTP: after 2 failures even the right password is refused
    srv.add_user(BOB, PASSWORD)
    c = IRC(port(srv))
    c.send("CAP REQ :sasl")
    for password in ("wrong 1", "wrong 2", PASSWORD):
        c.send("AUTHENTICATE PLAIN")
        c.expect(r"^AUTHENTICATE \+")
        c.send("AUTHENTICATE " + sasl(BOB, password))
        c.expect(r" 904 ")
    c.close()
    assert re.search(r"irc login refused \([^)]*locked out", srv.log())


def test_cli_rooms_and_history(chat_server):  # type: ignore[no-untyped-def]
    from support.gkserver import gk

    c = connect(port(chat_server), BOB, "echo-message")
    c.send("JOIN #cli-room")
    c.expect(r" 366 bob #cli-room ")
    c.send("TOPIC #cli-room :shown by the CLI")
    c.expect(r"TOPIC #cli-room")
    c.send("PRIVMSG #cli-room :written over IRC")
    c.expect(r"PRIVMSG #cli-room :written over IRC$")
    c.send("PRIVMSG alice :a direct one")
    c.expect(r"PRIVMSG alice :a direct one$")
    rooms = gk(chat_server.data_dir, "chat", "rooms").stdout
    assert "#cli-room\tpublic\t1 member(s)\t1 message(s)\tshown by the CLI" in rooms
    assert "#general\tpublic" in rooms
    out = gk(chat_server.data_dir, "chat", "history", "#cli-room").stdout
    assert out.strip().endswith("<bob> written over IRC")
    assert gk(chat_server.data_dir, "chat", "history", "alice,bob").stdout.strip().endswith("<bob> a direct one")
    missing = gk(chat_server.data_dir, "chat", "history", "nowhere", check=False)
    assert missing.returncode == 1 and "no room named #nowhere" in missing.stderr
    c.close()


def test_typing_reactions_redaction_read_markers(chat_server):  # type: ignore[no-untyped-def]
    caps = "server-time message-tags echo-message draft/message-redaction draft/read-marker"
    a = connect(port(chat_server), ALICE, caps)
    b = connect(port(chat_server), BOB, caps)
    a2 = connect(port(chat_server), ALICE, caps)  # alice's second device
    for c in (a, b, a2):
        c.until(r" 366 \S+ #general ")
    # direct messages reach every device of both sides: bob's, and alice's phone and laptop
    b.send("PRIVMSG alice :to both of your devices")
    a.expect(r":bob!\S+ PRIVMSG alice :to both of your devices$")
    a2.expect(r":bob!\S+ PRIVMSG alice :to both of your devices$")
    a.send("PRIVMSG bob :answered from the phone")
    b.expect(r":alice!\S+ PRIVMSG bob :answered from the phone$")
    a2.expect(r":alice!\S+ PRIVMSG bob :answered from the phone$")  # the laptop sees its own side
    a.send("@+typing=active TAGMSG #general")
    b.expect(r"^@\+typing=active\S* :alice!\S+ TAGMSG #general$")
    b.send("PRIVMSG #general :react to me")
    msgid = re.search(r"msgid=([^; ]+)", a.expect(r"PRIVMSG #general :react to me$")).group(1)  # type: ignore[union-attr]
    a.send(f"@+draft/react=👍;+draft/reply={msgid} TAGMSG #general")
    got = b.expect(r"TAGMSG #general$")
    assert "+draft/react=👍" in got and f"+draft/reply={msgid}" in got and ":alice!" in got
    a.send("@+draft/react=x;+draft/reply=unknown TAGMSG #general")
    a.expect(r"FAIL TAGMSG UNKNOWN_MSGID unknown ")
    a.send(f"REDACT #general {msgid}")
    a.expect(rf"FAIL REDACT REDACT_FORBIDDEN #general {msgid} ")
    b.send(f"REDACT #general {msgid}")
    assert ":bob!" in a.expect(rf"REDACT #general {msgid}$")
    a.send("CHATHISTORY LATEST #general * 50")
    a.send("PING :end")
    assert not any("react to me" in ln for ln in a.until(r"PONG \S+ :end$"))  # redacted: gone from history
    a.send("MARKREAD #general timestamp=2030-01-01T00:00:00.000Z")
    a2.expect(r"MARKREAD #general timestamp=2030-01-01T00:00:00.000Z$")  # the other device is told
    b.send("MARKREAD #general")
    b.expect(r"MARKREAD #general \*$")
    a2.send("MARKREAD #general")
    a2.expect(r"MARKREAD #general timestamp=2030-01-01T00:00:00.000Z$")
    # a device that connects is told each room's marker right after the JOIN, before 366
    a3 = connect(port(chat_server), ALICE, caps)
    joined = a3.until(r" 366 \S+ #general ")
    at = [i for i, ln in enumerate(joined) if "MARKREAD #general " in ln]
    assert at and joined[at[0]].endswith("MARKREAD #general timestamp=2030-01-01T00:00:00.000Z")
    assert " JOIN #general" in joined[at[0] - 1]
    a3.close()
    for c in (a, b, a2):
        c.close()


def test_join_errors_invite_and_private_rooms(chat_server):  # type: ignore[no-untyped-def]
    a = connect(port(chat_server), ALICE, "")
    b = connect(port(chat_server), BOB, "")
    a.until(r" 366 alice #general ")
    b.until(r" 366 bob #general ")
    b.send("JOIN #nope,#Bad!Name")
    b.expect(r" 366 bob #nope ")
    b.expect(r" 476 bob #Bad!Name ")
    b.send("INVITE nobody #nope")
    b.expect(r" 401 bob nobody ")
    b.send("INVITE alice #nope")
    b.expect(r" 341 bob alice :?#nope$")
    a.expect(r":bob!\S+ INVITE alice :?#nope$")
    a.send("JOIN #nope")
    b.expect(r":alice!\S+ JOIN #nope$")
    # a member makes the room private (+i): from then on, joining needs an invitation
    b.send("MODE #nope +i")
    a.expect(r":bob!\S+ MODE #nope \+i$")
    b.expect(r":bob!\S+ MODE #nope \+i$")
    a.send("PART #nope")
    b.expect(r":alice!\S+ PART #nope")
    a.send("JOIN #nope")
    a.expect(r" 473 alice #nope ")
    a.send("LIST")
    assert not any("#nope" in ln for ln in a.until(r" 323 "))  # a private room is not listed to others
    b2 = connect(port(chat_server), BOB, "invite-notify")  # another member (bob's second device)
    b2.until(r" 366 bob #nope ")
    b.send("INVITE alice #nope")
    a.expect(r"INVITE alice :?#nope$")
    b2.expect(r":bob!\S+ INVITE alice :?#nope$")  # invite-notify: members see invitations
    b2.close()
    a.send("JOIN #nope")
    b.expect(r":alice!\S+ JOIN #nope$")
    a.close()
    b.close()


def test_labeled_response(chat_server):  # type: ignore[no-untyped-def]
    c = connect(port(chat_server), ALICE, "labeled-response echo-message message-tags batch")
    c.until(r" 366 alice #general ")
    c.send("@label=p1 PING :x")
    assert c.expect(r"PONG").startswith("@label=p1 :")
    c.send("@label=a1 PONG :nothing back")
    c.expect(r"^@label=a1 :\S+ ACK$")
    c.send("@label=m1 PRIVMSG #general :labeled hello")
    echo = c.expect(r"PRIVMSG #general :labeled hello$")
    assert echo.startswith("@label=m1;msgid=")
    c.send("@label=j1 JOIN #labeled")
    lines = c.until(r"BATCH -")
    start = re.match(r"^@label=j1 :\S+ BATCH \+(\S+) labeled-response$", lines[0])
    assert start, lines
    ref = start.group(1)
    assert all(ln.startswith(f"@batch={ref}") for ln in lines[1:-1]), lines
    assert [ln.split(" ")[2] for ln in lines[1:-1]] == ["JOIN", "331", "353", "366"]
    c.send("@label=h1 CHATHISTORY LATEST #general * 1")
    lines = c.until(r"BATCH -\S+$")
    lines += c.until(r"BATCH -\S+$")  # the inner chathistory batch ends, then the labeled one
    assert re.match(r"^@label=h1 :\S+ BATCH \+\S+ labeled-response$", lines[0])
    inner = re.search(r" BATCH \+(\S+) chathistory #general$", lines[1])
    assert inner and lines[1].startswith("@batch=")
    assert f"batch={inner.group(1)}" in lines[2] and "labeled hello" in lines[2]
    c.close()


def test_pipelined_messages_keep_their_order(chat_server):  # type: ignore[no-untyped-def]
    """A pasted burst is posted concurrently (group commit) but echoed and stored in order."""
    c = connect(port(chat_server), BOB, "echo-message batch")
    c.send("JOIN #paste")
    c.expect(r" 366 bob #paste ")
    n = 200
    c.send(b"\r\n".join(b"PRIVMSG #paste :line %d" % i for i in range(n)) + b"\r\nPRIVMSG #paste :last")
    echoed = [ln.rsplit(":", 1)[1] for ln in c.until(r"PRIVMSG #paste :last$") if " PRIVMSG #paste :" in ln]
    assert echoed == [f"line {i}" for i in range(n)] + ["last"]
    c.send("CHATHISTORY LATEST #paste * 1000")
    stored = [ln.rsplit(":", 1)[1] for ln in c.until(r"BATCH -") if " PRIVMSG #paste :" in ln]
    assert stored == echoed
    c.close()


def test_garbage_after_registration_never_crashes(chat_server):  # type: ignore[no-untyped-def]
    import random

    rnd = random.Random(12)
    commands = "PRIVMSG NOTICE JOIN PART TOPIC NAMES WHO WHOIS LIST MODE INVITE TAGMSG AWAY CHATHISTORY REDACT MARKREAD CAP AUTHENTICATE NICK USER PING MONITOR SETNAME KICK BATCH".split()
    pieces = [
        "#general",
        "#",
        "*",
        ":",
        "::",
        "alice",
        "bob",
        "msgid=zz",
        "timestamp=x",
        "LATEST",
        "BETWEEN",
        "-1",
        "99999999999",
        "\u00e9",
        "+i",
        "@",
        ",",
        "#a,#b,,",
        "=",
        "TARGETS",
    ]
    c = connect(port(chat_server), ALICE, "message-tags batch labeled-response echo-message")
    c.until(r" 366 alice #general ")
    lines = []
    for i in range(150):
        tags = rnd.choice(["", f"@label=g{i} ", "@+draft/reply=;+typing= ", "@=;;a= "])
        params = " ".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 5)))
        lines.append(f"{tags}{rnd.choice(commands)} {params}".encode())
    for chunk in range(0, len(lines), 10):
        c.send(b"\r\n".join(lines[chunk : chunk + 10]))
        c.send(f"PING :alive{chunk}")
        c.expect(rf"PONG \S+ :alive{chunk}$")
    assert "session crashed" not in chat_server.log()
    assert "Traceback" not in chat_server.log()
    c.close()


def _weechat_log(home: Path, name: str) -> str:
    path = home / "logs" / f"{name}.weechatlog"
    return path.read_text(errors="replace") if path.exists() else ""


def _weechat_wait(home: Path, name: str, pattern: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> str:
    """Wait until WeeChat's log of buffer ``name`` has a line matching ``pattern``."""
    rx = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _weechat_log(home, name)
        if rx.search(text):
            return text
        assert proc.poll() is None, f"weechat exited: {_weechat_log(home, 'core.weechat')[-2000:]}"
        time.sleep(0.2)
    server = _weechat_log(home, "irc.server.gk")
    raise AssertionError(f"no {pattern!r} in weechat's {name}: {text[-1500:]}\nserver buffer: {server[-2500:]}")


def test_weechat_talks_over_tls_with_sasl(chat_server, tmp_path):  # type: ignore[no-untyped-def]
    """Debian's WeeChat (weechat-headless, a real IRC client) as alice: TLS with the server's
    certificate pinned by its SHA-256 fingerprint, SASL PLAIN, the capabilities it asks for,
    #general joined; a line typed in WeeChat (its FIFO) reaches bob's raw connection, bob's
    line and direct message reach WeeChat (its logs), and history it asks for with
    CHATHISTORY (WeeChat 3.8 has no batch: the lines come plain, with their server-time)."""
    exe = shutil.which("weechat-headless")
    if exe is None or not list(Path("/usr/lib").glob("*/weechat/plugins/fifo.so")):
        skip_or_fail(
            "weechat-headless or its FIFO plugin missing: run `make test-sysdeps` (weechat-headless weechat-plugins)"
        )
    p = port(chat_server)
    bob = connect(p, BOB, ALL_CAPS)
    bob.send("PRIVMSG #general :said before weechat came")  # only history can bring it
    bob.expect(r"PRIVMSG #general :said before weechat came$")
    der = ssl.PEM_cert_to_DER_cert((chat_server.data_dir / "tls" / "cert.pem").read_text())
    fingerprint = hashlib.sha256(der).hexdigest()
    home = tmp_path / "weechat"
    home.mkdir()
    commands = [
        "/set logger.file.flush_delay 0",
        f"/server add gk 127.0.0.1/{p} -ssl",
        f"/set irc.server.gk.ssl_fingerprint {fingerprint}",
        "/set irc.server.gk.sasl_mechanism plain",
        "/set irc.server.gk.sasl_username alice",
        f'/set irc.server.gk.sasl_password "{PASSWORD}"',
        "/set irc.server.gk.sasl_fail disconnect",
        "/set irc.server.gk.nicks alice",
        "/set irc.server.gk.autojoin #general",
        "/connect gk",
    ]
    proc = subprocess.Popen(
        [exe, "--dir", str(home), "--stdout", "--run-command", ";".join(commands)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        fifo = home / f"weechat_fifo_{proc.pid}"

        def type_in(command: str) -> None:
            with open(fifo, "w") as f:  # WeeChat's FIFO: "buffer *text or command"
                f.write(f"irc.server.gk *{command}\n")

        server = _weechat_wait(home, "irc.server.gk", r"Welcome to the GK chat, alice", proc)
        assert "gnutls: certificate fingerprint matches" in server
        assert re.search(r"client capability, enabled: sasl server-time message-tags", server), server
        assert "You are now logged in as alice" in server
        _weechat_wait(home, "irc.gk.#general", r"Channel #general: \d+ nicks", proc)
        # WeeChat → bob
        type_in("/msg #general hello from weechat")
        line = bob.expect(r"PRIVMSG #general :hello from weechat$")
        assert re.match(r"^@time=\S+;msgid=\S+;account=alice :alice!alice@\S+ PRIVMSG #general :", line), line
        # bob → WeeChat, in the room and directly
        bob.send("PRIVMSG #general :hello weechat, from bob")
        bob.send("PRIVMSG alice :just between us")
        _weechat_wait(home, "irc.gk.#general", r"^\S+ \S+\tbob\thello weechat, from bob$", proc)
        _weechat_wait(home, "irc.gk.bob", r"^\S+ \S+\tbob\tjust between us$", proc)
        # history the client asks for
        type_in("/quote CHATHISTORY LATEST #general * 10")
        text = _weechat_wait(home, "irc.gk.#general", r"\tbob\tsaid before weechat came$", proc)
        assert text.count("said before weechat came") == 1
        # its autojoin's JOIN (a room the server had shown it joining already) is ignored, as
        # other servers do: WeeChat shows one join, not two
        assert text.count("has joined #general") == 1, text
        type_in("/quit")
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    bob.close()


def test_monitor_away_notify_setname_kick(chat_server):  # type: ignore[no-untyped-def]
    """MONITOR (730/731 as an account's first IRC connection comes and its last goes),
    away-notify (AWAY lines to those sharing a room; "Not connected" when the last connection
    ends), SETNAME, userhost-in-names, and KICK refused with 482 (rooms have no operators)."""
    p = port(chat_server)
    bob = connect(p, BOB, "message-tags away-notify setname userhost-in-names")
    bob.send("MONITOR + nobody-here")
    bob.expect(r" 731 bob :nobody-here$")
    bob.send("MONITOR + alice")
    if " 730 " in bob.expect(r" 73[01] bob :alice"):  # a connection of an earlier test is closing
        bob.expect(r" 731 bob :alice$")
    alice = connect(p, ALICE, "away-notify")
    bob.expect(r" 730 bob :alice!alice@mx\.test\.example$")
    bob.send("MONITOR L")
    assert any(re.search(r" 732 bob :alice,nobody-here$", ln) for ln in bob.until(r" 733 bob :"))
    alice.send("AWAY :at lunch")
    alice.expect(r" 306 alice :")
    bob.expect(r"^:alice!alice@mx\.test\.example AWAY :at lunch$")
    alice.send("AWAY")
    alice.expect(r" 305 alice :")
    bob.expect(r"^:alice!alice@mx\.test\.example AWAY$")
    bob.send("SETNAME :Bob the Builder")
    bob.expect(r"^:bob!bob@\S+ SETNAME :Bob the Builder$")
    alice.send("WHOIS bob")
    alice.expect(r" 311 alice bob bob \S+ \* :Bob the Builder$")
    bob.send("SETNAME :" + "x" * 101)
    bob.expect(r"FAIL SETNAME INVALID_REALNAME")
    bob.send("NAMES #general")
    names = bob.expect(r" 353 bob = #general :")
    assert "alice!alice@mx.test.example" in names and "bob!bob@mx.test.example" in names, names
    bob.send("KICK #general alice :bye")
    bob.expect(r" 482 bob #general :")
    bob.send("KICK #no-such-room alice")
    bob.expect(r" 403 bob #no-such-room :")
    alice.send("QUIT")
    bob.expect(r" 731 bob :alice$")
    bob.expect(r"^:alice!alice@mx\.test\.example AWAY :Not connected$")
    bob.send("MONITOR C")
    bob.send("MONITOR L")
    assert not any(" 732 " in ln for ln in bob.until(r" 733 bob :"))
    bob.send("MONITOR X")
    bob.expect(r" 421 bob MONITOR :")
    bob.close()


def test_multiline_batches(chat_server):  # type: ignore[no-untyped-def]
    """draft/multiline: a batch of lines is one message (newlines kept, concat joins without
    one), sent as a batch to clients with the capability and in history, as separate lines
    (the msgid on the first) to the others; limits and a wrong target get FAIL BATCH."""
    p = port(chat_server)
    caps = "message-tags server-time batch echo-message draft/multiline draft/chathistory"
    alice = connect(p, ALICE, caps)
    assert "draft/multiline=max-bytes=4096,max-lines=100" in " ".join(alice.seen)
    bob = connect(p, BOB, "message-tags draft/multiline")
    old = connect(p, BOB, "message-tags")  # a second device of bob without the capability
    alice.send("BATCH +m1 draft/multiline #general")
    alice.send("@batch=m1 PRIVMSG #general :first line")
    alice.send("@batch=m1 PRIVMSG #general :second ")
    alice.send("@batch=m1;draft/multiline-concat PRIVMSG #general :line, joined")
    alice.send("BATCH -m1")
    got = bob.until(r"BATCH -ml\S+$")
    opening = next(ln for ln in got if " BATCH +ml" in ln)
    assert re.match(r"^@msgid=(\S+) :alice!\S+ BATCH \+ml\1 draft/multiline #general$", opening), got
    ref = opening.split(" BATCH +")[1].split()[0]
    body = [ln for ln in got if f"batch={ref}" in ln]
    assert [ln.split(" PRIVMSG #general :", 1)[1] for ln in body] == ["first line", "second line, joined"], got
    echo = alice.until(r"BATCH -ml\S+$")
    assert sum(" PRIVMSG #general :" in ln for ln in echo) == 2
    plain = [old.expect(r"PRIVMSG #general :first line$"), old.expect(r"PRIVMSG #general :second line, joined$")]
    assert "msgid=" in plain[0] and "msgid=" not in plain[1], plain
    # in history: the same batch inside the chathistory batch
    alice.send("CHATHISTORY LATEST #general * 1")
    hist = alice.until(r"^:\S+ BATCH -(?!ml)")
    inner = next(ln for ln in hist if " BATCH +ml" in ln)
    assert re.match(r"^@time=\S+;msgid=\S+;batch=\S+ :alice!\S+ BATCH \+ml\S+ draft/multiline #general$", inner), hist
    texts = [ln.split(" PRIVMSG #general :", 1)[1] for ln in hist if " PRIVMSG " in ln]
    assert texts == ["first line", "second line, joined"], hist
    # refusals
    alice.send("BATCH +m2 draft/multiline #general")
    for i in range(101):
        alice.send(f"@batch=m2 PRIVMSG #general :line {i}")
    alice.send("BATCH -m2")
    alice.expect(r"FAIL BATCH MULTILINE_MAX_LINES 100 :")
    alice.send("BATCH +m3 draft/multiline #general")
    alice.send("@batch=m3 PRIVMSG bob :elsewhere")
    alice.send("BATCH -m3")
    alice.expect(r"FAIL BATCH MULTILINE_INVALID_TARGET #general bob :")
    alice.send("BATCH -never-opened")
    alice.expect(r"FAIL BATCH MULTILINE_INVALID :")
    old.send("BATCH +x draft/multiline #general")  # without the capability: unknown
    old.expect(r" 421 bob BATCH :")
    alice.send("PING :after")
    alice.expect(r"PONG \S+ :after$")
    for c in (alice, bob, old):
        c.close()


def test_pydle_client_caps_sasl_monitor(chat_server):  # type: ignore[no-untyped-def]
    """pydle (PyPI, an IRCv3 client library) as bob over TLS: CAP 302 with the capabilities it
    knows, SASL PLAIN, MONITOR of alice (its on_user_online), a line it sends reaching a raw
    client with bob's account tag, and one it receives."""
    import asyncio
    import threading

    import pydle

    p = port(chat_server)
    alice = connect(p, ALICE, ALL_CAPS)
    alice.send("JOIN #pydle")  # a room of its own: #general's state is other tests' (fuzzing)
    alice.expect(r" 366 alice #pydle ")
    events: dict[str, threading.Event] = {k: threading.Event() for k in ("joined", "online", "got")}
    state: dict[str, object] = {}

    class Bob(pydle.Client):  # type: ignore[misc]
        async def on_connect(self) -> None:
            await super().on_connect()
            await self.join("#pydle")

        async def on_join(self, channel: str, user: str) -> None:
            await super().on_join(channel, user)
            if channel == "#pydle" and user == self.nickname:
                state["caps"] = dict(self._capabilities)
                events["joined"].set()
                await self.monitor("alice")
                await self.message("#pydle", "hello from pydle")

        async def on_user_online(self, nickname: str) -> None:
            state["online"] = nickname
            events["online"].set()

        async def on_message(self, target: str, by: str, message: str) -> None:
            if by == "alice" and message == "hello pydle":
                events["got"].set()

    bob = Bob("bob", sasl_username="bob", sasl_password=PASSWORD, sasl_mechanism="PLAIN")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(bob.connect("127.0.0.1", p, tls=True, tls_verify=False),), daemon=True
    )
    thread.start()
    thread.join(60)
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        assert events["joined"].wait(90), alice.seen[-10:]
        caps = state["caps"]
        assert isinstance(caps, dict)
        for cap in ("sasl", "message-tags", "echo-message", "account-tag", "away-notify", "extended-join"):
            assert caps.get(cap) not in (None, False), caps
        line = alice.expect(r"PRIVMSG #pydle :hello from pydle$")
        assert ";account=bob " in line or "account=bob;" in line or line.startswith("@account=bob"), line
        assert events["online"].wait(60) and state["online"] == "alice"
        alice.send("PRIVMSG #pydle :hello pydle")
        assert events["got"].wait(60)
    finally:
        asyncio.run_coroutine_threadsafe(bob.quit("done"), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        alice.close()


def test_event_playback(chat_server):  # type: ignore[no-untyped-def]
    """draft/event-playback: CHATHISTORY replays JOIN, PART, TOPIC, MODE, reactions (TAGMSG)
    and REDACT with the msgid and time they were sent live with: each replayed line is the live
    line byte for byte plus its batch tag. Without the capability, only PRIVMSG/NOTICE as
    before; an event's msgid is a history reference either way."""
    p = port(chat_server)
    caps = ALL_CAPS + " draft/message-redaction draft/event-playback"
    a = connect(p, ALICE, caps)
    b = connect(p, BOB, "server-time message-tags echo-message batch draft/chathistory draft/message-redaction")
    a.until(r" 366 alice #general ")
    b.until(r" 366 bob #general ")
    live = []  # what alice's phone saw, in order
    a.send("JOIN #replay")
    live.append(a.expect(r"^@time=[^;]+;msgid=[^;]+;account=alice :alice!alice@\S+ JOIN #replay alice :.+$"))
    a.until(r" 366 alice #replay ")
    b.send("JOIN #replay")
    live.append(a.expect(r"^@time=\S+;msgid=\S+;account=bob :bob!bob@\S+ JOIN #replay bob :.+$"))
    a.send("PRIVMSG #replay :first")
    live.append(a.expect(r"^@\S+ :alice!\S+ PRIVMSG #replay :first$"))
    first = re.search(r"msgid=([^; ]+)", live[-1]).group(1)  # type: ignore[union-attr]
    b.send(f"@+draft/react=👍;+draft/reply={first} TAGMSG #replay")
    live.append(
        a.expect(rf"^@\+draft/react=👍;\+draft/reply={first};time=\S+;msgid=\S+;account=bob :bob!\S+ TAGMSG #replay$")
    )
    b.send("TOPIC #replay :the topic")
    live.append(a.expect(r"^@time=\S+;msgid=\S+;account=bob :bob!\S+ TOPIC #replay :the topic$"))
    topic_id = re.search(r"msgid=([^; ]+)", live[-1]).group(1)  # type: ignore[union-attr]
    a.send("PRIVMSG #replay :oops")
    oops = re.search(r"msgid=([^; ]+)", a.expect(r"PRIVMSG #replay :oops$")).group(1)  # type: ignore[union-attr]
    a.send(f"REDACT #replay {oops}")
    live.append(a.expect(rf"^@time=\S+;msgid=\S+;account=alice :alice!\S+ REDACT #replay {oops}$"))
    a.send("MODE #replay +i")
    live.append(a.expect(r"^@time=\S+;msgid=\S+;account=alice :alice!\S+ MODE #replay \+i$"))
    b.send("PART #replay :see you")
    live.append(a.expect(r"^@time=\S+;msgid=\S+;account=bob :bob!\S+ PART #replay :see you$"))

    def replay(c, command: str) -> list[str]:  # type: ignore[no-untyped-def]
        c.send(command)
        lines = c.until(r"^:\S+ BATCH -")
        start = next(i for i, ln in enumerate(lines) if re.search(r"BATCH \+\S+ chathistory #replay$", ln))
        lines = lines[start:]  # what came before: the end of the registration
        ref = lines[0].split("BATCH +", 1)[1].split()[0]
        assert lines[-1].endswith(f"BATCH -{ref}")
        return [ln.replace(f";batch={ref} ", " ", 1) for ln in lines[1:-1]]

    laptop = connect(p, ALICE, caps)  # alice's second device, the same capabilities as the phone
    assert replay(laptop, "CHATHISTORY LATEST #replay * 50") == live  # the redacted message is not replayed
    assert replay(laptop, "CHATHISTORY LATEST #replay * 3") == live[-3:]  # events count towards the limit
    assert replay(laptop, f"CHATHISTORY AFTER #replay msgid={topic_id} 2") == live[5:7]
    assert replay(laptop, f"CHATHISTORY BEFORE #replay msgid={topic_id} 2") == live[2:4]
    # without draft/event-playback: the messages only, as before
    old = connect(p, ALICE, ALL_CAPS)
    assert replay(old, "CHATHISTORY LATEST #replay * 50") == [live[2]]
    assert replay(old, f"CHATHISTORY BEFORE #replay msgid={topic_id} 10") == [live[2]]
    assert replay(old, f"CHATHISTORY AFTER #replay msgid={topic_id} 10") == []
    for c in (a, b, laptop, old):
        c.close()
