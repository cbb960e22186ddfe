"""The web UI in French end to end (issue 10 part 6): with ``Accept-Language: fr`` the wizard's
first page, the dashboard, the settings page and a 404 page show no English sentence from a
list of known strings, and show their French translations (the gettext catalog, gk.locale)."""

from __future__ import annotations

import html
import re
from pathlib import Path

from babel.messages.pofile import read_po
from support.gkserver import GKServer
from test_web_http import ADMIN, NO_MAIL, Client, run_wizard

LOCALE = Path(__file__).resolve().parents[2] / "appliance" / "gk" / "locale"
FR = {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
# English text that used to show on these pages (words spelled the same in French left out)
ENGLISH = [
    "Claim this server",
    "Setup code",
    "Continue",
    "Enter the one-time setup code",
    "or press the button on the server",
    "Sign out",
    "Dashboard",
    "Security events",
    "MB free of",
    "no sensor",
    "Uptime",
    "not running",
    "Failed sign-in",
    "Setup finished",
    "Time zone",
    "Save",
    "Get a certificate from Let's Encrypt",
    "Connect your devices",
    "Mail delivery",
    "Page not found",
    "Not found",
    "Back to the home page",
]


def visible_text(page: str) -> str:
    """The text a reader sees: tags dropped (attribute values such as URLs are not text), entities decoded."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def catalog_english() -> list[str]:
    """Every msgid of the catalog that French writes differently and that cannot be mistaken for
    French: a sentence or a capitalised word of four letters or more, without placeholders."""
    with open(LOCALE / "fr" / "LC_MESSAGES" / "gk.po", "rb") as f:
        po = read_po(f, locale="fr")
    return [
        m.id
        for m in po
        if isinstance(m.id, str)
        and m.id
        and "{" not in m.id
        and m.string != m.id
        and (" " in m.id or (m.id[0].isupper() and len(m.id) >= 4))
    ]


def assert_french(page: str, *expected: str, known: list[str] | None = None) -> None:
    text = visible_text(page)
    english = [s for s in ENGLISH + (known or []) if re.search(r"\b" + re.escape(s) + r"\b", text)]
    assert not english, f"English left on a French page: {english}\n{text[:3000]}"
    for s in expected:
        assert s in text, f"{s!r} missing:\n{text[:3000]}"


def test_pages_in_french_have_no_english_left(make_server):  # type: ignore[no-untyped-def]
    srv: GKServer = make_server(overrides=NO_MAIL).start()
    first = Client(srv, https=True)
    resp, page = first.get("/wizard/claim", headers=FR)
    assert resp.status == 200 and '<html lang="fr">' in page
    assert_french(page, "Prendre possession de ce serveur", "Code d'installation", "Continuer")

    c = run_wizard(srv)
    stranger = Client(srv)
    stranger.get("/login")
    resp, _ = stranger.post("/login", {"address": ADMIN, "password": "not the password"})  # a security event
    assert resp.status == 401
    _, page = c.get("/dashboard", headers=FR)
    assert_french(page, "Tableau de bord", "Événements de sécurité", "Mo libres sur", "Échec de connexion")
    assert re.search(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", visible_text(page)), "dates in the French form"

    _, page = c.get("/admin/settings", headers=FR)
    assert_french(page, "Réglages", "Fuseau horaire", "Enregistrer", "Obtenir un certificat de Let's Encrypt")

    resp, page = c.get("/no/such/page", headers=FR)
    assert resp.status == 404
    assert_french(page, "Page introuvable", "Retour à l'accueil")
    # the same 404 for an English reader
    resp, page = c.get("/no/such/page", headers={"Accept-Language": "en"})
    assert resp.status == 404 and "Page not found" in page and "Back to the home page" in page


def test_admin_only_page_refuses_in_french(make_server):  # type: ignore[no-untyped-def]
    srv: GKServer = make_server(overrides=NO_MAIL).start()
    run_wizard(srv)
    bob = Client(srv)
    bob.login("bob@test.example", "bob password 1")
    resp, page = bob.get("/admin/settings", headers=FR)
    assert resp.status == 403
    assert_french(page, "Accès refusé", "Cette page est réservée aux administrateurs.")


def test_every_admin_page_in_french_shows_no_catalog_english(make_server, dns_server):  # type: ignore[no-untyped-def]
    """Each page an owner sees outside the webmail, read in French: no msgid of the catalog shows
    in English (a template that prints a catalog string without _() would)."""
    srv: GKServer = make_server(overrides={**NO_MAIL, "dns": dns_server.config()}).start()
    c = run_wizard(srv)
    known = catalog_english()
    assert len(known) > 150
    for path in (
        "/dashboard",
        "/admin/users",
        "/admin/mail",
        "/admin/diagnosis",
        "/admin/settings",
        "/devices",
        "/account",
        "/approvals",
        "/admin/audit",
    ):
        resp, page = c.get(path, headers=FR)
        assert resp.status == 200, path
        assert_french(page, known=known)
    resp, page = c.request("POST", "/admin/diagnosis", form={"csrf": c.csrf}, headers=FR)
    assert resp.status == 200
    assert_french(page, "Diagnostic", "Comment corriger", known=known)
    resp, page = c.request("POST", "/admin/mail/check", form={"csrf": c.csrf}, headers=FR)
    assert resp.status == 200
    assert_french(page, "Dans le DNS actuellement", known=known)
    resp, page = c.request(
        "POST", "/admin/users", form={"csrf": c.csrf, "address": "x", "password": "short"}, headers=FR
    )
    assert resp.status == 400
    assert_french(page, "n'est pas une adresse de courriel utilisable", known=known)
