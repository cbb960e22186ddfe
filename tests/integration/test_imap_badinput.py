"""Bad input: malformed commands get a tagged BAD with a reason and the session goes on; limits on
line length, literal size and nesting; nothing a client sends stops the server."""

from __future__ import annotations

from support.imap import ALICE, PASSWORD, client, module_server
from support.rawimap import RawIMAP

imap_server = module_server({"max_line_length": 2000, "max_literal_size": 4096})


def test_malformed_commands_get_bad_and_the_session_goes_on(imap_server):  # type: ignore[no-untyped-def]
    r = RawIMAP(imap_server)
    r.send(f'l LOGIN {ALICE} "{PASSWORD}"\r\n'.encode())
    assert r.until(b"l")[-1].startswith(b"l OK")
    cases = [
        b"a1 FROB",
        b"a2 SELECT",
        b'a3 SELECT "INBOX',
        b"a4 FETCH 1:* (FLAGS",
        b"a5 UID FROB 1",
        b"a6 LIST",
        b"a7 STATUS INBOX (BOGUS)",
        b"a8 SEARCH NOT",
        b"a9 CREATE \x00bad",
        b"a10 ENABLE",
        b"a11 NOOP extra",
        b"a12 LOGIN again please",
        b"a13 SELECT INBOX (FOO)",
        b"a14 APPEND INBOX (\\Seen",
        b'a15 SELECT "\\q"',
        b"a16 " + b"(" * 100,
    ]
    for line in cases:
        tag = line.split(b" ")[0]
        r.send(line + b"\r\n")
        reply = r.until(tag)[-1]
        assert reply.startswith(tag + b" BAD ") and len(reply) > len(tag) + 7, (line, reply)
    # a line without a usable tag is answered with "* BAD"
    r.send(b"\r\n")
    assert r.line().startswith(b"* BAD")
    r.send(b"z NOOP\r\n")
    assert r.until(b"z")[-1].startswith(b"z OK")


def test_limits_on_lines_literals_and_nesting(imap_server):  # type: ignore[no-untyped-def]
    r = RawIMAP(imap_server)
    r.send(f'l LOGIN {ALICE} "{PASSWORD}"\r\n'.encode())
    r.until(b"l")
    r.send(b"s SELECT INBOX\r\n")
    r.until(b"s")
    r.send(b"b1 NOOP " + b"x" * 5000 + b"\r\n")
    assert r.until(b"b1")[-1].startswith(b"b1 BAD")
    r.send(b"b2 APPEND INBOX {999999}\r\n")  # synchronizing literal over the limit: refused before it is sent
    assert r.until(b"b2")[-1].startswith(b"b2 BAD")
    r.send(b"b3 SEARCH " + b"(" * 40 + b"ALL" + b")" * 40 + b"\r\n")
    assert b"nested" in r.until(b"b3")[-1]
    r.send(b"b4 APPEND INBOX {12}\r\n")
    assert r.until(b"b4")[-1].startswith(b"+ ")
    r.send(b"Subject: x\r\n\r\n")
    r.send(b"\r\n")
    assert r.until(b"b4")[-1].startswith(b"b4 OK [APPENDUID")
    r.send(b"b5 NOOP\r\n")
    assert r.until(b"b5")[-1].startswith(b"b5 OK")
    # a LITERAL+ over the limit cannot be skipped: the server says BAD and BYE, and keeps serving others
    r.send(b"b6 APPEND INBOX {999999+}\r\n")
    out = r.until(b"b6")
    assert out[-1].startswith(b"b6 BAD")
    c = client(imap_server)
    assert c.noop()
    c.logout()


def test_garbage_and_abrupt_disconnects_do_not_hurt_the_server(imap_server):  # type: ignore[no-untyped-def]
    import random

    rnd = random.Random(1234)
    for _ in range(20):
        r = RawIMAP(imap_server)
        junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600)))
        r.send(junk + b"\r\n" + b"x" * rnd.randrange(0, 50))
        r.sock.close()
    r = RawIMAP(imap_server)
    r.send(b"q {5}\r\n")  # a literal where a tag should be
    r.sock.close()
    c = client(imap_server)
    c.select_folder("INBOX")
    c.logout()
    assert "Traceback" not in imap_server.log()
