"""SEARCH: flags, sizes, dates, headers, BODY/TEXT through the FTS index, AND/OR/NOT, sequence
and UID sets, CHARSET UTF-8, MODSEQ."""

from __future__ import annotations

import datetime as dt
import imaplib

import pytest
from support.imap import NESTED, client, fresh_folder, imaps, module_server, simple_message

imap_server = module_server()


@pytest.fixture(scope="module")
def folder(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    name = fresh_folder(c, "search")
    c.append(
        name,
        simple_message("alpha report", "the quick brown fox\r\n"),
        flags=[b"\\Seen"],
        msg_time=dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC),
    )
    c.append(
        name,
        simple_message("beta notes", "lazy dogs sleep\r\n", sender="dan@example.com"),
        flags=[b"\\Flagged"],
        msg_time=dt.datetime(2026, 2, 10, 12, 0, tzinfo=dt.UTC),
    )
    c.append(name, NESTED, msg_time=dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC))
    c.append(
        name,
        simple_message("gamma", "x" * 5000 + "\r\n"),
        flags=[b"\\Deleted", b"$Important"],
        msg_time=dt.datetime(2026, 3, 11, 12, 0, tzinfo=dt.UTC),
    )
    c.logout()
    return name


def _search(srv, folder: str, *criteria: str, uid: bool = False, charset: str | None = None) -> list[int]:  # type: ignore[no-untyped-def]
    m = imaps(srv)
    m.select(folder)
    if uid:
        typ, data = m.uid("SEARCH", *criteria)
    else:
        typ, data = m.search(charset, *criteria)
    m.logout()
    assert typ == "OK"
    return [int(x) for x in data[0].split() if x.isdigit()]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (("ALL",), [1, 2, 3, 4]),
        (("SEEN",), [1]),
        (("UNSEEN",), [2, 3, 4]),
        (("FLAGGED",), [2]),
        (("DELETED",), [4]),
        (("UNDELETED", "UNSEEN"), [2, 3]),
        (("KEYWORD", "$Important"), [4]),
        (("UNKEYWORD", "$Important"), [1, 2, 3]),
        (("LARGER", "4000"), [4]),
        (("SMALLER", "400"), [1, 2]),
        (("SUBJECT", "REPORT"), [1]),
        (("FROM", "dan@example"), [2]),
        (("FROM", "Jörg"), [3]),
        (("TO", "bob@example.org"), [3]),
        (("BODY", "brown fox"), [1]),
        (("BODY", "zebrafish"), [3]),
        (("TEXT", "Grüße"), [3]),
        (("TEXT", "HTML"), [3]),
        (("BODY", "xx"), [4]),
        (("HEADER", "Message-ID", "beta.notes"), [2]),
        (("HEADER", "X-Nothing", "beta"), []),
        (("OR", "SEEN", "FLAGGED"), [1, 2]),
        (("NOT", "OR", "SEEN", "FLAGGED"), [3, 4]),
        (("(SEEN)",), [1]),
        (("(OR SEEN FLAGGED) NOT 2",), [1]),
        (("BEFORE", "10-Feb-2026"), [1]),
        (("ON", "10-Feb-2026"), [2]),
        (("SINCE", "10-Mar-2026"), [3, 4]),
        (("SENTON", "3-Nov-2026"), [3]),
        (("SENTBEFORE", "3-Nov-2026"), [1, 2, 4]),
        (("2:3",), [2, 3]),
        (("2:*", "NOT", "3"), [2, 4]),
        (("UID", "1,4"), [1, 4]),
        (("NEW",), []),
    ],
)
def test_search_keys(imap_server, folder, criteria, expected):  # type: ignore[no-untyped-def]
    crit = tuple(f'"{c}"' if (" " in c or not c.isascii()) and not c.startswith("(") else c for c in criteria)
    charset = "UTF-8" if any(not c.isascii() for c in criteria) else None
    if charset:
        m = imaps(imap_server)
        m.select(folder)
        m.literal = None
        typ, data = m._simple_command(
            "SEARCH", "CHARSET", "UTF-8", *[c.encode() if isinstance(c, str) else c for c in crit]
        )
        typ, data = m._untagged_response(typ, data, "SEARCH")
        m.logout()
        assert [int(x) for x in data[0].split()] == expected
        return
    assert _search(imap_server, folder, *crit) == expected


def test_uid_search_returns_uids_and_modseq(imap_server, folder):  # type: ignore[no-untyped-def]
    assert _search(imap_server, folder, "FLAGGED", uid=True) == [2]
    c = client(imap_server)
    c.select_folder(folder)
    assert c.search(["MODSEQ", "1"]) == [1, 2, 3, 4]
    c.logout()


def test_bad_search_is_bad_and_session_goes_on(imap_server, folder):  # type: ignore[no-untyped-def]
    m = imaps(imap_server)
    m.select(folder)
    with pytest.raises(imaplib.IMAP4.error, match="unknown search key"):
        m.search(None, "FROBNICATE")
    with pytest.raises(imaplib.IMAP4.error, match="date"):
        m.search(None, "SINCE", "31-Foo-2026")
    typ, data = m.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]
    assert m.search(None, "ALL")[0] == "OK"
    m.logout()


def test_text_search_over_many_messages_uses_the_index(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    name = fresh_folder(c, "many")
    for i in range(120):
        word = "needleword" if i == 117 else "hay"
        c.append(name, simple_message(f"msg {i}", f"line {i} {word} stack\r\n"))
    c.select_folder(name)
    assert c.search(["TEXT", "needleword"]) == [118]
    assert c.search(["BODY", "line 42 "]) == [43]
    assert len(c.search(["SUBJECT", "msg"])) == 120
    c.logout()


def _addressed(headers: str) -> bytes:
    return f"{headers}\r\nSubject: addresses\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n".encode()


def test_address_search_matches_parsed_addresses_too(imap_server):  # type: ignore[no-untyped-def]
    """FROM/TO/CC/BCC match the header text and its parsed addresses: RFC 5322 comments and
    spaces inside an address do not hide it (imaptest's search-addresses, as Dovecot does)."""
    c = client(imap_server)
    name = fresh_folder(c, "addr")
    for headers in (
        "From: user-from@domain.org\r\nTo: user-to@domain.org",
        "From: RealFrom <user-from@domain.org>\r\nTo: RealTo <user-to@domain.org>",
        "From: <user-from (comment)@ (comment) domain.org>\r\nTo: <user-to (c) @ domain . org>",
        "From: user-from@domain.org (RealFrom)\r\nCc: user-cc@domain.org",
        "From: Real (middle) Name <other@domain.org>\r\nBcc: user-bcc (hidden) @domain.org",
    ):
        c.append(name, _addressed(headers))
    c.logout()
    assert _search(imap_server, name, "FROM", "user-from@domain.org") == [1, 2, 3, 4]
    assert _search(imap_server, name, "FROM", "USER-FROM@DOMAIN.ORG") == [1, 2, 3, 4]
    assert _search(imap_server, name, "TO", "user-to@domain.org") == [1, 2, 3]
    assert _search(imap_server, name, "BCC", "user-bcc@domain.org") == [5]
    assert _search(imap_server, name, "FROM", "ser-fro") == [1, 2, 3, 4]  # substrings as before
    assert _search(imap_server, name, "FROM", "realfrom") == [2, 4]
    assert _search(imap_server, name, "FROM", "comment") == [3]  # the header text still counts
    assert _search(imap_server, name, "FROM", '"Real Name"') == [5]
    assert _search(imap_server, name, "FROM", "nobody@domain.org") == []
