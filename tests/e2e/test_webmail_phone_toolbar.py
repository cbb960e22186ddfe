"""The mail list on a 390×844 phone, in a real browser: the tool bar (search, and the actions on
the selected messages) takes one row, so the first message starts within 120 px under the page's
header and the folder strip; every action stays reachable by label (the less used ones in a
native ``<details>`` "More" menu) and works, deleting one message here.

The old layout (search form wrapped over two rows, then six buttons and a select wrapping over
three) put the first message ~250 px under the header.
"""

from __future__ import annotations

import re

import pytest
from support import browser as b
from support.browser import PHONE
from support.gkserver import GKServer
from support.messages import drop_in_maildir

USER, PW = "nina@phone.example", "correct horse battery"


def _mail(n: int) -> str:
    return (
        f"From: Sam <sam@phone.example>\r\nTo: {USER}\r\nSubject: Phone list {n}\r\n"
        f"Message-ID: <phone-{n}@phone.example>\r\nDate: Mon, 1 Jun 2026 10:0{n}:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # type: ignore[no-untyped-def]
    srv = GKServer(tmp_path_factory.mktemp("phone-toolbar") / "gk")
    srv.claimed({USER: PW}, admins=(USER,), timezone="Europe/Paris")
    for n in range(3):
        drop_in_maildir(srv, USER, _mail(n))
    srv.start()
    yield srv
    srv.stop()


# where the first message row starts: under the page's header (the folder strip, sticky on a
# phone, and the list's tool bar between them), and under the folder strip
GAP_JS = """() => {
  const header = document.querySelector('header.top').getBoundingClientRect().bottom;
  const strip = document.querySelector('nav.folders').getBoundingClientRect().bottom;
  const first = document.querySelector('#messages li').getBoundingClientRect().top;
  return {header: header, strip: strip, first: first, under_header: first - header, under_strip: first - strip};
}"""


def test_first_message_is_near_the_top_and_every_action_works(server, browser) -> None:  # type: ignore[no-untyped-def]
    base = f"http://127.0.0.1:{server.port('http.port')}"
    page = b.new_page(browser, PHONE, mobile=True)
    b.login(page, base, USER, PW)
    page.goto(base + "/mail?folder=INBOX")
    assert page.locator("#messages li").count() == 3
    where = page.evaluate(GAP_JS)
    page.screenshot(path=str(b.artifacts("webmail-phone") / "list.png"), full_page=True)
    assert where["under_header"] <= 120, where  # the old layout: 190 (244 from the screen's top)

    # the tool bar is one row; every action is there by its name
    assert page.locator(".messages .toolbar").bounding_box()["height"] < 50  # type: ignore[index]
    for name in ("Search", "Delete"):
        assert page.get_by_role("button", name=name, exact=True).is_visible(), name
    search = page.get_by_role("searchbox", name="Search")
    assert search.is_visible()
    search.focus()  # searching: the scope shows (the search then takes the row)
    assert page.get_by_role("checkbox", name="All folders").is_visible()
    page.keyboard.press("Tab")  # reachable by keyboard, and staying while it has the focus
    assert page.evaluate("document.activeElement.name") == "scope"
    page.get_by_role("group", name="Selected messages").get_by_role("button", name="Delete").focus()
    more = page.locator(".bulkbar details.more summary")
    more.click()  # the less used ones, behind "More"
    for name in ("Mark read", "Mark unread", "Flag", "Move to"):
        assert page.get_by_role("button", name=name).is_visible(), name
    assert page.get_by_role("combobox", name="Move to").is_visible()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(b.artifacts("webmail-phone") / "more.png"))
    more.press("Enter")  # the keyboard closes it again
    assert not page.get_by_role("button", name="Flag").is_visible()

    # one message deleted from the phone: it leaves the list
    page.get_by_role("checkbox", name="Select: Phone list 1").check()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.wait_for_load_state()
    subjects = page.locator("#messages li .subj").all_inner_texts()
    assert "Phone list 1" not in " ".join(subjects) and len(subjects) == 2, subjects
    # and one moved from the More menu
    page.get_by_role("checkbox", name="Select: Phone list 2").check()
    page.locator(".bulkbar details.more summary").click()
    page.get_by_role("combobox", name="Move to").select_option(label="Archive")
    page.get_by_role("button", name="Move to").click()
    page.wait_for_load_state()
    assert page.locator("#messages li").count() == 1
    # and the last one marked read from it
    page.get_by_role("checkbox", name="Select: Phone list 0").check()
    page.locator(".bulkbar details.more summary").click()
    page.get_by_role("button", name="Mark read").click()
    page.wait_for_load_state()
    assert page.locator("#messages li a.unread").count() == 0
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_desktop_keeps_the_actions_at_hand(server, browser) -> None:  # type: ignore[no-untyped-def]
    """On a desktop screen the tool bar shows the search with its scope and button, Delete and
    Mark read beside it; "More" holds the rest."""
    base = f"http://127.0.0.1:{server.port('http.port')}"
    page = b.new_page(browser, b.DESKTOP)
    b.login(page, base, USER, PW)
    page.goto(base + "/mail?folder=INBOX")
    for name in ("Search", "Delete", "Mark read"):
        assert page.get_by_role("button", name=name, exact=True).is_visible(), name
    assert page.get_by_role("checkbox", name="All folders").is_visible()
    page.locator(".bulkbar details.more summary").click()
    assert page.get_by_role("button", name="Flag").is_visible()
    assert page.get_by_role("button", name="Mark read", exact=True).count() == 1  # the menu's copy is hidden
    page.screenshot(path=str(b.artifacts("webmail-phone") / "desktop.png"))
    assert not page.errors, page.errors  # type: ignore[attr-defined]


