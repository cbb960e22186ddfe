"""Property test of the REAL IMAP session (replaces a test that re-implemented the dispatch): random
and half-valid command lines are fed to ``gk.mail.imap.session.Session`` through the in-process
harness in every state — not authenticated, authenticated, selected, idling — and every line it
answers must be a protocol reply (untagged ``*``, continuation ``+``, or ``<tag> OK|NO|BAD``),
never ``NO [SERVERBUG]``, and the session must keep serving (a NOOP after it is answered OK)."""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.imapharness import Client, IMAPHarness

from gk.config import Config

STATES = ("notauth", "auth", "selected", "idling")
COMMANDS = (
    "CAPABILITY NOOP ID STARTTLS LOGIN AUTHENTICATE ENABLE NAMESPACE SELECT EXAMINE CREATE DELETE RENAME"
    " SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS APPEND IDLE CHECK CLOSE UNSELECT EXPUNGE SEARCH FETCH STORE"
    " COPY MOVE UID DONE COMPRESS"
).split()
FRAGMENTS = [
    "1",
    "2",
    "1:*",
    "*",
    "$",
    "2,4:5",
    "0",
    "4294967296",
    "(FLAGS)",
    "(BODY[])",
    "FLAGS",
    "UID",
    "BODY.PEEK[HEADER.FIELDS (Subject)]<0.10>",
    "BODY[1.2.MIME]",
    "RFC822",
    "ENVELOPE",
    "BODYSTRUCTURE",
    "INBOX",
    '"INBOX"',
    "Trash",
    "Sent",
    '"a b"',
    "Work/Sub",
    "NIL",
    "()",
    "(",
    ")",
    "\\Seen",
    "\\Deleted",
    "$Label",
    "+FLAGS",
    "-FLAGS.SILENT",
    "FLAGS.SILENT",
    "(UNCHANGEDSINCE 1)",
    "(CHANGEDSINCE 1 VANISHED)",
    "(CHANGEDSINCE 0)",
    "RETURN",
    "(SAVE MIN MAX COUNT ALL)",
    "CHARSET",
    "UTF-8",
    "SUBJECT",
    "OR",
    "NOT",
    "ALL",
    "SEEN",
    "MODSEQ",
    "(CONDSTORE)",
    "(QRESYNC (1 1))",
    "(QRESYNC (1 1 1:5 (1:2 1:2)))",
    "MESSAGES",
    "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE)",
    '""',
    "%",
    "PLAIN",
    "LOGIN",
    "QRESYNC",
    "CONDSTORE",
    '"01-Feb-2026 10:00:00 +0100"',
    "SINCE",
    "1-Jan-2026",
    "=",
    "AGFhAGI=",
    "(SUBSCRIBED)",
    "(SPECIAL-USE)",
    "(CHILDREN STATUS (MESSAGES))",
    "HEADER",
    "X",
    "LARGER",
    "100",
]
SEEDS = [
    b"a CAPABILITY",
    b'a ID ("name" "x" "version" NIL)',
    b"a ID NIL",
    b"a NAMESPACE",
    b"a ENABLE QRESYNC CONDSTORE",
    b'a LOGIN alice@example.org "wrong"',
    b"a AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHdyb25n",
    b"a AUTHENTICATE LOGIN",
    b"a STARTTLS",
    b"a SELECT INBOX",
    b"a EXAMINE INBOX (CONDSTORE)",
    b"a SELECT INBOX (QRESYNC (1 1 1:5 (1:2 1:2)))",
    b"a CREATE Work/Sub",
    b"a DELETE Work/Sub",
    b"a RENAME Work Play",
    b"a SUBSCRIBE Trash",
    b"a UNSUBSCRIBE x",
    b'a LIST "" *',
    b'a LIST (SUBSCRIBED) "" ("INBOX" "%") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))',
    b'a LSUB "" %',
    b"a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE)",
    b"a CHECK",
    b"a CLOSE",
    b"a UNSELECT",
    b"a EXPUNGE",
    b"a UID EXPUNGE 1:2",
    b"a SEARCH NOT OR SEEN 1:4 SINCE 1-Jan-2026 LARGER 10 HEADER Subject m UID 2:*",
    b"a UID SEARCH RETURN (SAVE MIN MAX COUNT) CHARSET UTF-8 SUBJECT m",
    b"a SEARCH $",
    b"a SEARCH MODSEQ 1",
    b"a FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE BODY)",
    b"a FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject From)]<0.100> BODY[TEXT] BODY[1.MIME] RFC822.HEADER)",
    b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)",
    b"a FETCH $ (MODSEQ)",
    b"a FETCH 2 BODY[]",
    b"a STORE 1:3 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Deleted)",
    b"a UID STORE 1 FLAGS ($Label \\Seen)",
    b"a STORE 2 -FLAGS \\Seen",
    b"a COPY 1:2 Trash",
    b"a UID MOVE 3 Archive",
    b"a MOVE 1 Nope",
    b"a IDLE",
]
_LITERAL_AT_END = re.compile(rb"\{\d*\+?\}$")
_REPLY = re.compile(rb"^(\* |\+( |$)|[\x21-\x7e]+ (OK|NO|BAD)( |$))")


