"""Attack probes against a running ``gk serve``'s protocols (IMAP, SMTP, CalDAV/CardDAV, MCP, the
chat) and the web's Origin check: each malformed input gets the protocol's own error reply, the
connection (or a new one) keeps working, nothing acknowledged is lost and no user reaches
another's data. One server for the whole module, with every protocol on; the web routes' own
probes are in test_web_attack_authz.py and test_web_attack_content.py.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import time
from typing import Any

import pytest
from support.gkserver import GKServer, gk
from support.irc import connect as irc_connect
from support.messages import drop_in_maildir
from support.rawimap import RawIMAP
from support.smtp import RawSMTP
from test_web_http import Client

ALICE, BOB = "alice@example.org", "bob@example.org"
PW = "correct horse battery staple"
SECRET = "Alice's private budget"


def tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the box's self-signed certificate
    return ctx


@pytest.fixture(scope="module")
def srv(tmp_path_factory):  # type: ignore[no-untyped-def]
    from support.dnsserver import LoopbackDNS

    from gk.chat.core import ChatService

    dns = LoopbackDNS().start()
    s = GKServer(
        tmp_path_factory.mktemp("probes") / "gk",
        {
            "dns": dns.config(),
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
            "imap": {"max_line_length": 100_000},
            "smtp": {"max_recipients": 20},
            "chat": {"line_burst": 100, "lines_per_second": 50.0},
            "ai": {"enabled": False},
        },
    )
    s.claimed({ALICE: PW, BOB: PW})
    drop_in_maildir(
        s,
        ALICE,
        f"From: carol@else.example\r\nTo: {ALICE}\r\nSubject: {SECRET}\r\nMessage-ID: <p1@else.example>\r\n"
        "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n\r\nthe numbers\r\n",
    )
    chat = ChatService.open(s.data_dir, [], None)
    chat.create_room("hidden", "alice", private=True)
    chat.post("alice", "#hidden", "the hidden plan")
    chat.stop()
    s.tokens = {  # type: ignore[attr-defined]
        u: gk(s.data_dir, "token", "add", u, "--scope", "mcp", "--label", "probe").stdout.strip() for u in (ALICE, BOB)
    }
    s.start()
    yield s
    s.stop()
    dns.stop()


def rss_kib(srv: GKServer) -> int:
    for line in open(f"/proc/{srv.pid()}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# -- IMAP ---------------------------------------------------------------------------------------


class Imap(RawIMAP):
    """A raw IMAP session over implicit TLS (``support.rawimap``), logged in as ``user`` unless
    ``login`` is False."""

    def __init__(self, srv: GKServer, user: str = ALICE, login: bool = True):
        super().__init__(srv)
        if login:
            assert self.cmd(f'l LOGIN {user} "{PW}"')[-1].startswith(b"l OK")

    def alive(self) -> None:
        assert self.cmd("zz NOOP")[-1].startswith(b"zz OK")


def test_imap_malformed_literals_are_bad_and_the_session_goes_on(srv):  # type: ignore[no-untyped-def]
    c = Imap(srv)
    for line in (
        b"a1 APPEND INBOX {-1}",
        b"a2 APPEND INBOX {999999999999}",
        b"a3 APPEND INBOX {99999999999999999999999999999999}",
        b"a4 APPEND INBOX {12x}",
        b"a5 APPEND INBOX {+}",
        b"a6 LOGIN {-5+}",
        b"a7 SELECT {4",
    ):
        tag = line.split(b" ")[0]
        out = c.cmd(line)
        assert out[-1].startswith(tag + b" BAD "), (line, out)  # never a continuation for these
        c.alive()
    # a non-synchronizing literal whose bytes are sent as announced: read, then the command runs
    c.send(b"a8 SELECT {5+}\r\nINBOX\r\n")
    assert c.until(b"a8")[-1].startswith(b"a8 OK")
    # LITERAL+ shorter than announced: the literal swallows the next line, which is not run as a command
    c.send(b"a9 CREATE {40+}\r\nshort\r\na10 DELETE INBOX\r\n")
    c.send(b"x" * 15 + b"\r\n")  # 25 + 15 = the 40 bytes announced
    out = c.until(b"a9")
    assert out[-1].split(b" ")[1] in (b"NO", b"BAD"), out
    c.alive()
    c.close()
    # before login: a literal over the small pre-login allowance is refused without a continuation
    c = Imap(srv, login=False)
    assert c.cmd(b"p1 LOGIN {100000}")[-1].startswith(b"p1 BAD")
    assert c.cmd(f'p2 LOGIN {ALICE} "{PW}"')[-1].startswith(b"p2 OK")
    c.close()


def test_imap_deep_nesting_and_huge_sequence_sets(srv):  # type: ignore[no-untyped-def]
    c = Imap(srv)
    c.cmd("s SELECT INBOX")
    assert c.status(b"n1 FETCH 1 " + b"(" * 5000 + b"FLAGS" + b")" * 5000) == b"BAD"
    assert c.status(b"n2 SEARCH " + b"(" * 5000 + b"ALL" + b")" * 5000) == b"BAD"
    assert c.status(b"n3 SEARCH " + b"NOT " * 5000 + b"ALL") == b"BAD"
    assert c.status(b"n4 SEARCH " + b"OR ALL " * 3000 + b"ALL") == b"BAD"
    assert c.status(b"n5 SEARCH " + b"ALL " * 5000) == b"BAD"
    c.alive()
    before = rss_kib(srv)
    started = time.monotonic()
    # 1:*,1:*,... within the line limit but over the ranges limit: BAD, fast
    assert c.status(b"q1 FETCH " + b",".join([b"1:*"] * 20_000) + b" FLAGS") == b"BAD"
    # under the ranges limit: answered once per message, not once per range
    out = c.cmd(b"q2 FETCH " + b",".join([b"1:*"] * 9_000) + b" FLAGS")
    assert out[-1].startswith(b"q2 OK") and sum(1 for x in out if x.startswith(b"* ")) == 1, out[-3:]
    out = c.cmd(b"q3 UID SEARCH UID " + b",".join([b"1:4294967295"] * 7_000))
    assert out[-1].startswith(b"q3 OK"), out[-1]
    assert c.status(b"q4 FETCH 0:4294967296 FLAGS") == b"BAD"
    assert c.status(b"q5 UID FETCH 99999999999999999999 FLAGS") == b"BAD"
    assert time.monotonic() - started < 20
    assert rss_kib(srv) - before < 100_000
    c.alive()
    c.close()


def test_imap_charsets_mailbox_names_and_rename_inbox(srv):  # type: ignore[no-untyped-def]
    c = Imap(srv)
    c.cmd("s SELECT INBOX")
    out = c.cmd("c1 SEARCH CHARSET X-NO-SUCH-CHARSET TEXT foo")
    assert out[-1].startswith(b"c1 NO [BADCHARSET"), out
    for line in (
        b"c2 SEARCH CHARSET " + b"A" * 5000 + b" TEXT foo",
        b'c3 SEARCH CHARSET "\x01\x02" TEXT foo',
        b"c4 SEARCH CHARSET UTF-7 TEXT foo",
    ):
        assert c.status(line) in (b"NO", b"BAD"), line
    assert c.status(b'c5 SEARCH CHARSET UTF-8 TEXT "\xff\xfe"') in (b"OK", b"NO", b"BAD")
    # modified UTF-7 that does not decode, or not canonically: refused, nothing created
    for i, name in enumerate(["&Jjo", "&-&", "&AGE-", "&ZZZZ-", "&2D0-", "&3AA-", "a&", "&U,BTFw-&ZeVnLIqe"]):
        assert c.status(f'u{i} CREATE "{name}"') in (b"NO", b"BAD"), name
    listing = c.cmd('l1 LIST "" "*"')
    assert listing[-1].startswith(b"l1 OK") and not any(b"&Jjo" in x or b"ZZZZ" in x for x in listing)
    # RENAME INBOX: moves the messages to a new folder, INBOX stays (empty); never onto INBOX
    c.cmd(b"ap APPEND INBOX {23}")
    c.send(b"Subject: rename me\r\n\r\nx\r\n")
    assert c.until(b"ap")[-1].startswith(b"ap OK")
    assert c.status("r1 RENAME INBOX INBOX") in (b"NO", b"BAD")
    assert c.status("r2 RENAME INBOX inbox") in (b"NO", b"BAD")
    assert c.status('r3 RENAME "Drafts" INBOX') in (b"NO", b"BAD")
    c.cmd("un UNSELECT")
    before = c.cmd("st1 STATUS INBOX (MESSAGES)")
    n_before = int(before[0].split(b"MESSAGES ")[1].split(b")")[0])
    assert n_before >= 1
    assert c.status("r5 RENAME INBOX Renamed-Inbox") == b"OK"
    moved = c.cmd("st2 STATUS Renamed-Inbox (MESSAGES)")
    assert moved[0].split(b"MESSAGES ")[1].startswith(str(n_before).encode()), moved
    assert b"MESSAGES 0" in c.cmd("st3 STATUS INBOX (MESSAGES)")[0]
    # put them back for the other tests (MOVE back, nothing lost)
    c.cmd("s2 SELECT Renamed-Inbox")
    assert c.status("mv MOVE 1:* INBOX") == b"OK"
    assert str(n_before).encode() in c.cmd("st4 STATUS INBOX (MESSAGES)")[0]
    c.cmd("un2 UNSELECT")
    assert c.status("dl DELETE Renamed-Inbox") == b"OK"
    c.alive()
    c.close()


def test_imap_list_patterns_cannot_hold_the_server(srv):  # type: ignore[no-untyped-def]
    """LIST patterns were regular expressions: 5,000 stars, or ``*a`` 30 times against a long
    folder name, backtracked for minutes on the hub, every session of the box frozen with it."""
    c = Imap(srv)
    long_name = "a" * 200
    assert c.status(f"m CREATE {long_name}") == b"OK"
    other = Imap(srv, user=BOB)
    started = time.monotonic()
    for i, pattern in enumerate(["*" * 5000 + "#", "*a" * 40 + "#", "%a" * 40 + "#", "*%" * 5000 + "#"]):
        out = c.cmd(f'p{i} LIST "" "{pattern}"')
        assert out[-1].startswith(f"p{i} OK".encode()) and len(out) == 1, out
    assert time.monotonic() - started < 10
    out = c.cmd('p9 LIST "" "a*a*a*a*a"')
    assert any(long_name.encode() in x for x in out), out
    other.alive()
    assert c.status(f"d DELETE {long_name}") == b"OK"
    c.close()
    other.close()


def test_imap_append_with_a_bad_date_or_flags(srv):  # type: ignore[no-untyped-def]
    c = Imap(srv)
    for i, date in enumerate(
        ['"99-Foo-2026 99:99:99 +9999"', '"31-Feb-2026 10:00:00 +0000"', '"01-Jan-0000 00:00:00 +0000"', "notadate"]
    ):
        out = c.cmd(f"d{i} APPEND INBOX {date} {{5}}")
        # refused before the literal is asked for, or the literal read and then refused
        if out[-1].startswith(b"+ "):
            c.send(b"Hi\r\n\r\n")
            out = c.until(f"d{i}")
        assert out[-1].split(b" ")[1] == b"BAD", (date, out)
    c.alive()
    c.close()


def test_imap_idle_then_garbage_and_logout_pipelining(srv):  # type: ignore[no-untyped-def]
    c = Imap(srv)
    c.cmd("s SELECT INBOX")
    assert c.cmd("i1 IDLE")[-1].startswith(b"+ ")
    c.send(b"\x00\xffgarbage that is not DONE\r\n")
    out = c.until(b"i1")
    assert out[-1].split(b" ")[1] in (b"BAD", b"NO", b"OK"), out
    c.alive()
    # commands after LOGOUT in the same packet are not run; the server closes
    c.send(b"lo LOGOUT\r\nafter CREATE after-logout\r\n")
    out = []
    while line := c.line():
        out.append(line)
    assert any(x.startswith(b"* BYE") for x in out) and out[-1].startswith(b"lo OK"), out
    c.close()
    c = Imap(srv)
    assert b"after-logout" not in b"".join(c.cmd('l LIST "" "*"'))
    c.close()
    # before login: commands of the authenticated state are refused, the session goes on
    c = Imap(srv, login=False)
    for line in ("b1 SELECT INBOX", "b2 FETCH 1 FLAGS", "b3 IDLE", "b4 APPEND INBOX {1+}\r\nx"):
        assert c.status(line) in (b"BAD", b"NO"), line
    assert c.cmd(f'b5 LOGIN {ALICE} "{PW}"')[-1].startswith(b"b5 OK")
    c.close()


def test_imap_pipelining_ten_thousand_commands_without_reading(srv):  # type: ignore[no-untyped-def]
    c = Imap(srv)
    c.cmd("s SELECT INBOX")
    before = rss_kib(srv)
    n = 10_000
    payload = b"".join(b"p%d NOOP\r\n" % i for i in range(n)) + b"p-last FETCH 1 FLAGS\r\n"
    sender = threading.Thread(target=lambda: c.send(payload))
    sender.start()
    time.sleep(2)  # the server writes answers nobody reads yet: its buffers must stay bounded
    grown = rss_kib(srv) - before
    out = c.until(b"p-last", timeout=120)  # 10,001 answers: more than one command's deadline
    sender.join(30)
    assert out[-1].startswith(b"p-last OK"), out[-1]
    assert sum(1 for x in out if x.startswith(b"p") and b" OK " in x) == n + 1
    assert grown < 50_000, grown
    c.alive()
    c.close()


# -- SMTP ---------------------------------------------------------------------------------------


def test_smtp_no_chunking_bare_lf_and_long_lines(srv):  # type: ignore[no-untyped-def]
    s = RawSMTP(srv.port("smtp.port"))
    ehlo = s.cmd("EHLO probe.example.net")
    assert ehlo.startswith("250")
    if "CHUNKING" not in ehlo:
        assert s.cmd("BDAT 10 LAST")[:1] == "5"
        assert s.cmd("BDAT 99999999999999999999")[:1] == "5"
    assert s.cmd(b"NOOP " + b"x" * 10_000)[:1] == "5"  # a line over the limit: an error, not a close
    assert s.cmd(b"MAIL FROM:<" + b"a" * 5000 + b"@else.example>")[:1] == "5"
    assert s.cmd("RSET").startswith("250")
    # bare LF and bare CR in DATA never end the message nor smuggle a second one
    assert s.cmd("MAIL FROM:<probe@else.example>").startswith("250")
    assert s.cmd(f"RCPT TO:<{BOB}>").startswith("250")
    assert s.cmd("DATA").startswith("354")
    s.send(b"Subject: lf\r\n\r\nline\n.\nMAIL FROM:<smuggled@else.example>\r\nbare\rCR\r\n.\r\n")
    reply = s.reply()
    assert reply[:1] in ("2", "5"), reply
    assert s.cmd("NOOP").startswith("250")
    assert s.cmd("QUIT").startswith("221")
    s.close()


def test_smtp_bytes_that_are_not_utf8_are_a_syntax_error(srv):  # type: ignore[no-untyped-def]
    """``RCPT TO:<\xff\xfe@…>`` reached SQLite as surrogate escapes: 451 "internal error" with a
    traceback, and a client retrying it for days. It is the client's error: 501, session goes on."""
    for port, tls_ in ((srv.port("smtp.port"), False), (srv.port("smtp.submissions_port"), True)):
        s = RawSMTP(port, tls=tls_)
        assert s.cmd(b"EHLO probe\xff.example.net")[:1] in ("2", "5")
        assert s.cmd("EHLO probe.example.net").startswith("250")
        if tls_:
            assert s.cmd("AUTH PLAIN " + base64.b64encode(f"\0{ALICE}\0{PW}".encode()).decode()).startswith("235")
        assert s.cmd(b"MAIL FROM:<\xff\xfe@else.example>").startswith("501")
        assert s.cmd(b"MAIL FROM:<" + ALICE.encode() + b">").startswith("250")
        for rcpt in (b"\xff\xfe@example.org", b"bob@exam\xffple.org", "b\u00f6b@example.org".encode("latin-1")):
            assert s.cmd(b"RCPT TO:<" + rcpt + b">").startswith("501"), rcpt
        assert s.cmd(f"RCPT TO:<{BOB}>").startswith("250")
        assert s.cmd("RSET").startswith("250")
        s.close()
    assert "surrogates not allowed" not in srv.log()


