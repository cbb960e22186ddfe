"""The mail list on a 390×844 phone, in a real browser: the tool bar (search, and the actions on
the selected messages) takes one row, so the first message starts within 120 px under the page's
header and the folder strip; every action stays reachable by label (the less used ones in a
native ``<details>`` "More" menu) and works, deleting one message here.

The old layout (search form wrapped over two rows, then six buttons and a select wrapping over
three) put the first message ~250 px under the header.
"""

from __future__ import annotations

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
