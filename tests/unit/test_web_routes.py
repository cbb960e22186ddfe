"""The web UI's routes in-process (``support.wsgiclient``: real WSGI calls, real SQLite stores, no
``gk serve``): the policy table (every route has one; anonymous visitors reach only the
anonymous ones; a user is refused the administrator's; every POST without the CSRF token is a
403 that changes nothing), each area's routes, and the wizard as a list of steps.

One subprocess smoke test per area stays in tests/integration/test_web_*.py and tests/e2e.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import bottle
import pytest
from support.wsgiclient import (
    ADMIN,
    ADMIN_PW,
    USER,
    USER_PW,
    Client,
    complete_setup,
    make_context,
    make_web,
    set_up_web,
    signed_in,
)

from gk import claim, settings
from gk.web import account, admin, clientsetup, dashboard, diagnosis, maildelivery, routes, wizard, wizardsteps
from gk.web.app import RECOVERY_PATHS, SETUP, Access, LazyHandler, Web, lazy

# what a visitor with no session may reach once setup is complete (a reviewed allow-list)
ANONYMOUS = {
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/static/<path:path>"),
    ("GET", "/.well-known/autoconfig/mail/config-v1.1.xml"),
    ("GET", "/mail/config-v1.1.xml"),
    ("GET", "/.well-known/acme-challenge/<token>"),
    ("ANY", "/.well-known/caldav"),
    ("ANY", "/.well-known/carddav"),
    ("PROPFIND", "/"),
    ("GET", "/oauth/authorize"),  # checks the client, then sends the browser to the signed-in consent page
}
# a value for each URL wildcard, to call every route
SAMPLE = {
    "<path:path>": "gk.css",
    "<address>": USER,
    "<app_id:int>": "1",
    "<msg_id:int>": "1",
    "<token>": "x",
    "<name>": "general",
    "<action_id>": "x",
    "<msgid>": "x",
    "<collection>": "calendar",
    "<conv:int>": "1",
}
SAMPLE["<token_id:int>"] = "1"  # the account page's API tokens
SAMPLE["<rid>"] = "x"  # an OAuth authorization request waiting for consent
SAMPLE["<grant_id:int>"] = "1"  # a connected OAuth application
SAMPLE["<server_id:int>"] = "1"  # the assistant's external MCP servers


def concrete(rule: str) -> str:
    for wildcard, value in SAMPLE.items():
        rule = rule.replace(wildcard, value)
    assert "<" not in rule, rule
    return rule


def own_routes(web: Web) -> list[bottle.Route]:
    return [r for r in web.app.routes if r.app is web.app]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Web:
    """A set-up server with an administrator and a user (shared: the tests below change nothing)."""
    return set_up_web(tmp_path_factory.mktemp("site"))


@pytest.fixture
def fresh(tmp_path: Path) -> Web:
    """A server of its own, set up, with an administrator and a user."""
    return set_up_web(tmp_path)


# -- the policy table ------------------------------------------------------------------------


def test_every_route_has_a_policy_and_the_wizard_is_behind_the_claim_gate(site: Web) -> None:
    routes = own_routes(site)
    assert len(routes) > 40
    for route in routes:
        policy = site.policies.get(route)
        assert policy is not None, (route.method, route.rule)
        assert policy.csrf, (route.method, route.rule)  # no route of the UI is exempt today
        # the claim gate is the /wizard prefix (app.Web._before): the two must agree
        assert (policy.access is Access.SETUP) == route.rule.startswith("/wizard"), route.rule
    anonymous = {(r.method, r.rule) for r in routes if site.policies[r].access is Access.ANYONE}
    assert anonymous == ANONYMOUS
    assert all(
        site.policies[r].access is Access.USER for r in routes if r.rule.startswith("/mail/") and "config" not in r.rule
    )


def test_the_route_tables_are_data_and_every_lazy_handler_resolves(site: Web) -> None:
    """Every handler is named "module:function" (imported on its route's first request): each name
    resolves to a module-level function of that module, so a typo fails here, not on a click."""
    for table in (*routes.TABLES, wizardsteps.routes()):
        for r in table:
            handler = r.handler.func if isinstance(r.handler, functools.partial) else r.handler
            assert isinstance(handler, LazyHandler), (r.method, r.path)
    assert len(LazyHandler.made) > 150  # the tables, the wizard's steps, the chat's files, over_http
    for handler in LazyHandler.made:
        fn = handler.resolve()
        module, _, name = handler.target.partition(":")
        assert fn.__module__ == module and fn.__qualname__ == name, handler.target
    with pytest.raises(ModuleNotFoundError):
        lazy("gk.web.no_such_page:index")  # at start, when the table is built
    with pytest.raises(AttributeError):
        LazyHandler("gk.web.account:no_such_handler").resolve()
    LazyHandler.made.pop()
    for module in (account, admin, clientsetup, dashboard, diagnosis, maildelivery, wizard):
        # who may call a route is the policy's business (app.Web._before), not the handler's
        source = Path(str(module.__file__)).read_text()
        assert "require_user" not in source and "require_admin" not in source, module.__name__
    table = {(r.method if isinstance(r.method, str) else "+".join(r.method), r.path) for r in wizardsteps.routes()}
    assert ("GET+POST", "/wizard/host") in table and ("POST", "/wizard/claim/button") in table
    assert all(r.policy is SETUP for r in wizardsteps.routes())
    assert site.recovery_paths == RECOVERY_PATHS  # derived from the steps that owner recovery serves


def test_anonymous_reaches_only_the_anonymous_routes(site: Web) -> None:
    for route in own_routes(site):
        if route.method not in ("GET", "POST") or route.rule.startswith("/wizard"):
            continue
        c = Client(site)
        c.get("/login")  # a session and its token: the POST reaches the policy, not the CSRF check
        resp = c.request(route.method, concrete(route.rule), form={"csrf": c.csrf} if route.method == "POST" else None)
        where = (route.method, route.rule, resp.status, resp.location)
        if (route.method, route.rule) in ANONYMOUS:
            assert not resp.location.startswith("/login?next="), where
        else:
            assert resp.status == 303 and resp.location.endswith("/login?next=" + concrete(route.rule)), where


def test_a_user_is_refused_every_admin_route(site: Web) -> None:
    c = signed_in(site, USER, USER_PW)
    admin_routes = [r for r in own_routes(site) if site.policies[r].access is Access.ADMIN]
    assert {r.rule for r in admin_routes} >= {"/dashboard", "/api/status", "/admin/users", "/admin/mail"}
    for route in admin_routes:
        resp = c.request(route.method, concrete(route.rule), form={"csrf": c.csrf} if route.method == "POST" else None)
        assert resp.status == 403 and "administrators only" in resp.text, (route.method, route.rule)


def test_every_post_without_the_csrf_token_is_403(site: Web) -> None:
    c = signed_in(site, ADMIN, ADMIN_PW)
    posts = [r for r in own_routes(site) if r.method == "POST" and not r.rule.startswith("/wizard")]
    assert len(posts) > 20
    users_before = [u.address for u in site.ctx.accounts.list_users()]
    for route in posts:
        form = {"address": "eve@test.example", "password": "eve password 12345", "timezone": "Asia/Tokyo"}
        resp = c.post(concrete(route.rule), form, csrf=False)
        assert resp.status == 403 and "CSRF" in resp.text, (route.rule, resp.status)
        resp = c.request("POST", concrete(route.rule), form={**form, "csrf": "forged"})
        assert resp.status == 403, route.rule
    assert [u.address for u in site.ctx.accounts.list_users()] == users_before
    assert settings.of(site.data_dir).timezone() != "Asia/Tokyo"


def test_wizard_posts_without_the_csrf_token_are_403(tmp_path: Path) -> None:
    web = make_web(tmp_path)
    code = claim.ensure_setup_code(web.data_dir)
    c = Client(web)
    c.get("/wizard/claim")
    for route in wizardsteps.routes():
        for method in [route.method] if isinstance(route.method, str) else route.method:
            if method == "POST":
                resp = c.request("POST", route.path, form={"code": str(code)})
                assert resp.status == 403, route.path
    assert claim.state(web.data_dir) == claim.UNCLAIMED


# -- each area ----------------------------------------------------------------------------


def test_account_login_language_and_app_passwords(fresh: Web) -> None:
    c = Client(fresh)
    assert c.get("/").location.endswith("/login")
    c.get("/login")
    resp = c.post("/login", {"address": USER, "password": "wrong one", "next": "/account"})
    assert resp.status == 401 and "Wrong address or password" in resp.text
    resp = c.post("/login", {"address": USER, "password": USER_PW, "next": "//evil.example"})
    assert resp.status == 303 and resp.location == "https://gk.test.example:8443/"  # only local paths
    assert c.get("/").location.endswith("/mail")
    c.get("/account")
    assert c.post("/account/language", {"language": "fr"}).location.endswith("/account")
    page = c.get("/account").text
    assert 'lang="fr"' in page
    resp = c.post("/account/app-passwords", {"name": "phone"})
    assert resp.status == 303 and resp.location.endswith("/account#app-passwords")
    page = c.get("/account").text  # the new password, shown once
    assert re.search(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", page)
    assert not re.search(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", c.get("/account").text)
    (app,) = fresh.ctx.accounts.list_app_passwords(USER)
    assert c.post(f"/account/app-passwords/{app['id']}/delete").status == 400  # not confirmed
    assert len(fresh.ctx.accounts.list_app_passwords(USER)) == 1
    assert c.post(f"/account/app-passwords/{app['id']}/delete", {"confirm": "1"}).status == 303
    assert fresh.ctx.accounts.list_app_passwords(USER) == []
    assert c.post(f"/account/app-passwords/{app['id']}/delete", {"confirm": "1"}).status == 404
    resp = c.post("/logout")
    assert resp.location.endswith("/login") and c.get("/account").location.endswith("/login?next=/account")


def test_admin_users_and_settings(fresh: Web) -> None:
    c = signed_in(fresh, ADMIN, ADMIN_PW)
    resp = c.post("/admin/users", {"address": "carol@test.example", "password": "carol password 1"})
    assert resp.status == 303 and resp.location.endswith("/admin/users")
    assert "Added carol@test.example" in c.get("/admin/users").text
    assert fresh.ctx.accounts.get_user("carol@test.example") is not None
    assert c.post("/admin/users", {"address": "not an address", "password": "x"}).status == 400
    assert c.post(f"/admin/users/{ADMIN}/delete").status == 400  # not one's own account
    assert c.post("/admin/users/nobody@test.example/password", {"password": "whatever 12345"}).status == 404
    bob = signed_in(fresh, USER, USER_PW)
    assert c.post(f"/admin/users/{USER}/password", {"password": "a new one 12345"}).status == 303
    assert bob.get("/account").location.endswith("/login?next=/account")  # the user's sessions ended
    assert c.post("/admin/users/carol@test.example/delete").status == 400  # not confirmed
    assert c.post("/admin/users/carol@test.example/delete", {"confirm": "1"}).status == 303
    assert fresh.ctx.accounts.get_user("carol@test.example") is None
    assert c.post("/admin/settings", {"timezone": "Mars/Olympus"}).status == 400
    assert c.post("/admin/settings", {"timezone": "Europe/Paris"}).status == 303
    assert "<option selected>Europe/Paris</option>" in c.get("/admin/settings").text


def test_dashboard_and_its_apis(site: Web) -> None:
    c = signed_in(site, ADMIN, ADMIN_PW)
    assert c.get("/dashboard").status == 200
    resp = c.get("/api/status")
    assert resp.status == 200 and resp.header("Content-Type").startswith("application/json")
    assert {"listeners", "disk", "memory", "uptime"} <= set(json.loads(resp.text))
    resp = c.get("/api/mail/queue")
    assert resp.status == 503 and "not running" in json.loads(resp.text)["error"]


def test_mail_delivery_and_diagnosis_pages(site: Web) -> None:
    c = signed_in(site, ADMIN, ADMIN_PW)
    page = c.get("/admin/mail").text
    assert "test.example" in page and "v=spf1" in page
    assert c.post("/admin/mail/queue/1/retry").status == 503  # no queue in-process
    resp = c.post("/admin/mail/smarthost", {"mode": "relay", "host": "", "port": "587"})
    assert resp.status == 400
    assert c.get("/admin/diagnosis").status == 200


def test_client_setup_routes(site: Web) -> None:
    c = Client(site)
    resp = c.get(f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={USER}")
    assert resp.status == 200 and "<incomingServer" in resp.text and "gk.test.example" in resp.text
    for method, path in (("GET", "/.well-known/caldav"), ("PROPFIND", "/.well-known/carddav"), ("PROPFIND", "/")):
        resp = c.request(method, path)
        assert resp.status == 301 and resp.location.endswith("/dav/"), path
    assert c.get("/.well-known/acme-challenge/nothing").status == 404
    c = signed_in(site, USER, USER_PW)
    assert "993" in c.get("/devices").text
    resp = c.get("/devices/gk.mobileconfig")
    assert resp.status == 200 and resp.header("Content-Type") == "application/x-apple-aspen-config"


# -- the wizard as a list of steps ------------------------------------------------------


def test_the_wizard_steps_in_order() -> None:
    ids = [s.id for s in wizardsteps.STEPS]
    assert ids == ["claim", "password", "admin", "host", "timezone", "tls", "users", "dns", "outgoing", "ai", "summary"]
    assert [s.id for s in wizardsteps.STEPS if s.recovery] == ["claim", "password"]
    assert [s.id for s in wizardsteps.STEPS if not s.setup] == ["password"]
    assert all(s.title for s in wizardsteps.STEPS if s.setup)
    extra = wizardsteps.WizardStep("chat", "Chat", lambda web: "chat")
    assert [s.id for s in wizardsteps.with_step(wizardsteps.STEPS, extra)][-3:] == ["ai", "chat", "summary"]


def test_the_whole_wizard_in_process(tmp_path: Path) -> None:
    web = make_web(tmp_path)
    code = claim.ensure_setup_code(web.data_dir)
    c = Client(web)
    assert c.get("/dashboard").location.endswith("/wizard")
    assert c.get("/wizard/host").location.endswith("/wizard/claim")  # not the claimant yet
    c.get("/wizard/claim")
    assert c.post("/wizard/claim", {"code": "AAAA-BBBB-CCCC"}).status == 400
    assert c.post("/wizard/claim", {"code": str(code)}).location.endswith("/wizard/admin")
    assert c.get("/wizard/host").location.endswith("/wizard/admin")  # no administrator yet
    c.get("/wizard/admin")
    resp = c.post("/wizard/admin", {"address": ADMIN, "password": ADMIN_PW, "password2": ADMIN_PW})
    assert resp.location.endswith("/wizard/host")
    page = c.get("/wizard/host").text
    # the host name is suggested from the administrator's domain, never the machine's own name
    assert 'name="hostname" type="text" value="mail.test.example"' in page, page
    assert '<a href="/wizard/claim">' not in page  # no way back into the claim
    assert '<p class="back"><a href="/wizard/admin">' in page
    nexts = [
        ("/wizard/host", {"hostname": "mail.test.example", "domain": "test.example"}, "/wizard/timezone"),
        ("/wizard/timezone", {"timezone": "Europe/Paris"}, "/wizard/tls"),
        ("/wizard/tls", {}, "/wizard/users"),
        ("/wizard/users", {"action": "continue"}, "/wizard/dns"),
        ("/wizard/dns", {}, "/wizard/outgoing"),
        ("/wizard/outgoing", {"mode": "direct"}, "/wizard/ai"),
        ("/wizard/ai", {"model": "none"}, "/wizard/summary"),
    ]
    for path, form, target in nexts:
        resp = c.post(path, form)
        assert resp.status == 303 and resp.location.endswith(target), (path, resp.status, resp.text[-300:])
    page = c.get("/wizard/tls").text  # a done step, revisited: Back and the progress lead to earlier ones
    assert '<p class="back"><a href="/wizard/timezone">' in page and '<a href="/wizard/host">' in page
    assert '<a class="edit" href="/wizard/outgoing"' in c.get("/wizard/summary").text
    assert c.get("/wizard").location.endswith("/wizard/summary")
    assert c.post("/wizard/summary").location.endswith("/dashboard")
    assert claim.state(web.data_dir) == claim.COMPLETE
    assert c.get("/wizard/host").status == 404 and c.get("/dashboard").status == 200


def test_a_feature_step_is_one_entry(tmp_path: Path) -> None:
    """A step added to the list is served, sent to while not done, and reached after the one before it."""
    from gk.web import service

    def chat_step(web: Web) -> str:
        if bottle.request.method == "POST":
            wizard.mark(web, "chat")
            raise bottle.redirect(wizard.after(web, "chat"))
        return "chat step"

    steps = wizardsteps.with_step(wizardsteps.STEPS, wizardsteps.WizardStep("chat", "Chat", chat_step))
    web = service.build(make_context(tmp_path), steps)
    code = claim.ensure_setup_code(web.data_dir)
    c = Client(web)
    c.get("/wizard/claim")
    c.post("/wizard/claim", {"code": str(code)})
    c.get("/wizard/admin")
    c.post("/wizard/admin", {"address": ADMIN, "password": ADMIN_PW, "password2": ADMIN_PW})
    for step in ("host", "timezone", "tls", "users", "dns", "outgoing"):
        wizard.mark(web, step)
    assert c.get("/wizard").location.endswith("/wizard/ai")
    c.get("/wizard/host")
    assert c.post("/wizard/ai", {"model": "none"}).location.endswith("/wizard/chat")
    assert c.get("/wizard").location.endswith("/wizard/chat")
    assert c.get("/wizard/chat").text == "chat step"
    assert c.post("/wizard/chat").location.endswith("/wizard/summary")
    page = c.get("/wizard/tls").text  # a done step, revisited: Back and the progress lead to earlier ones
    assert '<p class="back"><a href="/wizard/timezone">' in page and '<a href="/wizard/host">' in page
    assert '<a class="edit" href="/wizard/outgoing"' in c.get("/wizard/summary").text
    assert c.get("/wizard").location.endswith("/wizard/summary")


def test_the_wizard_over_plain_http_only_sends_to_https(tmp_path: Path) -> None:
    web = make_web(tmp_path)
    code = claim.ensure_setup_code(web.data_dir)
    c = Client(web, https=False)
    resp = c.get("/wizard/claim")
    assert resp.status == 200 and "https://gk.test.example:8443/wizard/claim" in resp.text
    assert str(code) not in resp.text
    resp = c.post("/wizard/claim", {"code": str(code)})
    assert resp.status == 403 and claim.state(web.data_dir) == claim.UNCLAIMED


def test_the_claim_gate_refuses_outside_the_lan(tmp_path: Path) -> None:
    web = make_web(tmp_path)
    claim.ensure_setup_code(web.data_dir)
    c = Client(web, remote="203.0.113.7")
    for path in ("/wizard/claim", "/login", "/"):
        resp = c.get(path)
        assert resp.status == 403 and "local network" in resp.text, path
    assert c.get("/static/gk.css").status == 200  # static files are outside the gate


def test_admin_adds_a_user_on_a_new_domain_only_when_confirmed_never_on_a_public_provider(fresh: Web) -> None:
    accounts = fresh.ctx.accounts
    c = signed_in(fresh, ADMIN, ADMIN_PW)
    resp = c.post("/admin/users", {"address": "mom@family.example", "password": "mom password 123"})
    assert resp.status == 400 and "not a mail domain of this box yet" in resp.text
    assert 'name="new_domain" value="family.example"' in resp.text  # the question, as a checkbox
    assert accounts.get_user("mom@family.example") is None and not accounts.is_local_domain("family.example")
    # a confirmation for another domain than the address's does not count
    form = {"address": "mom@family.example", "password": "mom password 123", "new_domain": "test.example"}
    assert c.post("/admin/users", form).status == 400
    resp = c.post("/admin/users", {**form, "new_domain": "family.example"})
    assert resp.status == 303 and accounts.get_user("mom@family.example") is not None
    assert accounts.is_local_domain("family.example")
    # gmail.com is refused even when "confirmed": the household could no longer mail anyone there
    form = {"address": "mom@gmail.com", "password": "mom password 123", "new_domain": "gmail.com"}
    resp = c.post("/admin/users", form)
    assert resp.status == 400 and "public mail provider" in resp.text
    assert accounts.get_user("mom@gmail.com") is None and not accounts.is_local_domain("gmail.com")
    assert c.post("/admin/domains", {"domain": "outlook.fr"}).status == 400
    # domains are listed, added and removed explicitly; one in use cannot be removed
    resp = c.post("/admin/domains", {"domain": "Shop.Example"})
    assert resp.status == 303 and accounts.is_local_domain("shop.example")
    assert "shop.example is now a mail domain" in c.get("/admin/users").text
    assert c.post("/admin/domains/family.example/delete", {"confirm": "1"}).status == 400
    assert c.post("/admin/domains/shop.example/delete").status == 400  # not confirmed
    assert c.post("/admin/domains/shop.example/delete", {"confirm": "1"}).status == 303
    assert not accounts.is_local_domain("shop.example")
    assert "shop.example is no longer a mail domain" in c.get("/admin/users").text  # the flash, once
    page = c.get("/admin/users").text
    assert "family.example" in page and "test.example" in page and "shop.example" not in page
    # French
    c.post("/account/language", {"language": "fr"})
    resp = c.post("/admin/users", {"address": "dad@other.example", "password": "dad password 123"})
    assert resp.status == 400 and "pas encore un domaine" in resp.text


def test_admin_changes_the_host_name_live_and_the_certificate_follows(fresh: Web) -> None:
    from gk.mail.delivery import get_delivery
    from gk.security.tls import certificate_names

    ctx = fresh.ctx
    assert "mail.new.example" not in certificate_names(ctx.tls.cert)
    c = signed_in(fresh, ADMIN, ADMIN_PW)
    page = c.get("/admin/settings").text
    assert 'name="hostname" type="text" value="gk.test.example"' in page
    resp = c.post("/admin/settings/host", {"hostname": "not a host", "domain": "gmail.com"})
    assert resp.status == 400 and "public mail provider" in resp.text and ctx.hostname == "gk.test.example"
    resp = c.post("/admin/settings/host", {"hostname": "Mail.New.Example", "domain": "new.example"})
    assert resp.status == 303 and "Host name and mail domain saved." in c.get("/admin/settings").text
    # no restart: the running context (greetings, Received headers) and the certificate follow;
    # the authserv-id of Authentication-Results stays (older mail stays verified)
    assert ctx.hostname == "mail.new.example" and get_delivery(ctx).authserv_id == "gk.test.example"
    assert "mail.new.example" in certificate_names(ctx.tls.cert)
    assert settings.of(fresh.data_dir).mail_domain() == "new.example" and ctx.accounts.is_local_domain("new.example")
    assert 'value="mail.new.example"' in c.get("/admin/settings").text


def test_the_language_switch_before_signing_in_is_kept(tmp_path: Path) -> None:
    """Issue 10: a language switch on the claim, login and wizard pages (a cookie until there is
    an account to keep it); a signed-in user's own setting wins over it."""
    web = make_web(tmp_path)
    claim.ensure_setup_code(web.data_dir)
    c = Client(web)
    page = c.get("/wizard/claim").text
    assert 'href="?lang=fr"' in page and 'lang="en"' in page
    page = c.get("/wizard/claim?lang=fr").text
    assert '<html lang="fr">' in page and c.cookies.get("gk_lang") == "fr"
    assert '<html lang="fr">' in c.get("/wizard/claim").text  # kept
    assert '<html lang="en">' in c.get("/wizard/claim?lang=en").text
    assert '<html lang="en">' in c.get("/wizard/claim?lang=xx").text  # unknown: ignored
    complete_setup(web)
    web.ctx.accounts.add_user(USER, USER_PW)
    web.ctx.accounts.set_profile(USER, language="en")
    c = Client(web)
    assert '<html lang="fr">' in c.get("/login?lang=fr").text
    c.login(USER, USER_PW)
    assert '<html lang="en">' in c.get("/account").text  # the account's own language


def test_every_security_event_has_a_name_on_the_dashboard() -> None:
    """The dashboard shows each recorded kind by a translated name, never the raw key."""
    from gk.web.dashboard import EVENT_NAMES

    root = Path(__file__).resolve().parents[2] / "appliance" / "gk"
    kinds = set()
    for source in root.rglob("*.py"):
        kinds |= set(re.findall(r'record_event\(\s*"([a-z_]+)"', source.read_text()))
    assert kinds and kinds <= set(EVENT_NAMES), sorted(kinds - set(EVENT_NAMES))


def test_every_page_links_the_icon_and_it_is_served_before_the_claim(tmp_path: Path) -> None:
    """Without an icon link, browsers probe /favicon.ico: a 404 in the console of every page
    (behind the claim gate, a redirect to the wizard)."""
    web = make_web(tmp_path)
    claim.ensure_setup_code(web.data_dir)
    c = Client(web)
    page = c.get("/wizard/claim")
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page.text
    icon = c.get("/static/favicon.svg")
    assert icon.status == 200 and icon.header("Content-Type").startswith("image/svg+xml")
    assert icon.text.startswith("<svg") and "GK</text>" in icon.text