def test_smtp_rcpt_flood_and_pipelining_abuse(srv):  # type: ignore[no-untyped-def]
    s = RawSMTP(srv.port("smtp.port"))
    assert s.cmd("EHLO probe.example.net").startswith("250")
    assert s.cmd("MAIL FROM:<flood@else.example>").startswith("250")
    codes = [s.cmd(f"RCPT TO:<{BOB}>")[:3] for _ in range(60)]
    assert codes[:20] == ["250"] * 20 and set(codes[20:]) <= {"452", "451", "421", "550", "503"}, codes
    assert s.cmd("RSET").startswith("250") or True
    s.close()
    # a whole transaction and garbage in one write: every command answered in order
    s = RawSMTP(srv.port("smtp.port"))
    s.send(
        b"EHLO probe.example.net\r\nMAIL FROM:<pipe@else.example>\r\nRCPT TO:<"
        + BOB.encode()
        + b">\r\nFROB\r\nDATA\r\nSubject: piped\r\n\r\nhello\r\n.\r\nNOOP\r\n"
    )
    replies = [s.reply() for _ in range(6)]
    assert [r[:1] for r in replies] == ["2", "2", "2", "5", "3", "2"], replies
    assert s.reply().startswith("250")
    s.close()


def test_smtp_auth_refused_without_tls_and_garbage_base64(srv):  # type: ignore[no-untyped-def]
    for port in (srv.port("smtp.port"), srv.port("smtp.submission_port")):
        s = RawSMTP(port)
        ehlo = s.cmd("EHLO probe.example.net")
        assert "AUTH" not in ehlo, ehlo
        creds = base64.b64encode(f"\0{ALICE}\0{PW}".encode()).decode()
        assert s.cmd(f"AUTH PLAIN {creds}")[:1] == "5"
        assert s.cmd("AUTH PLAIN !!!not-base64***")[:1] == "5"
        assert s.cmd("NOOP").startswith("250")
        s.close()
    # over TLS: garbage base64 is a 501, the session goes on, and real credentials still work
    s = RawSMTP(srv.port("smtp.submissions_port"), tls=True)
    s.cmd("EHLO probe.example.net")
    for bad in ("!!!not-base64***", "AAAA" * 3000, "=", base64.b64encode(b"\xff\xfe\0\0").decode()):
        assert s.cmd(f"AUTH PLAIN {bad}")[:1] == "5", bad
    assert s.cmd("AUTH LOGIN").startswith("334")
    assert s.cmd("%%%%")[:1] == "5"
    creds = base64.b64encode(f"\0{ALICE}\0{PW}".encode()).decode()
    assert s.cmd(f"AUTH PLAIN {creds}").startswith("235")
    s.close()