def _mutated(seed: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    data = bytearray(seed)
    for pos, ins in edits:
        pos = pos % (len(data) + 1)
        if ins:
            data[pos:pos] = ins
        elif data:
            del data[pos % len(data)]
    return bytes(data)


def _line() -> st.SearchStrategy[bytes]:
    words = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=6)
    half_valid = st.builds(
        lambda tag, uid, cmd, args: " ".join([tag, *(["UID"] if uid else []), cmd, *args]).encode("utf-8", "replace"),
        st.sampled_from(["a", "A1", "*", "+", "x.y", "", "tag)"]),
        st.booleans(),
        st.sampled_from(COMMANDS),
        words,
    )
    return (
        st.one_of(
            st.sampled_from(SEEDS),
            st.builds(
                _mutated,
                st.sampled_from(SEEDS),
                st.lists(st.tuples(st.integers(0, 200), st.binary(max_size=4)), max_size=4),
            ),
            half_valid,
            st.binary(max_size=120),
        )
        .map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
        .filter(lambda b: not _LITERAL_AT_END.search(b) and b"LOGOUT" not in b.upper())
    )


@pytest.fixture(scope="module")
def harness() -> Iterator[IMAPHarness]:
    config = Config()
    config.auth.max_delay = 0.0  # random LOGINs fail: no delays, no lockout of the test's own logins
    config.auth.lockout_failures_ip = config.auth.lockout_failures_account = 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        h = IMAPHarness(Path(tmp) / "gk", config=config)
        for i in range(3):
            h.deliver(f"Subject: m{i}\r\nFrom: a@example.com\r\n\r\nbody {i}\r\n".encode())
        yield h
        h.close()


def _open(h: IMAPHarness, state: str) -> Client:
    c = h.connect()
    if state != "notauth":
        c.login()
    if state in ("selected", "idling"):
        c.ok("SELECT INBOX")
    if state == "idling":
        c.send(b"i0 IDLE\r\n")
        assert c.line().startswith(b"+ ")
    return c


_probes = (f"z{i}" for i in itertools.count())


def _exchange(c: Client, line: bytes) -> list[bytes]:
    """Send ``line``, then a NOOP probe; read until the probe's answer. A continuation (IDLE, a SASL
    challenge) is answered ``DONE`` and a new probe. Returns every line read."""
    probe = next(_probes)
    c.send(line + b"\r\n" + probe.encode() + b" NOOP\r\n")
    seen: list[bytes] = []
    while True:
        reply = c.line()
        seen.append(reply)
        first = reply.split(b"\r\n", 1)[0]
        assert _REPLY.match(first), f"not an IMAP reply to {line!r}: {reply!r} (so far {seen!r})"
        assert b"[SERVERBUG]" not in first, f"{line!r} → {reply!r}"
        if first.startswith(b"+"):
            probe = next(_probes)
            c.send(b"DONE\r\n" + probe.encode() + b" NOOP\r\n")
        elif first.startswith(probe.encode() + b" "):
            assert first.startswith(probe.encode() + b" OK"), f"{line!r} → {seen!r}"
            return seen


@pytest.mark.parametrize("state", STATES)
def test_random_lines_get_protocol_replies_in_every_state(harness: IMAPHarness, state: str) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(_line(), min_size=1, max_size=4))
    def check(lines: list[bytes]) -> None:
        c = _open(harness, state)
        try:
            for line in lines:
                _exchange(c, line)
            assert c.alive
        finally:
            c.close()

    check()
