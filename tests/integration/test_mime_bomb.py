"""MIME part bomb (issue 9 §1.2) against a real ``gk serve``: a 1 MB message of 100,000 empty
parts, delivered on port 25, used to block the whole process for seconds while its mailbox was
indexed (parsed on the hub: under the old 1 MB threadpool threshold), grow RSS by ~100 MB (a
400,000-part one: +484 MB) and, under a memory limit, make every SELECT of that INBOX fail with
``NO [SERVERBUG]`` forever. Now the tree stops at ``mime.MAX_PARTS``, the parse runs in the
threadpool, and the message stays readable over IMAP and in the webmail."""

from __future__ import annotations

import re
import threading
import time

import pytest
from imapclient.response_parser import parse_fetch_response
from support.imap import ALICE, BOB, Raw, smtp_delivery_server
from support.smtp import smtp25

from gk.mail.mailbox.mime import MAX_PARTS

PARTS = 100_000  # 10 bytes a part: a body of 1,000,010 bytes


def bomb_body(parts: int = PARTS) -> bytes:
    return b"--bomb\r\n\r\n" * parts + b"--bomb--\r\n"


def bomb(to: str = ALICE, parts: int = PARTS) -> bytes:
    return (
        f"From: Mallory <mallory@example.net>\r\nTo: {to}\r\nSubject: part bomb\r\n"
        "Date: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bomb@example.net>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=bomb\r\n\r\n"
    ).encode() + bomb_body(parts)


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM (peak RSS) to the current RSS (Linux ≥ 4.0: ``5`` to clear_refs)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class NoopProbe(threading.Thread):
    """Another user's IMAP session sending NOOP after NOOP: records when each answer came."""

    def __init__(self, srv) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.session = Raw(srv, "INBOX", user=BOB)  # another user: no mailbox lock in common
        self.answers: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.session.cmd("NOOP")
            self.answers.append(time.monotonic())

    def longest_gap(self, start: float, end: float) -> float:
        times = [start, *(t for t in self.answers if start < t < end), end]
        return max(b - a for a, b in zip(times, times[1:], strict=False))


smtp_server = smtp_delivery_server()