# -- CalDAV / CardDAV ---------------------------------------------------------------------------


def dav(
    srv: GKServer,
    method: str,
    path: str,
    body: bytes | str | None = None,
    user: str = ALICE,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port("http.https_port"), context=tls(), timeout=60)
    hdrs = {"Authorization": "Basic " + base64.b64encode(f"{user}:{PW}".encode()).decode(), **(headers or {})}
    try:
        conn.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//probe//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:20260310T090000Z\r\nDTEND:20260310T100000Z\r\n"
    "SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_dav_depth_infinity_and_malformed_or_huge_xml(srv):  # type: ignore[no-untyped-def]
    status, _ = dav(srv, "PROPFIND", f"/dav/{ALICE}/", headers={"Depth": "infinity"})
    assert status in (207, 403), status
    for body in (
        "<not xml",
        '<?xml version="1.0"?><C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav">',
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
        "<a>" * 100_000 + "</a>" * 100_000,
        "\xff\xfe<x/>",
    ):
        status, text = dav(srv, "REPORT", f"/dav/{ALICE}/calendar/", body, headers={"Depth": "1"})
        assert 400 <= status < 500, (body[:40], status, text[:200])
    status, _ = dav(srv, "PROPFIND", f"/dav/{ALICE}/", "<a>" * 100_000, headers={"Depth": "0"})
    assert 400 <= status < 500, status
    # a time range with absurd dates: an error or an empty answer, never a 500
    for start, end in (("00010101T000000Z", "99991231T235959Z"), ("garbage", "20260101T000000Z"), ("", "")):
        q = (
            '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>'
        )
        status, text = dav(srv, "REPORT", f"/dav/{ALICE}/calendar/", q, headers={"Depth": "1"})
        assert status in (207, 400, 403), (start, status, text[:300])
    assert dav(srv, "PROPFIND", f"/dav/{ALICE}/", headers={"Depth": "0"})[0] == 207