# folders of the user's own beside the six of every mailbox: the strip had room for about three
OWN_FOLDERS = ("Receipts", "School trips", "Garden club")
FOLDER_NAMES = ("Inbox", "Drafts", "Sent", "Archive", "Junk", "Trash", *OWN_FOLDERS)


def _folder(nav, name: str):  # type: ignore[no-untyped-def]
    """A folder's link, its unread count after its name."""
    return nav.get_by_role("link", name=re.compile(rf"^{re.escape(name)}( ?\d+)?$"))


def _on_screen(page, locator) -> bool:  # type: ignore[no-untyped-def]
    """Visible and wholly inside the phone's screen, nothing scrolled sideways."""
    if locator.count() != 1 or not locator.is_visible():
        return False
    box = locator.bounding_box()
    return (
        box is not None
        and box["x"] >= 0
        and box["x"] + box["width"] <= PHONE["width"]
        and box["y"] >= 0
        and box["y"] + box["height"] <= PHONE["height"]
    )


def test_every_folder_is_one_tap_away_on_a_phone(server, browser) -> None:  # type: ignore[no-untyped-def]
    """At 390 px the folders were a strip scrolling sideways: Compose, Inbox, Drafts and part of Sent
    on the screen, every other folder past its edge with nothing to say so (a phone shows no
    scroll bar). The strip now holds Compose and a folder switcher named after the folder shown;
    one tap lists every folder, each wholly on the screen; the switcher counts the folder's unread
    messages and the others'. The first message stays as near the top."""
    base = f"http://127.0.0.1:{server.port('http.port')}"
    drop_in_maildir(server, USER, _mail(7).replace("Phone list 7", "Phone list unread"))
    page = b.new_page(browser, PHONE, mobile=True)
    b.login(page, base, USER, PW)
    page.goto(base + "/mail/folders")
    for name in OWN_FOLDERS:
        page.fill("#f-new", name)
        page.get_by_role("button", name="Create").click()
        page.wait_for_load_state()
    page.goto(base + "/mail?folder=INBOX")
    assert page.locator("#messages li").count() >= 1
    where = page.evaluate(GAP_JS)
    assert where["under_header"] <= 120, where
    folders = page.get_by_role("navigation", name="Folders")
    off = [n for n in FOLDER_NAMES if not _on_screen(page, _folder(folders, n))]
    assert off, "every folder fits the strip: the test needs more folders"  # so the switcher is needed

    switch = folders.locator("details.switch > summary")
    assert switch.count() == 1 and _on_screen(page, switch), "no folder switcher on the strip"
    assert switch.locator(".current").inner_text() == "Inbox"
    switch.click()
    page.screenshot(path=str(b.artifacts("webmail-phone") / "folders-open.png"))
    off = [n for n in FOLDER_NAMES if not _on_screen(page, _folder(folders, n))]
    assert not off, off
    assert _on_screen(page, folders.get_by_role("link", name="Manage folders"))
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert not b.axe_violations(page), b.axe_violations(page)

    folders.get_by_role("link", name="Garden club").click()
    page.wait_for_url("**folder=Garden**")
    assert switch.locator(".current").inner_text() == "Garden club"
    # the others' unread messages, counted on the switcher (the inbox's, here)
    page.screenshot(path=str(b.artifacts("webmail-phone") / "folders-other.png"))
    others = switch.locator(".others")
    assert re.fullmatch(r"\+[1-9]\d*", others.inner_text().split()[0]), others.inner_text()
    assert others.text_content().endswith("unread in other folders")  # said, not only shown
    assert not _folder(folders, "Inbox").is_visible()  # closed again
    switch.click()
    _folder(folders, "Inbox").click()
    page.wait_for_url("**folder=INBOX**")
    assert page.evaluate(GAP_JS)["under_header"] <= 120
    page.screenshot(path=str(b.artifacts("webmail-phone") / "folders-closed.png"))
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_the_desktop_lists_every_folder_without_a_switcher(server, browser) -> None:  # type: ignore[no-untyped-def]
    base = f"http://127.0.0.1:{server.port('http.port')}"
    page = b.new_page(browser, b.DESKTOP)
    b.login(page, base, USER, PW)
    page.goto(base + "/mail?folder=INBOX")
    folders = page.get_by_role("navigation", name="Folders")
    assert not folders.locator("details.switch").is_visible()
    for name in ("Inbox", "Drafts", "Sent", "Archive", "Junk", "Trash", "Manage folders"):
        assert _folder(folders, name).is_visible(), name
    assert _folder(folders, "Inbox").count() == 1  # the switcher's copy is hidden


