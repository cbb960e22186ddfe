"""The assistant page in a real browser (Debian's chromium driven by Playwright) against a real
``gk serve`` running the tiny random-weight GGUF: a question, the answer growing on screen as the
server-sent events arrive (htmx's SSE extension under the strict CSP), Stop, a follow-up through
the htmx form, and the page in French. Screenshots go to ``tests/artifacts/assistant/``."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from support import browser as b
from support.gkserver import GKServer

pytest.importorskip("llama_cpp", reason="the `ai` extra is not installed (make setup installs it)")

ALICE, CLAIRE, PW = "alice@home.example", "claire@home.example", "correct horse battery"
DORA = "dora@home.example"  # the tool-call test's user (the others answer without tools: a shorter prompt)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from support import tinygguf

    from gk import claim

    # wider than the suite's 0.5 MB model (~80 MB, f16): that one answers 2,000 tokens in a couple
    # of seconds, and a loaded browser could see the answer end before its Stop click lands
    tiny_gguf = tinygguf.write(
        tmp_path_factory.mktemp("models") / "slow.gguf", n_embd=768, n_layer=6, n_ff=2048, n_head=12, f16=True
    )

    srv = GKServer(
        tmp_path_factory.mktemp("assistant-e2e") / "gk",
        {"ai": {"threads": 1, "max_tokens": 2000}, "smtp": {"port": 0, "submission_port": 0, "submissions_port": 0},
         "imap": {"port": 0, "tls_port": 0}},
    )  # fmt: skip
    srv.write_config()
    (srv.data_dir / "models").mkdir()
    shutil.copy(tiny_gguf, srv.data_dir / "models" / "tiny.gguf")
    srv.add_user(ALICE, PW, admin=True)
    srv.add_user(CLAIRE, PW)
    srv.add_user(DORA, PW)
    claim.complete(srv.data_dir)
    from gk.mcp import toolbox

    settings = toolbox.Settings(srv.data_dir)
    for user in (ALICE, CLAIRE, DORA):
        for tool in toolbox.DEFAULT_ON - ({"mail_send"} if user == DORA else set()):
            settings.set_enabled(user, tool, False)
    settings.close()
    srv.forced = srv.data_dir.parent / "forced.json"  # the tool-call test's forced steps (none: free text)
    srv.forced.write_text("[]")
    os.environ["GK_AI_FORCED_CALLS"] = str(srv.forced)
    try:
        srv.start(wait=120)
    finally:
        os.environ.pop("GK_AI_FORCED_CALLS", None)
    yield srv
    srv.stop()


def open_page(browser, server, address: str, locale: str):
    page = b.new_page(browser, locale=locale, timezone=None)
    problems: list[str] = page.errors  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{server.port('http.port')}"
    b.login(page, base, address, PW, next="/assistant")
    # a CSP violation is reported to the console with the element that caused it
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error('CSP violation: '"
        " + e.violatedDirective + ' ' + (e.target && e.target.outerHTML ? e.target.outerHTML.slice(0, 200) : '')))"
    )
    page.goto(base + "/assistant")
    return page, problems


def answer_grows(page) -> None:
    """The streaming bubble's text gets longer while it is on screen (events are arriving). Watched
    inside the page (one wait, no polling round trips): the tiny model answers in seconds, and
    the caller must still be able to press Stop before the answer ends on a loaded machine."""
    page.wait_for_function(
        "() => { const b = document.querySelector('#answer .body'); return b && b.innerText.length > 20 }",
        timeout=180_000,
    )
    page.wait_for_function(
        """() => {
            const b = document.querySelector('#answer .body');
            if (!b) return false;
            window.__gkFirst = window.__gkFirst || b.innerText.length;
            if (b.innerText.length > window.__gkFirst) { window.__gkFirst = 0; return true; }
            return false;
        }""",
        polling=20,
        timeout=60_000,
    )


def test_a_streamed_answer_stop_and_a_follow_up(browser, server):
    page, problems = open_page(browser, server, ALICE, "en-GB")
    page.fill("#first", "Hello! Can you **help** me plan the week?")
    page.click("form.ask button[type=submit]")
    page.wait_for_url("**/assistant/c/*")
    answer_grows(page)
    page.click("#answer button.stop")
    page.wait_for_selector("#answer", state="detached")
    page.screenshot(path=str(b.artifacts("assistant") / "streaming-en.png"), full_page=True)  # the stopped answer
    assert "Stopped." in page.locator(".messages-list .msg.assistant .note").last.inner_text()
    assert page.locator(".messages-list .msg.user").count() == 1
    # a follow-up through the htmx form: appended without a page load, streamed, stopped
    page.fill("#ask textarea", "And next week?")
    page.click("#ask button[type=submit]")
    page.wait_for_selector(".messages-list .msg.user >> nth=1")
    answer_grows(page)
    assert page.locator("#ask textarea").input_value() == ""  # the form came back empty
    page.click("#answer button.stop")
    page.wait_for_selector("#answer", state="detached")
    assert page.locator(".messages-list .msg.assistant").count() == 2
    page.screenshot(path=str(b.artifacts("assistant") / "conversation-en.png"), full_page=True)
    # it is all stored: a reload shows both turns and opens no stream
    page.reload()
    assert page.locator(".messages-list .msg.user").count() == 2 and page.locator("#answer").count() == 0
    assert page.locator(".conversations li a[aria-current]").count() == 1
    b.assert_accessible(page, "assistant-conversation")  # issue 10: no serious or critical violation
    assert not [p for p in problems if "Content Security Policy" in p or "CSP violation" in p], problems


def test_the_assistant_in_french(browser, server):
    page, problems = open_page(browser, server, CLAIRE, "fr-FR")
    assert page.locator("h1").inner_text() == "Assistant"
    b.assert_accessible(page, "assistant-fr")
    assert page.locator("button.new").inner_text() == "Nouvelle conversation"
    page.fill("#first", "Bonjour, peux-tu m'aider à écrire un mot pour la voisine ?")
    page.click("form.ask button[type=submit]")
    page.wait_for_url("**/assistant/c/*")
    answer_grows(page)
    assert page.locator("#answer button.stop").inner_text() == "Arrêter"
    page.click("#answer button.stop")
    page.wait_for_selector("#answer", state="detached")
    assert "Arrêté." in page.locator(".msg.assistant .note").last.inner_text()
    page.screenshot(path=str(b.artifacts("assistant") / "streaming-fr.png"), full_page=True)
    page.screenshot(path=str(b.artifacts("assistant") / "conversation-fr.png"), full_page=True)
    assert not [p for p in problems if "Content Security Policy" in p or "CSP violation" in p], problems


def test_a_tool_call_shown_inline_and_approved_there(browser, server):
    """The model (forced by a grammar to the call) asks to send a mail: the call and its pending
    action appear in the conversation, the owner approves it inline, the approval page says it
    was done, and the conversation then shows it done."""
    body = {"to": {"type": "array", "items": {"enum": [CLAIRE]}, "minItems": 1, "maxItems": 1},
            "subject": {"enum": ["Dinner"]}, "body": {"enum": ["Dinner is at eight."]}}  # fmt: skip
    schema = {"type": "object", "properties": body, "required": list(body), "additionalProperties": False}
    server.forced.write_text(json.dumps([{"name": "mail_send", "arguments": schema}]))
    try:
        page, problems = open_page(browser, server, DORA, "en-GB")
        page.fill("#first", "Tell Claire that dinner is at eight.")
        page.click("form.ask button[type=submit]")
        page.wait_for_url("**/assistant/c/*")
        conversation = page.url
        page.wait_for_selector('#answer .tool-call[data-tool="mail_send"]', timeout=180_000)
        try:  # the free answer after the call is not needed
            page.click("#answer button.stop", timeout=5_000)
        except Exception:
            pass
        page.wait_for_selector("#answer", state="detached", timeout=180_000)
        pending = page.locator('.msg.tool .pending-action[data-state="pending"]')
        assert "Dinner" in pending.inner_text()
        page.screenshot(path=str(b.artifacts("assistant") / "tool-call-pending-en.png"), full_page=True)
        pending.locator("button.approve").click()
        page.wait_for_url("**/approvals/*/approve")
        assert page.locator("#notice").inner_text() == "Approved: done."
        page.goto(conversation)
        page.locator(".msg.tool summary").first.click()  # the collapsed call opens
        assert page.locator('.msg.tool .pending-action[data-state="done"]').count() == 1
        assert page.locator(".msg.tool .pending-action button.approve").count() == 0
        page.screenshot(path=str(b.artifacts("assistant") / "tool-call-done-en.png"), full_page=True)
        assert not [p for p in problems if "Content Security Policy" in p or "CSP violation" in p], problems
    finally:
        server.forced.write_text("[]")
