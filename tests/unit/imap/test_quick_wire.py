"""``quickwire.quick_wire`` (the BODYSTRUCTURE of a never-parsed message straight from its bytes)
gives, for every message it accepts, the bytes of the reference path — ``bodywire.wire`` of
``mime.parse_structure`` — and gives up (None) on the others: the bench's messages (all of them
accepted), the corpora of the MIME tests, the seeded mutants, and generated MIME messages with
the shapes a scanner of bytes gets wrong (nesting, one boundary inside another, preambles,
epilogues, lines like boundaries, blanks after boundaries, missing close delimiters, LF-only
lines, duplicate fields, field names in any case, quoting)."""

from __future__ import annotations

import io
import random
import sys
from email import policy
from pathlib import Path
from typing import Any, Protocol

import pytest
import test_mime_fast as mime_fast
import test_mutated_messages as mutated
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_bodystructure_wire import ODD, _mixed  # its corpus and odd values
from test_mime_structure import trees

from gk.mail.mailbox import bodywire, mime, quickwire
from gk.mail.mailbox import store as store_mod
from gk.mail.mailbox.quickwire import quick_wire

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import bench.imap as bench_imap


def _reference(data: bytes) -> bytes | None:
    try:
        return bodywire.wire(mime.parse_structure(io.BytesIO(data), envelope=False))
    except Exception:  # the store makes such a message one opaque part: quick_wire must give up
        return None


def _check(data: bytes) -> bool:
    """quick_wire gives up or gives the reference's bytes; True if it did not give up."""
    quick = quick_wire(data)
    if quick is None:
        return False
    assert quick == _reference(data), data
    return True


# -- the bench's messages: all of them taken, all the same -----------------------------------
def test_every_message_of_the_bench_is_read_and_the_same() -> None:
    rnd = random.Random(42)
    for i in range(1, 601):
        data = bench_imap.make_message(rnd, i)
        assert quick_wire(data) == _reference(data), (i, data[:2000])


def test_lf_only_bench_messages_are_read_and_the_same() -> None:
    rnd = random.Random(7)
    for i in range(1, 101):
        data = bench_imap.make_message(rnd, i).replace(b"\r\n", b"\n")
        assert quick_wire(data) == _reference(data), (i, data[:2000])


# -- the corpora of the other MIME tests -----------------------------------------------------
def test_the_mime_fast_corpus() -> None:
    taken = sum(_check(mime_fast._fields(value)) for value in mime_fast.VALUES)
    assert taken >= len(mime_fast.VALUES) // 4
    assert not _check(mime_fast.FORWARD)  # a message/rfc822 part: its ENVELOPE is the parse's


def test_the_seeded_mutants() -> None:
    mutants = mutated._mutants(20261201, 1500)
    taken = sum(_check(data) for data in mutants)
    assert taken >= 300  # most bytes inserted leave a message quick_wire reads


def test_the_bodystructure_wire_corpus() -> None:
    for i in range(20):
        assert _check(_mixed(i))


@settings(max_examples=200, deadline=None)
@given(trees(), st.booleans(), st.one_of(st.none(), ODD), st.booleans())
def test_email_package_messages(msg: Any, smtp: bool, odd: str | None, long: bool) -> None:
    msg["Subject"] = "generated"
    if odd is not None:
        msg["Content-Description"] = odd * (200 if long else 1)  # > 1,000 bytes: a literal
        msg.set_param("x-odd", odd)
    raw = msg.as_bytes(policy=policy.SMTP) if smtp and odd is None else msg.as_bytes()
    event("taken" if _check(raw) else "given up")


@settings(max_examples=300, deadline=None)
@given(mime_fast._TOP, mime_fast._MESSAGE, st.booleans())
def test_the_mime_fast_generated_messages(top: str, body: str, lf: bool) -> None:
    data = (top + "From: a@b.example\r\nSubject: s\r\n" + body).encode("utf-8", "surrogateescape")
    if lf:
        data = data.replace(b"\r\n", b"\n")
    event("taken" if _check(data) else "given up")


# -- generated MIME messages -----------------------------------------------------------------
class _Pick(Protocol):
    def choice(self, seq: Any) -> Any: ...
    def randint(self, a: int, b: int) -> int: ...


class _Draw:
    """random.Random's choice/randint over hypothesis's data (shrinkable)."""

    def __init__(self, data: st.DataObject):
        self.data = data

    def choice(self, seq: Any) -> Any:
        return self.data.draw(st.sampled_from(list(seq)))

    def randint(self, a: int, b: int) -> int:
        return self.data.draw(st.integers(a, b))


_BOUNDARIES = ["b", "b2", "bb", "=_x.y", "b--", "B", "a b", "b;c"]
_CHARSETS = ["utf-8", "US-ASCII", '"iso-8859-1"', '""', "", "x;y"]


