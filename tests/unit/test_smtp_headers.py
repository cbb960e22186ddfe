"""The inbound checks' header reading: the fast split of plain header sections and of simple
From addresses gives what the email package gives, and leaves every other input to it."""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import email.utils

from hypothesis import given, settings
from hypothesis import strategies as st

from gk.mail.authcheck.headers import HeaderFields, _from_addresses, _split_simple, from_domains, parse_headers


def by_email(block: bytes) -> list[tuple[str, str]]:
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(block)
    return [(k, str(v)) for k, v in msg.items()]


def test_a_plain_section_is_split_like_the_email_package() -> None:
    block = (
        b"From: Load <load@sender.example>\r\nTo: <bench@bench.example>\r\nSubject: a\r\n folded\r\n\tline\r\n"
        b"DKIM-Signature: v=1; a=rsa-sha256; d=x.example;\r\n s=sel; b=abc\r\nX-Empty:\r\nX-Blank:   \r\n\r\n"
    )
    fields = _split_simple(block)
    assert isinstance(fields, HeaderFields)
    assert fields.fields == by_email(block)
    assert fields.get_all("dkim-signature") == ["v=1; a=rsa-sha256; d=x.example;\r\n s=sel; b=abc"]
    assert fields.get_all("Cc") is None


def test_other_sections_go_to_the_email_package() -> None:
    for block in (
        b"From sender@x Mon Jan 1\r\nSubject: mbox line\r\n\r\n",  # a Unix From line
        b"Subject: caf\xc3\xa9\r\n\r\n",  # 8-bit
        b" leading: continuation\r\n\r\n",
        b"no colon here\r\nSubject: x\r\n\r\n",
        b"Subject: cut at the size limit",
    ):
        assert _split_simple(block) is None
        parsed = parse_headers(block)
        assert isinstance(parsed, email.message.Message)
        assert [(k, str(v)) for k, v in parsed.items()] == by_email(block)
    assert from_domains(parse_headers(b"From: a@caf\xc3\xa9.example\r\n\r\n")) == from_domains(
        email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(b"From: a@caf\xc3\xa9.example\r\n\r\n")
    )


_NAME = st.text(st.sampled_from("abcFromTo-Subject:DKIM x"), min_size=0, max_size=12)
_VALUE = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=30)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_NAME, _VALUE, st.sampled_from(["\r\n", "\n", "\r\n ", "\r\n\t"])), max_size=6))
def test_any_ascii_section_split_here_is_split_the_same(parts: list[tuple[str, str, str]]) -> None:
    block = "".join(f"{name}:{value}{eol}" for name, value, eol in parts).encode() + b"\r\n"
    fields = _split_simple(block)
    if fields is not None:
        assert fields.fields == by_email(block)


def test_simple_from_forms_give_the_address_of_getaddresses() -> None:
    values = [
        "Load <load@sender.example>",
        '"Doe, John" <j.doe@Example.ORG>',
        "  bare@x.example  ",
        "<only@brackets.example>",
        "Dotted N. Name <n+tag@sub.x.example>",
    ]
    for value in values:
        assert _from_addresses([value]) == [addr for _, addr in email.utils.getaddresses([value])]
    # comments, groups, two addresses, quoted local parts: email.utils decides
    for value in ["a@x.example (comment)", "grp: a@x.example;", "a@x.example, b@y.example", '"q p"@x.example']:
        assert _from_addresses([value]) == [addr for _, addr in email.utils.getaddresses([value])]


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from('ab@.<>" ,()\\:;\t\r\n-+x'), max_size=24))
def test_any_from_value_gives_the_addresses_of_getaddresses(value: str) -> None:
    assert _from_addresses([value]) == [addr for _, addr in email.utils.getaddresses([value])]
