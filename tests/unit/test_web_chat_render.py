"""How the web chat shows a message's text: escaped, links only for http(s), IRC formatting
dropped, mentions of the viewer found as whole names; and how shared files are typed."""

from __future__ import annotations

import io

import pytest

from gk.chat.files import FileStore, FileTooLarge, safe_name, sniff
from gk.web.chat import mentions, render_text


def test_text_is_escaped_and_only_web_links_are_links():
    html = str(render_text('<img src=x onerror="alert(1)"> javascript:alert(2) https://a.example/x?y=1&z=2.', None))
    assert "<img" not in html and "&lt;img" in html
    assert 'href="javascript' not in html
    assert '<a href="https://a.example/x?y=1&amp;z=2" rel="noopener noreferrer" target="_blank">' in html
    assert html.endswith("</a>.")
    assert str(render_text('https://a.example/"onmouseover="x', None)).count('"') == 6  # the quote ends the link


def test_irc_formatting_and_actions():
    assert str(render_text("\x02bold\x02 \x0304,01red\x03 plain", None)) == "bold red plain"
    assert str(render_text("\x01ACTION waves\x01", None)) == "* waves"
    assert str(render_text("two\nlines", None)) == "two<br>lines"


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("hi bob", True),
        ("@bob look", True),
        ("Bob!", True),
        ("bobby", False),
        ("bob@home.example", True),
        ("kabob", False),
    ],
)
def test_mentions_are_whole_names(text, hit):
    assert mentions(text, "bob") is hit


def test_types_come_from_the_bytes_not_the_name(tmp_path):
    assert sniff(b"\x89PNG\r\n\x1a\n....", "x.txt") == "image/png"
    assert sniff(b"<svg onload=alert(1)>", "x.svg") == "application/octet-stream"
    assert sniff(b"<html><script>", "x.html") == "application/octet-stream"
    assert sniff(b"hello", "notes.txt") == "text/plain"
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name('a "quoted"; name?.png') == "a_quoted_name.png"
    store = FileStore(tmp_path, 1024)
    try:
        with pytest.raises(FileTooLarge):
            store.save("alice", "big.bin", io.BytesIO(b"x" * 1025))  # no length given: counted while read
        with pytest.raises(FileTooLarge):
            store.save("alice", "big.bin", io.BytesIO(b""), length=4096)  # refused before reading
        f = store.save("alice", "ok.txt", io.BytesIO(b"fine"))
        assert store.get(f.id) == f and f.ctype == "text/plain" and f.size == 4
        with store.open(f) as fh:
            assert fh.read() == b"fine"
        assert not list((tmp_path / "chat-files" / "tmp").iterdir())
        assert store.get("../../x") is None
    finally:
        store.close()
