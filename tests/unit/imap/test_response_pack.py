"""``response.pack``'s fast paths (exact str/list types, the quoting check by regex) give the same
bytes as the general rules they replace, for every kind of value an ENVELOPE or BODYSTRUCTURE
holds: the property test runs a plain reference of those rules against it."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gk.mail.imap.response import Atom, pack, string
from gk.mail.mailbox import Multipart


def _ref_string(value: str | bytes) -> bytes:
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) > 1000 or any(c in (0, 10, 13) or c > 126 for c in data):
        return b"{%d}\r\n" % len(data) + data
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _ref_pack(value: Any) -> bytes:
    if value is None:
        return b"NIL"
    if isinstance(value, Atom):
        return value.encode("ascii", "replace")
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, (str, bytes)):
        return _ref_string(value)
    if isinstance(value, Multipart):
        kids = b"".join(_ref_pack(c) for c in value[: value.nchildren])
        return b"(" + kids + b" " + b" ".join(_ref_pack(v) for v in value[value.nchildren :]) + b")"
    return b"(" + b" ".join(_ref_pack(v) for v in value) + b")"


_text = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=40),
    st.text(max_size=20),  # non-ASCII: a literal
    st.sampled_from(['a "quoted" word', "back\\slash", "x" * 1001, "line\r\nbreak", "nul\x00", "del\x7f"]),
    st.binary(max_size=30),
)
_leaf = st.one_of(st.none(), _text, st.integers(min_value=0, max_value=2**40), st.booleans(), st.just(Atom("\\Seen")))
_value = st.recursive(
    _leaf,
    lambda kids: st.one_of(
        st.lists(kids, max_size=5),
        st.tuples(kids, kids),
        st.lists(kids, min_size=2, max_size=4).map(lambda xs: Multipart(xs, len(xs) - 1)),
    ),
    max_leaves=30,
)


@given(_value)
def test_pack_matches_the_reference_rules(value: Any) -> None:
    assert pack(value) == _ref_pack(value)


def test_string_quotes_or_makes_a_literal() -> None:
    assert string("plain subject") == b'"plain subject"'
    assert string('say "hi" \\o/') == b'"say \\"hi\\" \\\\o/"'
    assert string("caf\u00e9") == b"{5}\r\ncaf\xc3\xa9"
    assert string("a\x7fb") == b"{3}\r\na\x7fb"  # DEL is not quotable either
    assert string("x" * 1001).startswith(b"{1001}\r\n")
    assert string(None) == b"NIL"
