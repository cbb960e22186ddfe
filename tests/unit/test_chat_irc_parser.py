"""The IRC line parser: tags and their escaping, limits, the trailing parameter, and a
hypothesis round trip (serialize → parse gives the same line) plus arbitrary bytes never
raising anything but ParseError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gk.chat.irc.parser import (
    MAX_REST,
    MAX_TAGS,
    Line,
    LineTooLong,
    ParseError,
    escape_value,
    parse,
    serialize,
    unescape_value,
)


def test_plain_and_trailing():
    ln = parse(b"PRIVMSG #general :hello there")
    assert (ln.command, ln.params, ln.tags, ln.source) == ("PRIVMSG", ["#general", "hello there"], {}, "")
    ln = parse(b":nick!u@h privmsg bob :")
    assert ln.command == "PRIVMSG" and ln.params == ["bob", ""] and ln.source == "nick!u@h"
    assert parse(b"USER u 0 *  :Real  Name").params == ["u", "0", "*", "Real  Name"]


def test_tags_and_escapes():
    ln = parse(rb"@time=2024-01-01T00:00:00.000Z;+draft/reply=abc;flag;esc=a\:b\sc\\d\re\nf;odd=x\y\ PRIVMSG #a :b")
    assert ln.tags == {
        "time": "2024-01-01T00:00:00.000Z",
        "+draft/reply": "abc",
        "flag": "",
        "esc": "a;b c\\d\re\nf",
        "odd": "xy",
    }
    assert ln.client_tags == {"+draft/reply": "abc"}
    assert escape_value("a;b c\\d\r\n") == r"a\:b\sc\\d\r\n"
    assert unescape_value("trailing\\") == "trailing"


def test_limits():
    parse(b"PRIVMSG #a :" + b"x" * (MAX_REST - 2 - len(b"PRIVMSG #a :")))
    with pytest.raises(LineTooLong):
        parse(b"PRIVMSG #a :" + b"x" * MAX_REST)
    parse(b"@+a=" + b"y" * (MAX_TAGS - 6) + b" PING x")
    with pytest.raises(LineTooLong):
        parse(b"@+a=" + b"y" * MAX_TAGS + b" PING x")


@pytest.mark.parametrize("raw", [b"", b":", b":src", b"@a=1", b"@a=1 ", b"@bad key=1 PING", b"PRI\x00VMSG x", b"12 x"])
def test_malformed(raw):
    with pytest.raises(ParseError):
        parse(raw)


def test_serialize_trailing_rules():
    assert serialize(Line("PRIVMSG", ["#a", "word"])) == b"PRIVMSG #a :word\r\n"
    assert serialize(Line("NICK", ["alice"])) == b"NICK alice\r\n"
    assert serialize(Line("JOIN", ["#a"])) == b"JOIN #a\r\n"
    assert serialize(Line("BATCH", ["+r", "chathistory", "#a"])) == b"BATCH +r chathistory #a\r\n"
    assert serialize(Line("TAGMSG", ["#a"], {"+typing": "active", "msgid": "x y"})) == (
        b"@+typing=active;msgid=x\\sy TAGMSG #a\r\n"
    )


@settings(max_examples=300, deadline=None)
@given(
    source=st.text(max_size=20),
    params=st.lists(st.text(st.characters(max_codepoint=0x2FFF), max_size=30), max_size=4),
    tags=st.dictionaries(st.from_regex(r"\A[a-z]{1,8}\Z"), st.text(max_size=20), max_size=3),
)
def test_serialize_always_makes_one_line(source, params, tags):
    """Text from anywhere (a topic set on the web, a display name) can never end the line early
    and forge another: CR, LF and NUL inside a parameter go out as a space."""
    raw = serialize(Line("TOPIC", ["#a", *params], tags, source=source))
    assert raw.endswith(b"\r\n") and not any(c in raw[:-2] for c in b"\r\n\0"), raw
    assert (
        serialize(Line("TOPIC", ["#a", "hi\r\n:x PRIVMSG #a :forged\0!"]))
        == b"TOPIC #a :hi :x PRIVMSG #a :forged !\r\n"
    )


_word = st.text(
    st.characters(min_codepoint=33, max_codepoint=0x2FFF, blacklist_characters=":"), min_size=1, max_size=12
)
_key = st.from_regex(r"\A\+?([a-z0-9.-]{1,10}/)?[a-zA-Z0-9-]{1,10}\Z")
_value = st.text(st.characters(max_codepoint=0x2FFF, blacklist_characters="\0"), max_size=20)
_trailing = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    command=st.sampled_from(["PRIVMSG", "NOTICE", "TOPIC", "PART", "PING"]),
    middle=st.lists(_word, max_size=4),
    trailing=_trailing,
    tags=st.dictionaries(_key, _value, max_size=5),
)
def test_roundtrip(command, middle, trailing, tags):
    line = Line(command, [*middle, trailing], tags)
    raw = serialize(line)
    assert raw.endswith(b"\r\n")
    back = parse(raw[:-2])
    assert back.command == command and back.params == [*middle, trailing] and back.tags == tags


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=700))
def test_arbitrary_bytes_never_crash(raw):
    try:
        ln = parse(raw)
    except ParseError:
        return
    assert ln.command and len(ln.params) <= 15