def test_dav_invalid_objects_are_4xx_and_nothing_crosses_users(srv):  # type: ignore[no-untyped-def]
    cal, book = f"/dav/{ALICE}/calendar/", f"/dav/{ALICE}/contacts/"
    status, _ = dav(srv, "PROPFIND", book, headers={"Depth": "0"})
    if status == 404:
        book = next(
            p for p in (f"/dav/{ALICE}/addressbook/", f"/dav/{ALICE}/contacts/") if dav(srv, "PROPFIND", p)[0] == 207
        )
    for body in ("not a calendar", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n"):
        status, text = dav(srv, "PUT", cal + "bad.ics", body, headers={"Content-Type": "text/calendar"})
        assert 400 <= status < 500, (body, status, text[:300])
    # an empty VCALENDAR (no component) is accepted (Radicale's leniency), and must not break reads
    dav(srv, "PUT", cal + "empty.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\nEND:VCALENDAR\r\n")
    # whatever was accepted, the collection still answers every kind of read
    query = (
        '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20260101T000000Z" end="20270101T000000Z"/></C:comp-filter></C:comp-filter></C:filter>'
        "</C:calendar-query>"
    )
    assert dav(srv, "REPORT", cal, query, headers={"Depth": "1"})[0] == 207
    assert dav(srv, "PROPFIND", cal, headers={"Depth": "1"})[0] == 207
    assert dav(srv, "GET", cal)[0] == 200
    for body in ("not a card", "BEGIN:VCARD\r\nVERSION:9.9\r\nEND:VCARD\r\n", "BEGIN:VCARD\r\n"):
        status, text = dav(srv, "PUT", book + "bad.vcf", body, headers={"Content-Type": "text/vcard"})
        assert 400 <= status < 500, (body, status, text[:300])
    # If-Match: a stale etag loses, the object is unchanged
    assert dav(srv, "PUT", cal + "race.ics", EVENT.format(uid="race", summary="first"))[0] in (201, 204)
    status, _ = dav(
        srv, "PUT", cal + "race.ics", EVENT.format(uid="race", summary="second"), headers={"If-Match": '"stale"'}
    )
    assert status == 412
    assert (
        dav(srv, "PUT", cal + "race2.ics", EVENT.format(uid="race2", summary="x"), headers={"If-Match": "*"})[0] == 412
    )
    assert "first" in dav(srv, "GET", cal + "race.ics")[1]
    # MOVE / COPY across users: refused both ways, Alice's event stays hers
    secret = EVENT.format(uid="secret-ev", summary=SECRET)
    assert dav(srv, "PUT", cal + "secret.ics", secret)[0] in (201, 204)
    for method in ("MOVE", "COPY"):
        dest = f"https://127.0.0.1:{srv.port('http.https_port')}/dav/{BOB}/calendar/{method}.ics"
        status, _ = dav(srv, method, cal + "secret.ics", headers={"Destination": dest})
        assert status in (403, 404, 409, 502), (method, status)  # GK's COPY: as a PUT there, 403
        status, _ = dav(srv, method, cal + "secret.ics", user=BOB, headers={"Destination": dest})
        assert status in (403, 404), (method, status)
        assert SECRET not in dav(srv, "GET", f"/dav/{BOB}/calendar/{method}.ics", user=BOB)[1]
    assert dav(srv, "GET", cal + "secret.ics", user=BOB)[0] in (403, 404)
    assert SECRET in dav(srv, "GET", cal + "secret.ics")[1]


def test_dav_an_endless_secondly_event_exhausts_neither_memory_nor_cpu(srv):  # type: ignore[no-untyped-def]
    """An ``RRULE:FREQ=SECONDLY`` event without COUNT or UNTIL: expanding it over years built a list
    of every second (dateutil ignored Radicale's occurrence limit: +300 MB in seconds, toward the
    OOM killer), and a time range far from its start, in CalDAV or on the web calendar's page
    (on the hub), walked tens of millions of occurrences."""
    cal = f"/dav/{ALICE}/calendar/"
    endless = EVENT.format(uid="endless", summary="every second").replace(
        "DTEND:20260310T100000Z\r\n", "DTEND:20260310T090001Z\r\nRRULE:FREQ=SECONDLY\r\n"
    )
    assert dav(srv, "PUT", cal + "endless.ics", endless)[0] in (201, 204)

    def query(start: str, end: str, expand: bool) -> str:
        inner = f'<C:expand start="{start}" end="{end}"/>' if expand else ""
        return (
            '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:prop><D:getetag/><C:calendar-data>{inner}</C:calendar-data></D:prop><C:filter>"
            '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>'
        )

    before = rss_kib(srv)
    other = Imap(srv, user=BOB)
    started = time.monotonic()
    status, _ = dav(srv, "REPORT", cal, query("00010101T000000Z", "99991231T235959Z", True), headers={"Depth": "1"})
    assert status == 400  # over Radicale's max_expand_occurrence, now enforced
    assert rss_kib(srv) - before < 100_000
    status, text = dav(srv, "REPORT", cal, query("20260310T090000Z", "20260310T090010Z", True), headers={"Depth": "1"})
    assert status == 207 and "endless" in text  # a narrow window still expands
    status, _ = dav(srv, "REPORT", cal, query("90000101T000000Z", "99991231T235959Z", False), headers={"Depth": "1"})
    assert status in (207, 400)
    fb = (
        '<?xml version="1.0"?><C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<C:time-range start="90000101T000000Z" end="99991231T235959Z"/></C:free-busy-query>'
    )
    assert dav(srv, "REPORT", cal, fb, headers={"Depth": "1"})[0] in (200, 400)
    web = Client(srv)
    web.login(ALICE, PW)
    resp, _ = web.get("/calendar?view=month&date=2027-06-01")
    assert resp.status == 200
    other.alive()
    assert time.monotonic() - started < 30, time.monotonic() - started
    assert rss_kib(srv) - before < 100_000
    assert dav(srv, "DELETE", cal + "endless.ics")[0] in (200, 204)
    other.close()


# -- MCP ----------------------------------------------------------------------------------------

V = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": V, "io.modelcontextprotocol/clientCapabilities": {}}


def mcp(srv: GKServer, body: bytes | dict | list, user: str = ALICE, headers: dict | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=60)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {srv.tokens[user]}",  # type: ignore[attr-defined]
        **(headers or {}),
    }
    try:
        conn.request("POST", "/mcp", data, {k: v for k, v in hdrs.items() if v is not None})
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("Content-Type", "")
        return resp.status, json.loads(raw) if raw and ctype.startswith("application/json") else raw
    finally:
        conn.close()


