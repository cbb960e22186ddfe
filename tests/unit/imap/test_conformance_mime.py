"""MIME details that IMAP conformance suites check: ENVELOPE address lists (groups, source
routes, comments), folded Content-Type parameters, body line counts and section numbers inside
nested message/rfc822 parts."""

from __future__ import annotations

import io

from support.messages import FOLDED, NESTED_TWICE

from gk.mail.imap.fetch import FetchAtt, section_range
from gk.mail.mailbox.mime import body_structure, parse_address_list, parse_structure


def test_group_becomes_start_members_and_end_markers() -> None:
    got = parse_address_list("team: ann@one.example, bo@two.example;, crew: cy@three.example;")
    assert got == [
        [None, None, "team", None],
        [None, None, "ann", "one.example"],
        [None, None, "bo", "two.example"],
        [None, None, None, None],
        [None, None, "crew", None],
        [None, None, "cy", "three.example"],
        [None, None, None, None],
    ]


def test_empty_group_keeps_its_markers() -> None:
    assert parse_address_list("undisclosed-recipients:;") == [
        [None, None, "undisclosed-recipients", None],
        [None, None, None, None],
    ]


def test_source_route_is_the_adl() -> None:
    assert parse_address_list("<@relay.example:kim@dest.example>") == [[None, "@relay.example", "kim", "dest.example"]]


def test_comments_inside_the_address_are_dropped_and_a_trailing_one_names() -> None:
    assert parse_address_list("<kim (a) @ (b) dest.example>") == [[None, None, "kim", "dest.example"]]
    assert parse_address_list("kim@dest.example (Kim K)") == [["Kim K", None, "kim", "dest.example"]]


def test_quoted_display_name_with_comma_is_one_mailbox() -> None:
    assert parse_address_list('"Lee, Pat" <pat@x.example>, jo@y.example') == [
        ["Lee, Pat", None, "pat", "x.example"],
        [None, None, "jo", "y.example"],
    ]


def test_folded_boundary_parameter_is_unfolded() -> None:
    top = parse_structure(io.BytesIO(FOLDED))
    assert top.is_multipart
    assert top.param("boundary") == "two words"
    # "hi there\r\n" (the CRLF before the boundary belongs to it): 10 bytes, 1 line
    assert body_structure(top, extensible=False) == [
        ["TEXT", "X-THING", ["CHARSET", "us-ascii"], None, None, "7BIT", 10, 1],
        "MIXED",
    ]


def _section(raw: bytes, path: list[int], spec: str = "") -> bytes:
    top = parse_structure(io.BytesIO(raw))
    rng = section_range(top, FetchAtt("BODY", path=path, spec=spec), len(raw))
    assert rng is not None
    return raw[rng[0] : rng[1]]


def test_message_inside_message_numbers_through_both() -> None:
    inner = b"From: inner@x.example\r\nSubject: deepest\r\n\r\ninnermost text\r\n"
    middle = b"From: middle@x.example\r\nContent-Type: message/rfc822\r\n\r\n" + inner
    assert _section(NESTED_TWICE, [1]) == middle
    assert _section(NESTED_TWICE, [1], "HEADER") == b"From: middle@x.example\r\nContent-Type: message/rfc822\r\n\r\n"
    assert _section(NESTED_TWICE, [1, 1]) == inner
    assert _section(NESTED_TWICE, [1, 1], "HEADER") == b"From: inner@x.example\r\nSubject: deepest\r\n\r\n"
    assert _section(NESTED_TWICE, [1, 1], "TEXT") == b"innermost text\r\n"
    assert _section(NESTED_TWICE, [1, 1, 1]) == b"innermost text\r\n"


DIGEST_IN_MESSAGE = (
    b"From: outer@x.example\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: list@x.example\r\n"
    b'Content-Type: multipart/digest; boundary="d"\r\n'
    b"\r\n"
    b"--d\r\n"
    b"\r\n"
    b"From: first@x.example\r\n"
    b"\r\n"
    b"first body\r\n"
    b"--d\r\n"
    b"X-Part: second\r\n"
    b"\r\n"
    b"From: second@x.example\r\n"
    b"\r\n"
    b"second body\r\n"
    b"--d--\r\n"
)


def test_digest_parts_inside_an_encapsulated_message() -> None:
    assert _section(DIGEST_IN_MESSAGE, [1, 1]) == b"From: first@x.example\r\n\r\nfirst body"
    assert _section(DIGEST_IN_MESSAGE, [1, 1], "MIME") == b"\r\n"
    assert _section(DIGEST_IN_MESSAGE, [1, 1], "HEADER") == b"From: first@x.example\r\n\r\n"
    assert _section(DIGEST_IN_MESSAGE, [1, 2], "MIME") == b"X-Part: second\r\n\r\n"
    assert _section(DIGEST_IN_MESSAGE, [1, 2], "TEXT") == b"second body"
    top = parse_structure(io.BytesIO(DIGEST_IN_MESSAGE))
    assert section_range(top, FetchAtt("BODY", path=[1, 3], spec=""), len(DIGEST_IN_MESSAGE)) is None
