"""A brand-new owner's first tasks on a 390×844 phone in French, in a real browser (Debian's
chromium driven by Playwright) against a fresh ``gk serve``: add a family member, send her a mail,
open the assistant while the model's download failed (the box cannot reach the model hub), open
the backup page. What the owner walk of session "ownerwalk" found, each as the owner saw it:

- the dashboard's Next steps never said to add the household (its "send a test mail to another
  user of the box" presumed one), so the owner had to find Administration › Utilisateurs alone;
- Utilisateurs › Ajouter gave no hint of the address's form (the wizard's same step did), so
  "lea" alone was refused by the browser's own English bubble; and "Added lea@…" said nothing of
  what to tell her or where she signs in;
- Connecter vos appareils: every card had a heading but the mail one, the one the owner came for
  ("how do I connect my phone's mail app?"): its settings started under no title;
- after sending to two people the banner read "Message envoyé. (2)": two what?
- a new chat room was a blank white page, nothing saying it was empty rather than still loading;
  and its first message logged CSP refusals: htmx "settles" the style attribute by writing it,
  an inline style the page's policy (style-src 'self') blocks;
- a new event's form left the keyboard nowhere (the title unfocused), and saving it said
  nothing: on the phone's month grid the event is three clipped letters in a day's cell;
- the assistant page printed the download's raw English error with its 200-character URL, which
  pushed the whole phone page 190 px sideways, and told a family member nothing to do;
- Modèles de l'assistant, where the owner goes from there, did the same in red, and gave every
  size in English "MB" (so did the wizard's model step);
- the backup page's restore commands pushed the page sideways, and its "Backups on the box" card
  told the owner to type ``gk backup create`` on a console while a button above does it.

Screenshots go to ``tests/artifacts/owner-first-tasks/`` (git-ignored).
"""

from __future__ import annotations

import pytest
from support import browser as b
from support.browser import PHONE
from support.gkserver import GKServer

OWNER, LEA, PW = "marie@maison.example", "lea@maison.example", "correct horse battery"
# how far the page reaches past the phone's 390 px: with is_mobile the layout viewport itself
# (innerWidth) widens to the widest content, so scrollWidth - innerWidth would always be 0
SIDEWAYS = f"() => Math.max(document.scrollingElement.scrollWidth, innerWidth) - {PHONE['width']}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # the model hub is a closed port: every download fails at once, as on a box without Internet
    srv = GKServer(
        tmp_path_factory.mktemp("owner-first-tasks") / "gk",
        overrides={"ai": {"download_url_base": "http://127.0.0.1:1"}},
    ).claimed({OWNER: PW}, admins=(OWNER,), timezone="Europe/Paris")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def page(server, browser):
    page = b.new_page(browser, PHONE, locale="fr-FR", mobile=True)
    b.login(page, f"https://127.0.0.1:{server.port('http.https_port')}", OWNER, PW)
    yield page
    page.context.close()


def base(server) -> str:
    return f"https://127.0.0.1:{server.port('http.https_port')}"


def test_add_a_family_member_then_mail_her(server, page):
    folder = b.artifacts("owner-first-tasks")
    page.goto(base(server) + "/dashboard")
    step = page.locator("#next-steps li[data-step=people]")
    assert step.get_attribute("class") == "todo" and "Ajouter la famille" in step.inner_text()
    step.locator("a").click()
    page.wait_for_url("**/admin/users")
    form = page.locator("form[action='/admin/users']")
    assert form.locator("small").first.inner_text() == "nom@maison.example"  # the address's form, shown
    form.locator("input[name=address]").fill(LEA)
    form.locator("input[name=display_name]").fill("Léa")
    form.locator("input[name=password]").fill("lea pass 12345")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("p.notice")
    added = page.locator("p.notice").inner_text()
    assert added.startswith(f"{LEA} a été ajouté. Communiquez-lui cette adresse et son mot de passe")
    assert f"la connexion se fait sur {base(server)}/," in added  # where she signs in, said
    page.goto(base(server) + "/dashboard")
    assert page.locator("#next-steps li[data-step=people]").get_attribute("class") == "done"
    page.goto(base(server) + "/devices")  # how to connect her phone's mail app: under a heading
    headings = page.locator("main h2").all_inner_texts()
    assert headings[0] == "Courrier" and page.locator("#mail #endpoints").count() == 1, headings
    page.goto(base(server) + "/mail/compose")
    page.fill("[name=to]", f"{LEA}, {OWNER}")
    page.fill("[name=subject]", "Bienvenue")
    page.fill("textarea[name=body]", "Coucou Léa")
    page.click("main button:has-text('Envoyer')")
    page.wait_for_url("**/mail?*notice=sent*")
    b.shot(page, folder, "mail-sent")
    assert page.locator("p.notice").inner_text() == "Message envoyé à 2 destinataires."
    assert page.errors == []