def call(name: str, arguments: Any, id_: int = 1) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "tools/call",
        "params": {"_meta": META, "name": name, "arguments": arguments},
    }


def test_mcp_malformed_json_rpc_gets_json_rpc_errors(srv):  # type: ignore[no-untyped-def]
    hdrs = {"MCP-Protocol-Version": V, "Mcp-Method": "tools/list"}
    cases: list[bytes | dict | list] = [
        b"{not json",
        b"\xff\xfe",
        b"[" * 5_000 + b"]" * 5_000,
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001,
        [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}] * 3,
        [],
        {"jsonrpc": "1.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": {"x": 1}, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1, "method": 7},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": "x"},
        "just a string",  # type: ignore[list-item]
    ]
    for body in cases:
        status, out = mcp(srv, body, headers=hdrs)
        assert status in (200, 400), (str(body)[:60], status, out)
        assert isinstance(out, dict) and out.get("jsonrpc") == "2.0" and "error" in out, (str(body)[:60], out)
        assert isinstance(out["error"].get("code"), int)
    # a wrong or missing protocol version, a stray session id: an error, not a 500
    ok = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": META}}
    for extra in (
        {"MCP-Protocol-Version": "1999-01-01"},
        {"MCP-Protocol-Version": "\x7f" * 3},
        {"Mcp-Session-Id": "nope"},
    ):
        status, out = mcp(srv, ok, headers={**hdrs, **extra})
        assert status < 500, (extra, status, out)
    # wrong argument types: a JSON-RPC error or a tool error, never a 500 and never data
    for args in ({"uid": "x"}, {"uid": [1]}, {"uid": -1, "folder": {"a": 1}}, "notanobject", None, {"text": 5}):
        for tool in ("mail_read", "mail_search"):
            status, out = mcp(srv, call(tool, args), headers={**hdrs, "Mcp-Method": "tools/call", "Mcp-Name": tool})
            assert status in (200, 400), (tool, args, status, out)
            assert "error" in out or out.get("result", {}).get("isError"), (tool, args, out)
    # after all that the endpoint still answers
    status, out = mcp(srv, ok, headers=hdrs)
    assert status == 200 and "tools" in out["result"], out


