"""Answers a scripted IMAP conformance run compares exactly: ENVELOPE groups and source routes,
BODY of a multipart whose boundary parameter is folded, sections inside a message/rfc822 inside
a message/rfc822, FETCH MODSEQ as the command that turns CONDSTORE on (RFC 7162 3.1), and LSUB
"%" returning an unsubscribed parent as \\Noselect (RFC 3501 6.3.9)."""

from __future__ import annotations

import re

from support.imap import Raw, client, module_server
from support.messages import FOLDED, NESTED_TWICE

imap_server = module_server()

_n = [0]


def _folder(srv, *messages: bytes) -> str:  # type: ignore[no-untyped-def]
    _n[0] += 1
    name = f"conf{_n[0]}"
    c = client(srv)
    c.create_folder(name)
    for m in messages:
        c.append(name, m)
    c.logout()
    return name


def _untagged(lines: list[bytes]) -> list[bytes]:
    return [x for x in lines if x.startswith(b"* ")]


GROUPS = (
    b"Date: Tue, 3 Nov 2026 11:12:13 +0100\r\n"
    b"From: <@hop.example:pat@origin.example>\r\n"
    b"To: team: ann@one.example, bo@two.example;, solo@three.example\r\n"
    b"\r\n"
    b"text\r\n"
)


def test_envelope_keeps_groups_and_source_routes(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server, _folder(imap_server, GROUPS))
    lines = r.cmd("FETCH 1 ENVELOPE")
    route = b'((NIL "@hop.example" "pat" "origin.example"))'
    assert _untagged(lines) == [
        b'* 1 FETCH (ENVELOPE ("Tue, 3 Nov 2026 11:12:13 +0100" NIL '
        + route
        + b" "
        + route
        + b" "
        + route
        + b' ((NIL NIL "team" NIL) (NIL NIL "ann" "one.example") (NIL NIL "bo" "two.example") (NIL NIL NIL NIL)'
        b' (NIL NIL "solo" "three.example")) NIL NIL NIL NIL))\r\n'
    ]
    r.close()


def test_body_of_multipart_with_folded_boundary(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server, _folder(imap_server, FOLDED))
    assert _untagged(r.cmd("FETCH 1 BODY")) == [
        b'* 1 FETCH (BODY (("TEXT" "X-THING" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1) "MIXED"))\r\n'
    ]
    assert r.cmd("FETCH 1 BODY.PEEK[1]")[:-1] == [b"* 1 FETCH (BODY[1] {10}\r\n", b"hi there\r\n", b")\r\n"]
    r.close()


def test_sections_through_two_encapsulated_messages(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server, _folder(imap_server, NESTED_TWICE))
    assert r.cmd("FETCH 1 BODY.PEEK[1.1.HEADER]")[:-1] == [
        b"* 1 FETCH (BODY[1.1.HEADER] {43}\r\n",
        b"From: inner@x.example\r\n",
        b"Subject: deepest\r\n",
        b"\r\n",
        b")\r\n",
    ]
    assert r.cmd("FETCH 1 BODY.PEEK[1.1.1]")[:-1] == [
        b"* 1 FETCH (BODY[1.1.1] {16}\r\n",
        b"innermost text\r\n",
        b")\r\n",
    ]
    r.close()


def test_fetch_modseq_enables_condstore_and_reports_highestmodseq(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server, _folder(imap_server, GROUPS, GROUPS))
    top = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(r.selected)).group(1))  # type: ignore[union-attr]
    lines = _untagged(r.cmd("FETCH 1 MODSEQ"))
    assert lines[0] == b"* OK [HIGHESTMODSEQ %d] highest\r\n" % top
    assert re.fullmatch(rb"\* 1 FETCH \(MODSEQ \(\d+\)\)\r\n", lines[1])
    assert len(lines) == 2
    # from now on flag changes carry their MODSEQ, and the OK is not repeated
    lines = _untagged(r.cmd("STORE 2 +FLAGS (\\Flagged)"))
    assert len(lines) == 1 and re.fullmatch(
        rb"\* 2 FETCH \(FLAGS \(\\Flagged \\Recent\) MODSEQ \(\d+\)\)\r\n", lines[0]
    )
    r.close()


def test_lsub_percent_shows_unsubscribed_parent_as_noselect(imap_server):  # type: ignore[no-untyped-def]
    r = Raw(imap_server)
    r.cmd("CREATE lsubtop/mid/leaf")
    r.cmd("CREATE lsubtop/other")
    r.cmd("SUBSCRIBE lsubtop/mid/leaf")  # CREATE subscribes nothing (nor the parents it makes)
    assert _untagged(r.cmd('LSUB "" lsubtop/%')) == [b'* LSUB (\\Noselect) "/" "lsubtop/mid"\r\n']
    assert _untagged(r.cmd('LSUB "" lsubto%')) == [b'* LSUB (\\Noselect) "/" "lsubtop"\r\n']
    # with "*" the subscribed folder itself matches: no \Noselect parents
    assert _untagged(r.cmd('LSUB "" lsubtop*')) == [b'* LSUB (\\HasNoChildren) "/" "lsubtop/mid/leaf"\r\n']
    r.close()


def test_search_past_the_last_message_matches_nothing_but_fetch_is_bad(imap_server):  # type: ignore[no-untyped-def]
    """SEARCH with a sequence number past the mailbox's size answers OK and matches nothing
    (as Dovecot and Cyrus do); FETCH of such a number stays BAD (RFC 9051 §9)."""
    r = Raw(imap_server, _folder(imap_server, GROUPS, GROUPS))
    out = r.cmd("SEARCH 1000")
    assert _untagged(out) == [b"* SEARCH\r\n"] and out[-1].split()[1] == b"OK"
    out = r.cmd("SEARCH 2:1000")
    assert _untagged(out) == [b"* SEARCH 2\r\n"]
    out = r.cmd("SEARCH RETURN (COUNT) 7,1000")
    assert _untagged(out) == [b'* ESEARCH (TAG "%s") COUNT 0\r\n' % r.tag.encode()]
    out = r.cmd("FETCH 1000 FLAGS", ok=False)
    assert out[-1].split()[1] == b"BAD"
    r.close()
