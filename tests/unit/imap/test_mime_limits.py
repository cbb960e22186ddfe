"""The MIME scanner's limits (issue 9 §1.2, MIME part bomb): a message made of 100,000 empty
parts, of parts nested hundreds deep, or of parts with huge header blocks gives a tree of at most
``MAX_PARTS`` parts, ``MAX_DEPTH`` levels and ``MAX_TREE_HEADERS`` header bytes; the rest is one
opaque application/octet-stream part per open container, every byte still reachable, and the
BODYSTRUCTURE stays something a real client (imapclient's parser) reads."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import gevent
from imapclient.response_parser import parse_fetch_response

from gk.mail.imap.fetch import FetchAtt, section_range
from gk.mail.imap.response import pack
from gk.mail.mailbox import MailboxStore, store
from gk.mail.mailbox.mime import (
    MAX_DEPTH,
    MAX_PARTS,
    MAX_TREE_HEADERS,
    Part,
    body_structure,
    iter_parts,
    parse_structure,
)

HEAD = b"From: a@example.net\r\nTo: alice@example.org\r\nSubject: bomb\r\nMIME-Version: 1.0\r\n"


def part_bomb(n: int, boundary: bytes = b"b") -> bytes:
    """``n`` empty parts in one multipart/mixed (10 bytes a part: 100,000 parts in 1 MB)."""
    return (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n"
        + (b"--" + boundary + b"\r\n\r\n") * n
        + b"--" + boundary + b"--\r\n"
    )  # fmt: skip


def _client_parses(top: Part) -> Any:
    """The BODYSTRUCTURE as imapclient (a real client) parses it off the wire."""
    wire = pack(body_structure(top, True))
    return parse_fetch_response([b"1 (UID 1 BODYSTRUCTURE " + wire + b")"])[1][b"BODYSTRUCTURE"]


def test_part_bomb_keeps_the_first_parts_and_one_opaque_rest() -> None:
    raw = part_bomb(100_000)
    top = parse_structure(io.BytesIO(raw))
    assert len(top.children) == MAX_PARTS  # the top + MAX_PARTS - 1 parsed parts + the rest
    parsed, rest = top.children[:-1], top.children[-1]
    assert all(p.maintype == "text" and p.size == 0 for p in parsed)
    assert (rest.maintype, rest.subtype) == ("application", "octet-stream")
    # the rest runs from after the last parsed part's delimiter to the close delimiter, exactly
    assert raw[rest.body_start : rest.end].count(b"--b\r\n") == 100_000 - len(parsed) - 1
    assert raw[rest.end :] == b"\r\n--b--\r\n"
    assert raw[rest.header_start - len(b"--b\r\n") : rest.header_start] == b"--b\r\n"
    # its section is served raw (BODY[2000]), and BODY[TEXT] still covers the whole body
    start, end = section_range(top, FetchAtt("SECTION", path=[MAX_PARTS]), len(raw))  # type: ignore[misc]
    assert (start, end) == (rest.body_start, rest.end)
    start, end = section_range(top, FetchAtt("SECTION", spec="TEXT"), len(raw))  # type: ignore[misc]
    assert (start, end) == (top.body_start, len(raw))
    # small enough to store and load on every FETCH
    stored = json.dumps(top.to_json())
    assert len(stored) < 400_000
    assert len(list(iter_parts(Part.from_json(json.loads(stored))))) == MAX_PARTS + 1
    body = _client_parses(top)
    assert body.is_multipart and len(body[0]) == MAX_PARTS and body[1] == b"MIXED"
    assert body[0][-1][:2] == (b"APPLICATION", b"OCTET-STREAM")


def test_a_message_under_the_cap_is_untouched() -> None:
    top = parse_structure(io.BytesIO(part_bomb(MAX_PARTS - 1)))
    assert len(top.children) == MAX_PARTS - 1 and all(p.maintype == "text" for p in top.children)


def test_budget_spent_inside_a_nested_multipart_closes_each_open_container() -> None:
    inner = part_bomb(MAX_PARTS + 50, b"inner").split(b"\r\n\r\n", 1)[1]  # the inner body
    raw = (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        + b"--outer\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
        + b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n" + inner
        + b"--outer\r\n\r\nafter the bomb\r\n"
        + b"--outer\r\nContent-Type: image/png\r\n\r\nPNG\r\n"
        + b"--outer--\r\n"
    )  # fmt: skip
    top = parse_structure(io.BytesIO(raw))
    assert sum(1 for _ in iter_parts(top)) <= MAX_PARTS + MAX_DEPTH
    first, alt, rest = top.children
    assert first.subtype == "plain" and raw[first.body_start : first.end] == b"first"
    assert alt.children[-1].subtype == "octet-stream" and raw[alt.children[-1].end :].startswith(b"\r\n--inner--")
    # the outer multipart's remaining parts are one opaque part, up to its close delimiter
    assert rest.subtype == "octet-stream"
    assert raw[rest.body_start : rest.end] == b"\r\nafter the bomb\r\n--outer\r\nContent-Type: image/png\r\n\r\nPNG"
    assert raw[rest.end :] == b"\r\n--outer--\r\n"
    _client_parses(top)


def test_deep_nesting_stops_at_max_depth_as_an_opaque_leaf() -> None:
    depth = 500  # beyond Python's patience with recursion if it were followed
    raw = HEAD
    for i in range(depth):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    raw += b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    for i in reversed(range(depth)):
        raw += b"--b%d--\r\n" % i
    top = parse_structure(io.BytesIO(raw))
    levels, p = 0, top
    while p.children:
        p, levels = p.children[0], levels + 1
    assert levels == MAX_DEPTH
    assert (p.maintype, p.subtype) == ("application", "octet-stream")
    assert raw[p.body_start : p.end].startswith(b"--b%d\r\n" % MAX_DEPTH)
    _client_parses(top)


def test_deep_message_rfc822_becomes_an_opaque_leaf_not_a_broken_message() -> None:
    raw = HEAD
    for _ in range(MAX_DEPTH + 5):
        raw += b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n"
    raw += b"\r\ninnermost\r\n"
    top = parse_structure(io.BytesIO(raw))
    p, levels = top, 0
    while p.message is not None:
        p, levels = p.message, levels + 1
    assert levels <= MAX_DEPTH
    assert (p.maintype, p.subtype) == ("application", "octet-stream")  # a message/rfc822 needs an ENVELOPE
    _client_parses(top)


def test_header_bytes_are_budgeted_too() -> None:
    fat = b'Content-Type: text/plain; name="' + b"\xe9" * 20_000 + b'"\r\n'  # JSON: 6 bytes per \xe9
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + (b"--b\r\n" + fat + b"\r\nx\r\n") * 500
    raw += b"--b--\r\n"
    top = parse_structure(io.BytesIO(raw))
    assert len(top.children) < 100 and top.children[-1].subtype == "octet-stream"
    assert len(json.dumps(top.to_json())) < 8 * MAX_TREE_HEADERS


def test_the_store_parses_off_the_hub_even_small_messages(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Indexing never parses on the hub's thread: a 700 KB part bomb (under the old 1 MB
    threadpool threshold) held every connection of the process for seconds."""
    real = store.parse_with_headers
    threads: list[int] = []

    def recording(f, **kw):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        return real(f, **kw)

    monkeypatch.setattr(store, "parse_with_headers", recording)
    mb = MailboxStore(tmp_path / "mail").user("alice@example.org")
    hub_thread = threading.get_ident()
    mb.append("INBOX", b"Subject: small\r\n\r\nhi\r\n")
    mb.append("INBOX", part_bomb(100_000))
    assert len(threads) == 2 and hub_thread not in threads
    assert gevent.get_hub().thread_ident == hub_thread
    top = mb.structure("INBOX", 2)
    assert len(top.children) == MAX_PARTS and top.children[-1].subtype == "octet-stream"
    assert mb.info("INBOX", 2).subject == "bomb"


def test_a_tree_indexed_before_the_cap_is_reparsed_once(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A part bomb indexed by a GK without the cap (a 13 MB tree) is re-parsed, capped, and stored
    again the first time it is read, off the hub."""
    from gk.mail.mailbox import mime

    mb = MailboxStore(tmp_path / "mail").user("alice@example.org")
    with monkeypatch.context() as m:
        m.setattr(mime, "MAX_PARTS", 10**9)  # the old parser
        mb.append("INBOX", part_bomb(100_000))
    stored = mb.db.one("SELECT length(structure) FROM messages")[0]  # type: ignore[index]
    assert stored > 10_000_000
    top = mb.structure("INBOX", 1)
    assert len(top.children) == MAX_PARTS and top.children[-1].subtype == "octet-stream"
    assert top.envelope is not None and top.envelope[1] == "bomb"
    assert mb.db.one("SELECT length(structure) FROM messages")[0] < 400_000  # type: ignore[index]
    assert len(mb.structure("INBOX", 1).children) == MAX_PARTS