@pytest.mark.parametrize("parts", [PARTS, 4 * PARTS])
def test_part_bomb_over_port_25_stays_readable_and_never_stalls_the_process(smtp_server, parts):  # type: ignore[no-untyped-def]
    """1 MB / 100,000 parts: was parsed on the hub (12 s with 1 NOOP answered here, +123 MB);
    4 MB / 400,000 parts: was parsed in the threadpool, but its tree and JSON took +484 MB (the
    issue's figure). Run with ``-s`` for the figures."""
    pid = smtp_server.pid()
    raw = bomb(parts=parts)
    if parts == PARTS:
        assert 990_000 < len(raw) < 1024 * 1024  # the size that used to be parsed on the hub
    # warm up: a plain message delivered, indexed and fetched (imports, caches, TLS)
    with smtp25(smtp_server) as s:
        s.sendmail("mallory@example.net", [ALICE], b"Subject: warm-up\r\n\r\nhello\r\n")
    reader = Raw(smtp_server)
    reader.cmd("SELECT INBOX")
    reader.cmd("FETCH 1 (BODYSTRUCTURE BODY.PEEK[])")
    with smtp25(smtp_server) as s:
        s.sendmail("mallory@example.net", [ALICE], raw)  # written to new/, indexed at the next SELECT
    probe = NoopProbe(smtp_server)
    probe.start()
    time.sleep(1.0)
    rss_before = status_kb(pid, "VmRSS")
    peak_reset = reset_peak_rss(pid)

    started = time.monotonic()
    selected = reader.cmd("SELECT INBOX")  # indexes the bomb
    ended = time.monotonic()
    time.sleep(0.5)
    probe.stop.set()
    probe.join(60)
    answered = sum(1 for t in probe.answers if started < t < ended)
    gap = probe.longest_gap(started, ended)

    print(f"SELECT {ended - started:.2f} s, {answered} NOOPs answered, longest gap {gap:.2f} s", end=", ")
    assert b"* 2 EXISTS\r\n" in selected, selected
    grown_mb = (status_kb(pid, "VmHWM" if peak_reset else "VmRSS") - rss_before) / 1024
    print(f"RSS +{grown_mb:.1f} MB ({'peak' if peak_reset else 'current'})")
    assert grown_mb < 60, f"indexing the part bomb grew the RSS by {grown_mb:.0f} MB"
    # structural: the other user's session kept being answered while the SELECT indexed the
    # bomb (parse in the threadpool); on the hub not one NOOP was answered in that window.
    # Seconds are only reported, never asserted (a loaded machine stretches them).
    assert answered >= 3, f"{answered} NOOPs answered in the {ended - started:.1f} s of SELECT; longest gap {gap:.1f} s"

    # readable: ENVELOPE, a BODYSTRUCTURE a real client parses, the raw message and its text
    lines = reader.cmd("FETCH 2 (ENVELOPE BODYSTRUCTURE RFC822.SIZE)")
    fetch = next(x for x in lines if x.startswith(b"* 2 FETCH"))
    parsed = parse_fetch_response([b"2 " + fetch[len(b"* 2 FETCH ") :].rstrip(b"\r\n")])[2]  # as imaplib gives it
    assert parsed[b"ENVELOPE"].subject == b"part bomb"
    body = parsed[b"BODYSTRUCTURE"]
    assert body.is_multipart and body[1] == b"MIXED" and len(body[0]) == MAX_PARTS
    assert body[0][0][:2] == (b"TEXT", b"PLAIN") and body[0][-1][:2] == (b"APPLICATION", b"OCTET-STREAM")
    size = parsed[b"RFC822.SIZE"]
    whole = _literal(reader, "FETCH 2 BODY.PEEK[]")
    assert len(whole) == size and whole.endswith(raw)  # the raw message, with our Received header
    assert _literal(reader, "FETCH 2 BODY.PEEK[TEXT]") == bomb_body(parts)
    last = _literal(reader, f"FETCH 2 BODY.PEEK[{MAX_PARTS}]")  # the opaque rest, served raw
    assert last.count(b"--bomb\r\n") == parts - MAX_PARTS
    # and the server still answers everyone
    assert reader.cmd("NOOP")[-1].split()[1] == b"OK"
    reader.close()
    probe.session.close()


def _literal(session: Raw, command: str) -> bytes:
    """The data of the one literal in a FETCH answer (read by size, not by lines)."""
    session.n += 1
    tag = f"r{session.n}"
    session.send(f"{tag} {command}")
    head = session.f.readline()
    m = re.search(rb"\{(\d+)\}\r\n$", head)
    assert m, head
    data = session.f.read(int(m.group(1)))
    rest = session.wait_for(tag.encode() + b" ")
    assert rest[-1].split()[1] == b"OK", rest
    return data


def test_part_bomb_is_readable_in_the_webmail(make_server):  # type: ignore[no-untyped-def]
    """The list, the read page and the opaque rest as a download (the parts GK did not parse)."""
    from test_web_http import ADMIN, NO_MAIL, run_wizard
    from test_web_mail import drop_in_maildir, message_links

    srv = make_server(overrides=NO_MAIL).start()
    admin = run_wizard(srv)
    drop_in_maildir(srv, ADMIN, bomb(ADMIN).decode())
    resp, inbox = admin.get("/mail")
    assert resp.status == 200 and "part bomb" in inbox
    link = next(x for x in message_links(inbox) if "INBOX" in x)
    resp, page = admin.get(link)
    assert resp.status == 200 and "part bomb" in page
    parts = re.findall(r'href="(/mail/part\?[^"]+)"', page)
    rest = next(x.replace("&amp;", "&") for x in parts if f"part={MAX_PARTS}" in x.replace("&amp;", "&"))
    resp, data = admin.get(rest)
    assert resp.status == 200 and data.count("--bomb\r\n") == PARTS - MAX_PARTS