def test_open_the_chat(server, page):
    folder = b.artifacts("owner-first-tasks")
    page.goto(base(server) + "/chat")
    page.wait_for_url("**/chat/r/general")
    empty = page.locator("#timeline-empty")
    assert empty.is_visible() and empty.inner_text() == "Pas encore de message ici : écrivez le premier ci-dessous."
    b.shot(page, folder, "chat-empty")
    page.fill("#timeline ~ * textarea, form textarea, form input[name=text]", "Bonjour la famille")
    page.keyboard.press("Enter")
    page.wait_for_selector("#timeline :text('Bonjour la famille')")
    assert not empty.is_visible()  # the first message, arrived live, takes its place
    b.shot(page, folder, "chat-first-message")
    assert page.errors == []


def test_create_an_event(server, page):
    folder = b.artifacts("owner-first-tasks")
    page.goto(base(server) + "/calendar")
    page.click("a:has-text('Nouvel événement')")
    page.wait_for_url("**/calendar/event*")
    assert page.evaluate("document.activeElement.id") == "f-title"  # type the title straight away
    page.keyboard.type("Anniversaire de Léa")
    page.fill("input[name=start_time]", "16:30")
    page.fill("input[name=end_time]", "18:00")
    page.click("main button:has-text('Enregistrer')")
    page.wait_for_selector("p.notice")
    b.shot(page, folder, "event-saved")
    notice = page.locator("p.notice").inner_text()
    assert notice.startswith("« Anniversaire de Léa » enregistré (") and notice.endswith(" 16:30).")
    page.reload()
    assert page.locator("p.notice").count() == 0  # said once
    assert page.errors == []


def test_assistant_after_a_failed_download(server, page):
    folder = b.artifacts("owner-first-tasks")
    page.goto(base(server) + "/admin/models")
    page.locator("form[action='/admin/models/pull'] button").first.click()
    page.wait_for_load_state()
    for _ in range(100):
        page.goto(base(server) + "/assistant")
        if "n'a pas abouti" in page.locator(".no-model").inner_text():
            break
        page.wait_for_timeout(300)
    b.shot(page, folder, "assistant-download-failed")
    notice = page.locator(".no-model").inner_text()
    assert "n'a pas abouti : l'assistant ne peut pas encore répondre." in notice
    assert "Vérifiez que le boîtier accède à Internet" in notice
    assert "127.0.0.1:1" not in notice  # the download's own English words are folded away...
    assert not page.locator(".download-error p").is_visible()
    page.click(".download-error summary")  # ...one click away, wrapped on the phone
    assert "127.0.0.1:1" in page.locator(".download-error p").inner_text()
    b.shot(page, folder, "assistant-download-failed-details")
    assert page.evaluate(SIDEWAYS) <= 0, "the assistant page scrolls sideways"


def test_the_family_member_sees_the_assistant_too(server, browser):
    """Léa (added above) is no administrator: the failed download tells her whom to ask."""
    page = b.new_page(browser, PHONE, locale="fr-FR", mobile=True)
    b.login(page, base(server), LEA, "lea pass 12345")
    page.goto(base(server) + "/assistant")
    notice = page.locator(".no-model").inner_text()
    assert "n'a pas abouti" in notice and notice.rstrip().endswith("Demandez à un administrateur d'en installer un.")
    assert page.locator(".download-error").count() == 0 and "Internet" not in notice
    page.context.close()


def test_models_page_after_a_failed_download(server, page):
    """Runs after test_assistant_after_a_failed_download, whose download failed."""
    folder = b.artifacts("owner-first-tasks")
    page.goto(base(server) + "/admin/models")
    b.shot(page, folder, "models-download-failed")
    downloads = page.locator("#pulls").inner_text()
    assert "Le téléchargement n'a pas abouti." in downloads and "127.0.0.1:1" not in downloads
    assert page.evaluate(SIDEWAYS) <= 0, "the models page scrolls sideways"
    sizes = page.locator("main table").first.inner_text()
    assert " Mo" in sizes and " MB" not in sizes
    assert page.errors == []


def test_backup_page_on_a_phone(server, page):
    folder = b.artifacts("owner-first-tasks")
    page.goto(base(server) + "/admin/backup")
    b.shot(page, folder, "backup")
    assert page.evaluate(SIDEWAYS) <= 0, "the backup page scrolls sideways"
    kept = page.locator("#kept").inner_text()
    assert "gk backup create" not in kept  # the button above does it: no console for the owner
    page.click("#to-back-up-now")
    assert page.url.endswith("#status") and page.locator("#back-up-now").is_visible()
    assert page.errors == []