def test_mcp_another_users_token_never_reaches_the_first_users_mail(srv):  # type: ignore[no-untyped-def]
    hdrs = {"MCP-Protocol-Version": V, "Mcp-Method": "tools/call"}
    status, out = mcp(srv, call("mail_search", {"text": "budget"}), headers={**hdrs, "Mcp-Name": "mail_search"})
    assert status == 200 and "budget" in json.dumps(out).lower(), out  # Alice finds her own
    for args in ({"text": "budget"}, {"text": "budget", "folder": f"../../{ALICE}/Maildir"}):
        _, out = mcp(srv, call("mail_search", args), user=BOB, headers={**hdrs, "Mcp-Name": "mail_search"})
        assert "private budget" not in json.dumps(out).lower(), out
    for args in ({"uid": 1}, {"uid": 1, "folder": "INBOX"}, {"uid": 1, "folder": f"/{ALICE}/INBOX"}):
        _, out = mcp(srv, call("mail_read", args), user=BOB, headers={**hdrs, "Mcp-Name": "mail_read"})
        assert "numbers" not in json.dumps(out) and "private budget" not in json.dumps(out).lower(), out


# -- the mounted JSON APIs: deep nesting ---------------------------------------------------------


def test_json_apis_answer_deeply_nested_json_with_their_own_error(srv):  # type: ignore[no-untyped-def]
    """json.loads raises RecursionError (not ValueError) on deep nesting: each JSON door must
    still answer with its own 4xx error body, not a 500."""
    deep = b"[" * 5_000 + b"]" * 5_000  # under every door's size limit
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=60)
    conn.request("POST", "/oauth/register", deep, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert 400 <= resp.status < 500, (resp.status, body[:200])
    token = gk(srv.data_dir, "token", "add", ALICE, "--scope", "mail:write", "--label", "deep").stdout.strip()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port("http.port"), timeout=60)
    conn.request("POST", "/api/v1/send", deep, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert 400 <= resp.status < 500, (resp.status, body[:200])
    assert "RecursionError" not in srv.log()


# -- chat ---------------------------------------------------------------------------------------


def test_chat_private_room_join_invalid_utf8_and_flood(srv):  # type: ignore[no-untyped-def]
    bob = irc_connect(srv.port("chat.irc_port"), BOB, password=PW, nick="bob")
    bob.send("JOIN #hidden")
    bob.expect(r" (473|474|475|403|405) ")
    bob.send("CHATHISTORY LATEST #hidden * 50")
    line = bob.expect(r"(FAIL|ERR|4\d\d|BATCH)")
    assert "hidden plan" not in line
    bob.send(b"PRIVMSG alice :\xff\xfe\xc0 invalid utf-8")
    bob.send(b"PING :" + b"x" * 20_000)
    bob.send("PING :still-here")
    bob.expect(r"PONG .*still-here")
    assert not any("hidden plan" in x for x in bob.seen), bob.seen
    # a flood past the burst: flood control answers or disconnects; the server keeps serving others
    for i in range(400):
        try:
            bob.send(f"PRIVMSG alice :flood {i}")
        except OSError:
            break
    bob.close()
    alice = irc_connect(srv.port("chat.irc_port"), ALICE, password=PW, nick="alice")
    alice.send("PING :ok")
    alice.expect(r"PONG .*ok")
    alice.close()


# -- the web: Origin on state-changing requests ---------------------------------------------------


def test_a_foreign_origin_is_refused_on_cookie_authenticated_posts(srv):  # type: ignore[no-untyped-def]
    c = Client(srv)
    c.login(ALICE, PW)
    c.get("/account")
    assert c.csrf
    port = srv.port("http.port")
    form = {"csrf": c.csrf, "timezone": "Europe/Paris"}
    # another site's page, with the victim's cookie and even a valid token: 403 with a clear message
    for origin in ("http://evil.example", f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}", "null"):
        resp, page = c.request("POST", "/logout", form=dict(form), headers={"Origin": origin})
        assert resp.status == 403, (origin, resp.status)
        assert "another site" in page, page[-500:]
        assert c.get("/account")[0].status == 200  # still signed in: the logout did not happen
    # the box's own origin, or none (the CSRF token decides): accepted
    resp, _ = c.request("POST", "/logout", form=dict(form), headers={"Origin": f"http://127.0.0.1:{port}"})
    assert resp.status == 303, resp.status
    c = Client(srv)
    c.login(ALICE, PW)
    c.get("/account")
    resp, _ = c.request("POST", "/logout", form={"csrf": c.csrf})
    assert resp.status == 303
    # Basic/Bearer clients are not cookie-authenticated: a foreign Origin does not stop them here
    status, _ = dav(
        srv,
        "PUT",
        f"/dav/{ALICE}/calendar/origin.ics",
        EVENT.format(uid="o", summary="o"),
        headers={"Origin": "http://x"},
    )
    assert status in (201, 204), status
    status, out = mcp(
        srv,
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": META}},
        headers={"MCP-Protocol-Version": V, "Mcp-Method": "tools/list"},
    )
    assert status == 200


def test_the_server_survived_every_probe(srv):  # type: ignore[no-untyped-def]
    assert srv.proc is not None and srv.proc.poll() is None
    c = Imap(srv)
    c.cmd("s SELECT INBOX")
    out = c.cmd("f FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert SECRET.encode() in b"".join(out)  # nothing acknowledged was lost
    c.close()
    log = srv.log()
    assert "RecursionError" not in log and "MemoryError" not in log
    assert not [x for x in log.splitlines() if '" 500 ' in x], log[-5000:]  # no request answered 500