def _case(r: _Pick, name: str) -> str:
    return r.choice([name, name.lower(), name.upper(), name.title()])


def _params(r: _Pick, boundary: str | None) -> str:
    out = ""
    for _ in range(r.randint(0, 3)):
        out += r.choice(
            [
                "; charset=" + r.choice(_CHARSETS),
                '; name="a b.pdf"',
                "; name=a.pdf",
                "; format=flowed",
                ";",
                " ; x = y ",
                ";\r\n\tdelsp=yes",
            ]
            * 4
            + ["; name*=utf-8''%C3%A9", " (comment)", '; q="a\\"b"']  # the email package's: given up on
        )
    if boundary is not None:
        quoted = r.choice([f'"{boundary}"', boundary, f' "{boundary}" '])
        where = r.randint(0, 2)
        piece = f"; {r.choice(['boundary', 'Boundary', 'BOUNDARY'])}={quoted}"
        out = out + piece if where else piece + out
        if r.randint(0, 6) == 0:
            out += "; boundary=other"  # a second: the first counts
    return out


def _other_fields(r: _Pick) -> list[str]:
    fields = []
    for _ in range(r.randint(0, 4)):
        fields.append(
            r.choice(
                [
                    _case(r, "Content-Transfer-Encoding")
                    + ": "
                    + r.choice(["base64", " Quoted-Printable ", "7bit", ""]),
                    _case(r, "Content-ID") + ": <c@x>",
                    "Content-Description: " + r.choice(["a  b", 'say "hi"', "back\\slash", "x\r\n y", ""]),
                    "Content-Disposition: "
                    + r.choice(
                        ["attachment", 'attachment; filename="a.pdf"', "inline;", "", "attachment; filename*=x"][
                            : r.randint(4, 5)
                        ]
                    ),
                    "Content-Language: " + r.choice(["en", "en,\r\n\tde"]),
                    "Content-Location: http://x.example/a",
                    "Content-MD5: e2fc714c4727ee9395f324cd2e7f331f",
                    "Content-Foo: bar",
                    "X-Other: 1",
                    "X-Folded: a\r\n b",
                    "Content-Type: text/x-second",  # a duplicate: the first counts
                ]
            )
        )
    return fields


def _body_lines(r: _Pick, bounds: list[str]) -> list[str]:
    lines = []
    for _ in range(r.randint(0, 4)):
        near = r.choice(bounds) if bounds else "b"
        lines.append(
            r.choice(
                [
                    "text",
                    "",
                    "-- ",
                    "--",
                    f"--{near}x",  # like a boundary, not one
                    f"--{near}--x",
                    f" --{near}",
                    "- -",
                    "a" * r.choice([70, 1000]),
                ]
            )
        )
    return lines


def _part(r: _Pick, depth: int, bounds: list[str]) -> list[str]:
    """The lines of a part (its header block, its body)."""
    multipart = depth < 3 and r.randint(0, 2) == 0
    head: list[str] = []
    if multipart:
        boundary = r.choice(_BOUNDARIES)
        sub = r.choice(["mixed", "alternative", "related", "MIXED", "digest"])
        head.append(_case(r, "Content-Type") + f": multipart/{sub}" + _params(r, boundary))
    else:
        boundary = None
        kind = r.choice(["", "text/plain", "text/html", "application/pdf", "image/png", "TEXT/Plain", "message/rfc822"])
        kind = r.choice([kind, kind, "message/delivery-status", "text", "a/b/c", '"text/plain"'])
        if kind or r.randint(0, 3) == 0:
            head.append(_case(r, "Content-Type") + ": " + kind + _params(r, None))
    head += _other_fields(r)
    order = r.randint(0, 3)
    if order == 0 and len(head) > 1:
        head.reverse()
    lines = head
    if r.randint(0, 7):
        lines.append("")  # mostly an empty line ends the header block
    if boundary is None:
        return lines + _body_lines(r, bounds)
    inner = [*bounds, boundary]
    lines += _body_lines(r, inner)  # the preamble
    for _ in range(r.randint(0, 3)):
        lines.append(f"--{boundary}" + r.choice(["", "", " ", "\t ", "--x"]))
        lines += _part(r, depth + 1, inner)
    end = r.randint(0, 5)
    if end:
        lines.append(f"--{boundary}--" + r.choice(["", "", "  "]))
    elif bounds and r.randint(0, 1):
        lines.append(f"--{r.choice(bounds)}")  # an outer boundary closes us
    lines += _body_lines(r, bounds)  # the epilogue
    return lines