def _open(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(page.evaluate(f"document.querySelector({selector!r}).open"))


def _focused_summary(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(page.evaluate(f"document.activeElement === document.querySelector({selector!r} + ' > summary')"))


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_escape_and_a_click_outside_close_the_menus(server, browser, size: str) -> None:  # type: ignore[no-untyped-def]
    """The "More" menu of the tool bar, and the phone's folder switcher, are native <details>:
    Escape did nothing and the menu stayed open over the list after a click elsewhere. As a menu
    button should (WAI-ARIA APG), Escape now closes the menu and gives the focus back to its
    summary, from the summary or from an item; a click or the focus outside closes it."""
    base = f"http://127.0.0.1:{server.port('http.port')}"
    drop_in_maildir(server, USER, _mail(8))
    page = b.new_page(browser, PHONE if size == "phone" else b.DESKTOP, mobile=size == "phone")
    b.login(page, base, USER, PW)
    page.goto(base + "/mail?folder=INBOX")
    more = ".bulkbar details.more"
    summary = page.locator(more + " > summary")

    # by keyboard: open from the summary, go to an item, Escape: closed, focus on the summary
    summary.focus()
    page.keyboard.press("Enter")
    assert _open(page, more)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('details.more') !== null")
    page.keyboard.press("Escape")
    assert not _open(page, more), "Escape left the menu open"
    assert _focused_summary(page, more), page.evaluate("document.activeElement.outerHTML.slice(0, 80)")
    # Escape on the summary itself
    page.keyboard.press("Enter")
    assert _open(page, more)
    page.keyboard.press("Escape")
    assert not _open(page, more) and _focused_summary(page, more)
    # tabbing past the last item leaves the menu: it closes
    page.keyboard.press("Enter")
    for _ in range(8):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('details.more') === null")
    assert not _open(page, more)

    # by pointer: opened, then a click on the list's empty space, or on the search field
    summary.click()
    assert _open(page, more)
    page.locator("#messages").click(position={"x": 2, "y": 2})
    assert not _open(page, more), "a click outside left the menu open"
    summary.click()
    page.get_by_role("searchbox", name="Search").click()
    assert not _open(page, more)
    # a click inside (the Move to list) keeps it open
    page.locator("#messages").click(position={"x": 2, "y": 2})  # (a phone's search takes the row while focused)
    summary.click()
    page.get_by_role("combobox", name="Move to").click()
    assert _open(page, more)
    page.keyboard.press("Escape")  # closes the select's list first (the page never sees that one)
    page.locator("#messages").click(position={"x": 2, "y": 2})
    assert not _open(page, more)

    if size == "phone":  # the folder switcher behaves the same
        switch = "nav.folders details.switch"
        page.locator(switch + " > summary").click()
        assert _open(page, switch)
        page.keyboard.press("Escape")
        assert not _open(page, switch) and _focused_summary(page, switch)
        page.locator(switch + " > summary").click()
        assert _open(page, switch)  # the list covers the mail list; a tap on the strip beside it
        page.locator("nav.folders").click(position={"x": PHONE["width"] - 8, "y": 8})
        assert not _open(page, switch)
        page.locator(switch + " > summary").click()
        page.keyboard.press("Tab")  # the first folder
        assert _open(page, switch)
        page.keyboard.press("Escape")
        assert not _open(page, switch) and _focused_summary(page, switch)
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_a_tap_on_the_actions_lands_while_the_search_has_the_focus(server, browser) -> None:  # type: ignore[no-untyped-def]
    """On a phone the search takes the whole row while it has the focus (its scope shows) and the
    actions wrap under it. A tap on More or Delete then took the focus from the search first: the
    row folded back under the finger before the tap ended, which hit whatever came there (the menu
    stayed shut, nothing was deleted). The row now folds back a moment after the search loses
    the focus."""
    base = f"http://127.0.0.1:{server.port('http.port')}"
    drop_in_maildir(server, USER, _mail(9).replace("Phone list 9", "Phone list tapped"))
    page = b.new_page(browser, PHONE, mobile=True)
    b.login(page, base, USER, PW)
    page.goto(base + "/mail?folder=INBOX")
    search = page.get_by_role("searchbox", name="Search")
    summary = page.locator(".bulkbar details.more > summary")
    before = summary.bounding_box()
    search.click()
    moved = summary.bounding_box()
    assert before is not None and moved is not None and moved["y"] > before["y"] + 20, (before, moved)
    summary.click()
    assert _open(page, ".bulkbar details.more"), "the tap on More missed it"
    page.wait_for_timeout(600)  # then the row folds back, the menu with it
    assert summary.bounding_box()["y"] == before["y"]  # type: ignore[index]
    page.keyboard.press("Escape")

    page.get_by_role("checkbox", name="Select: Phone list tapped").check()
    search.click()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.wait_for_load_state()
    assert "Phone list tapped" not in " ".join(page.locator("#messages li .subj").all_inner_texts())
    assert not page.errors, page.errors  # type: ignore[attr-defined]
