"""The web chat in a real browser (Debian's chromium driven by Playwright) against a real
``gk serve``: two people chatting live in two browser contexts (one on a phone-sized screen),
a raw IRC client on the TLS port talking with the browser both ways, react/edit/delete/reply,
an image shared with its preview, and no message lost or shown twice across a page reload and
a dropped connection (the server restarted under the open page). EN and FR screenshots,
desktop and phone, go to ``tests/artifacts/chat/``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from support import browser as b
from support.browser import DESKTOP, PHONE
from support.gkserver import GKServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
PASSWORD = "correct horse battery staple"
ALICE, BOB = "alice@home.example", "bob@home.example"


def png(width: int = 240, height: int = 140) -> bytes:
    """A real PNG of a sunset-ish gradient, large enough to see in the screenshots."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(
        b"\0" + b"".join(bytes((255, 120 + y // 2 % 120, 40 + x // 3 % 200)) for x in range(width))
        for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png()


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # type: ignore[no-untyped-def]
    srv = GKServer(
        tmp_path_factory.mktemp("chat-e2e") / "gk",
        {
            "http": {"https_port": 0},
            "smtp": {"port": 0, "submission_port": 0, "submissions_port": 0},
            "imap": {"port": 0, "tls_port": 0},
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
            "chat": {"max_upload_bytes": 1024 * 1024, "line_burst": 400, "lines_per_second": 200.0},
        },
    )
    srv.claimed({ALICE: PASSWORD, BOB: PASSWORD}).start()
    yield srv
    srv.stop()


def open_chat(browser, base: str, address: str, viewport=DESKTOP, locale: str = "en-US", mobile: bool = False):  # type: ignore[no-untyped-def]
    # CSP refusals, script errors, failed requests go to page.errors
    page = b.new_page(browser, viewport, locale=locale, mobile=mobile, timezone=None, dialogs="accept")
    b.login(page, base, address, PASSWORD, next="/chat", lands="**/chat/r/general")
    wait_live(page)
    return page


def wait_live(page, since: int = 0) -> int:  # type: ignore[no-untyped-def]
    """Until the page's WebSocket has resumed (the server marks ``#live-state`` then); the mark."""
    page.wait_for_function(
        f"() => Number((document.querySelector('#live-state') || {{}}).dataset?.live || 0) > {since}", timeout=60_000
    )
    return int(page.locator("#live-state").get_attribute("data-live"))


def say(page, text: str) -> None:  # type: ignore[no-untyped-def]
    # the send box is swapped in after each send and by Reply: typed into once htmx has settled
    # it (the class goes as hx-post is bound); before, Enter would be the browser's own POST
    box = "#send-form:not(.htmx-added) #compose-text"
    page.fill(box, text)
    page.press(box, "Enter")
    page.wait_for_function("() => document.querySelector('#compose-text').value === ''", timeout=60_000)


def texts(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.strip() for t in page.locator("#timeline article .text").all_inner_texts()]


def see(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.locator("#timeline article .text", has_text=text).first.wait_for(timeout=60_000)


def irc_client(server):  # type: ignore[no-untyped-def]
    from test_chat_irc import IRC, sasl

    irc = IRC(server.port("chat.irc_port"))
    irc.send("CAP LS 302")
    irc.send("NICK x")
    irc.send("USER u 0 * :Bob")
    irc.expect(r"CAP \* LS ")
    irc.send("CAP REQ :sasl server-time message-tags")
    irc.expect(r"CAP .* ACK ")
    irc.send("AUTHENTICATE PLAIN")
    irc.expect(r"^AUTHENTICATE \+")
    irc.send("AUTHENTICATE " + sasl("bob", PASSWORD))
    irc.expect(r" 903 ")
    irc.send("CAP END")
    irc.expect(r" 366 bob #general ")
    return irc


AXE_FOUND: dict[str, list[str]] = {}  # test_accessibility asserts it stays empty


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """A screenshot at the page's size, and the axe-core scan at desktop and phone sizes."""
    b.axe_scan(page, name, AXE_FOUND)
    page.screenshot(path=str(b.artifacts("chat") / f"{name}.png"))


def test_two_browsers_and_irc_chat_live(server, browser):  # type: ignore[no-untyped-def]
    base = f"http://127.0.0.1:{server.port('http.port')}"
    alice = open_chat(browser, base, ALICE)
    bob = open_chat(browser, base, BOB, PHONE, mobile=True)
    say(alice, "Hello Bob, dinner at eight?")
    see(bob, "Hello Bob, dinner at eight?")
    assert bob.locator("#timeline article.mention").count() == 1  # bob is named: highlighted
    say(bob, "Yes! I'll bring dessert")
    see(alice, "I'll bring dessert")
    # IRC → browser, browser → IRC
    irc = irc_client(server)
    irc.send("PRIVMSG #general :sent from weechat on the laptop")
    see(alice, "sent from weechat on the laptop")
    see(bob, "sent from weechat on the laptop")
    say(alice, "and this one goes to IRC")
    irc.expect(r":alice!\S+ PRIVMSG #general :and this one goes to IRC")
    # react, reply, edit, delete (alice's own), live on the other side
    last = alice.locator("#timeline article", has_text="I'll bring dessert")
    last.locator("details.react-menu summary").click()
    last.locator("button.emoji", has_text="🎉").click()
    bob.locator("#timeline article", has_text="I'll bring dessert").locator(
        "button.reaction", has_text="🎉 1"
    ).wait_for(timeout=60_000)
    alice.locator("#timeline article", has_text="I'll bring dessert").locator("button", has_text="Reply").click()
    alice.locator(".replying").wait_for(timeout=60_000)
    say(alice, "perfect")
    bob.locator("#timeline article", has_text="perfect").locator(".quote").wait_for(timeout=60_000)
    mine = alice.locator("#timeline article", has_text="and this one goes to IRC")
    mine.locator("button", has_text="Edit").click()
    # typed once htmx has settled the form (it drops htmx-added as it binds hx-post); before,
    # Enter is the browser's own POST, answered by a reload of the room (test_web_chat checks it)
    edit_box = "#timeline article.editing:not(.htmx-added) input[name=text]"
    alice.fill(edit_box, "and this one went to IRC")
    alice.press(edit_box, "Enter")
    see(bob, "and this one went to IRC")
    alice.locator("#timeline article", has_text="and this one went to IRC").locator("button", has_text="Delete").click()
    bob.locator("#timeline article.deleted").first.wait_for(timeout=60_000)
    # an image: uploaded from the browser, its preview on both sides, its link on IRC
    alice.locator("details.upload summary").click()
    alice.set_input_files(
        "details.upload input[type=file]", files=[{"name": "cake.png", "mimeType": "image/png", "buffer": PNG}]
    )
    alice.click("details.upload button[type=submit]")
    bob.locator("#timeline article .preview img").first.wait_for(timeout=60_000)
    irc.expect(r"PRIVMSG #general :\S*/chat/files/\S+/cake\.png")
    assert bob.locator("#timeline article .preview img").first.evaluate("img => img.naturalWidth") == 240
    # too large: said in the send box, nothing posted
    alice.locator("details.upload summary").click()
    big = {"name": "video.bin", "mimeType": "application/octet-stream", "buffer": b"x" * (1024 * 1024 + 300_000)}
    alice.set_input_files("details.upload input[type=file]", files=[big])
    alice.click("details.upload button[type=submit]")
    alice.locator("#compose .error", has_text="too large").wait_for(timeout=60_000)
    assert "1 MB" in alice.locator("#compose .error").inner_text()
    assert alice.locator("#timeline article", has_text="video.bin").count() == 0
    shot(alice, "chat-en-desktop")
    shot(bob, "chat-en-phone")
    bob.click("a.back")
    bob.wait_for_url("**/chat/rooms")
    shot(bob, "chat-rooms-en-phone")
    # reload: everything once, in order
    before = texts(alice)
    alice.reload()
    wait_live(alice)
    assert texts(alice) == [t for t in before if t != "Message deleted"]
    assert not alice.errors, alice.errors  # type: ignore[attr-defined]
    irc.close()
    alice.context.close()
    bob.context.close()


def test_dropped_connection_resumes_without_loss(server, browser):  # type: ignore[no-untyped-def]
    base = f"http://127.0.0.1:{server.port('http.port')}"
    bob = open_chat(browser, base, BOB)
    mark = wait_live(bob)
    irc = irc_client(server)
    irc.send("PRIVMSG #general :before the drop")
    see(bob, "before the drop")
    irc.close()
    server.stop()  # every connection drops; the page stays open
    server.start()
    irc = irc_client(server)
    for i in range(3):
        irc.send(f"PRIVMSG #general :while reconnecting {i}")
    for i in range(3):
        see(bob, f"while reconnecting {i}")
    wait_live(bob, mark)  # it was a new socket
    irc.send("PRIVMSG #general :after the reconnect")
    see(bob, "after the reconnect")
    shown = texts(bob)
    assert len(shown) == len(set(shown)), shown  # nothing twice
    tail = shown[shown.index("before the drop") :]
    assert tail == ["before the drop", *[f"while reconnecting {i}" for i in range(3)], "after the reconnect"], tail
    irc.close()
    bob.context.close()


def test_scrollback_loads_older_messages(server, browser):  # type: ignore[no-untyped-def]
    base = f"http://127.0.0.1:{server.port('http.port')}"
    irc = irc_client(server)
    irc.send("JOIN #history")
    irc.expect(r" 366 bob #history ")
    for i in range(80):
        irc.send(f"PRIVMSG #history :history line {i:02d}")
    irc.send("PING :done")
    irc.expect(r"PONG .*done")
    bob = open_chat(browser, base, BOB)
    bob.goto(base + "/chat/r/history")
    wait_live(bob)
    see(bob, "history line 79")
    assert bob.locator("#timeline article", has_text="history line 00").count() == 0
    # scrolling up to the top brings the older ones in (the button loads itself when seen)
    bob.locator("#older").scroll_into_view_if_needed()
    see(bob, "history line 00")
    shown = texts(bob)
    assert shown == [f"history line {i:02d}" for i in range(80)], shown
    assert not bob.errors, bob.errors  # type: ignore[attr-defined]
    irc.close()
    bob.context.close()


def test_french_desktop_and_phone(server, browser):  # type: ignore[no-untyped-def]
    base = f"http://127.0.0.1:{server.port('http.port')}"
    page = open_chat(browser, base, ALICE, locale="fr-FR")
    assert page.locator("header.top nav a", has_text="Discussion").count() == 1
    assert page.locator("#compose-text").get_attribute("placeholder") == "Écrire un message"
    assert page.locator(".chat-side h2", has_text="Salons").count() == 1
    shot(page, "chat-fr-desktop")
    page.set_viewport_size(PHONE)
    shot(page, "chat-fr-phone")
    page.goto(base + "/chat/rooms")
    assert re.search("Créer ou rejoindre un salon", page.content())
    shot(page, "chat-rooms-fr-phone")
    page.context.close()


def test_accessibility(server, browser):  # type: ignore[no-untyped-def]
    """Issue 10: no serious or critical axe-core violation on a room, the room list and search
    (the pages above were scanned as they were screenshotted)."""
    base = f"http://127.0.0.1:{server.port('http.port')}"
    page = open_chat(browser, base, BOB)
    page.goto(base + "/chat/search?q=dinner")
    shot(page, "chat-search-en")
    page.context.close()
    assert AXE_FOUND == {}, "\n".join(v for vs in AXE_FOUND.values() for v in vs)