def _message(r: _Pick) -> bytes:
    lines = [
        r.choice(
            ["From: a@b.example", "from: a@b.example", "Received: x\r\n\ty", "From: a@b.example"] * 3
            + ["From x Mon", "X: caf\xe9"]
        ),
        "Subject: s",
    ]
    lines += _part(r, 0, [])
    text = "\r\n".join(lines) + r.choice(["\r\n", ""])
    nl = r.choice(["crlf", "crlf", "lf", "mixed"])
    if nl == "lf":
        text = text.replace("\r\n", "\n")
    elif nl == "mixed":
        text = text.replace("\r\n\r\n", "\n\r\n")
    return text.encode("utf-8", "surrogateescape")


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_generated_messages(data: st.DataObject) -> None:
    event("taken" if _check(_message(_Draw(data))) else "given up")


def test_generated_messages_are_often_taken() -> None:
    """The comparison is not empty: a fair share of the generated messages is read (and each the
    same), the rest given up on."""
    rnd = random.Random(20261201)
    taken = sum(_check(_message(rnd)) for _ in range(3000))
    assert 900 <= taken <= 2900


# -- limits ----------------------------------------------------------------------------------
def test_what_is_near_the_parse_limits_is_given_up_on() -> None:
    deep = b"Content-Type: text/plain\r\n\r\nx\r\n"
    for i in range(12):
        deep = (
            f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
            + deep
            + f"--b{i}--\r\n".encode()
        )
    assert quick_wire(deep) is None
    shallow = deep.split(b"--b6\r\n", 1)[1].rsplit(b"--b6--", 1)[0]  # b5 and 5 inside it
    assert _check(shallow)
    many = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"--b\r\n\r\nx\r\n" * 300 + b"--b--\r\n"
    assert quick_wire(many) is None
    long_boundary_line = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b' + b" " * 70000 + b"\r\n\r\nx\r\n--b--\r\n"
    )
    assert quick_wire(long_boundary_line) is None
    long_preamble = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"x" * 65535 + b"--b\r\n\r\nx\r\n--b--\r\n"
    assert quick_wire(long_preamble) is None
    big_header = b"X-A: " + b"a" * 70000 + b"\r\n\r\nbody\r\n"
    assert quick_wire(big_header) is None
    assert quick_wire(b"") is None


@pytest.mark.parametrize(
    "data",
    [
        b"Subject: no body",
        b"\r\n",
        b"\n\nbody",
        b"Content-Type: text/plain\r\n\r\nno line end",
        b"Content-Type: text/plain\r\n\r\n\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain',
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\n--b--',
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\n\r\n--b\r\n\r\n\n--b--\n\nepilogue',
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/alternative; boundary=b\n\n"
        b"--b\n\nx\n--b--\n--b--\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=c"
        b"\r\n\r\n--c\r\n\r\nx\r\n--b\r\n\r\ny\r\n--b--\r\n",
        # "--b--" closes the inner multipart (b) and delimits the outer (b--): the innermost wins
        b'Content-Type: multipart/mixed; boundary="b--"\r\n\r\n--b--\r\nContent-Type: multipart/related; boundary=b'
        b"\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n\r\ny\r\n--b----\r\n",
    ],
)
def test_edge_shapes(data: bytes) -> None:
    assert _check(data)


# -- the store: a never-parsed message's BODYSTRUCTURE ---------------------------------------
def test_the_store_takes_the_quick_path_for_a_never_parsed_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rnd = random.Random(42)
    paths = []
    for i in range(1, 21):
        path = tmp_path / f"m{i}"
        path.write_bytes(bench_imap.make_message(rnd, i))
        paths.append(path)
    odd = tmp_path / "odd"
    odd.write_bytes(mime_fast.FORWARD)
    calls: list[bytes | None] = []
    real = quickwire.quick_wire

    def spy(data: bytes) -> bytes | None:
        calls.append(real(data))
        return calls[-1]

    monkeypatch.setattr(quickwire, "quick_wire", spy)
    got = store_mod._body_wires([(str(p), None) for p in [*paths, odd]] + [(str(tmp_path / "gone"), None)])
    assert got[:-1] == [_reference(p.read_bytes()) for p in [*paths, odd]]
    assert got[-1] is None
    assert len(calls) == 21 and None not in calls[:20] and calls[20] is None  # FORWARD: the parse


def test_a_bug_in_quick_wire_falls_back_to_the_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception out of quick_wire (other than its own give-up) is logged and the parse makes
    the BODYSTRUCTURE: the message is not turned into one opaque part."""
    path = tmp_path / "m1"
    path.write_bytes(bench_imap.make_message(random.Random(42), 1))

    def broken(data: bytes) -> bytes | None:
        raise IndexError("a planted bug")

    monkeypatch.setattr(quickwire, "quick_wire", broken)
    assert store_mod._body_wires([(str(path), None)]) == [_reference(path.read_bytes())]
    assert "quickwire failed" in caplog.text
