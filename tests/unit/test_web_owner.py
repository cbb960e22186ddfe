"""Issue 10, the owner's pages in-process (``support.wsgiclient``: real WSGI calls, real SQLite):
post/redirect/get with a one-time message on every admin and account form, destructive actions
that must be confirmed, the Users page (display names, the administrator flag, aliases), the
common-password check, the dashboard's next steps after Finish, and the way back for an owner who
lost the browser that claimed the box.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.wsgiclient import ADMIN, ADMIN_PW, USER, USER_PW, Client, make_web, set_up_web, signed_in

from gk import claim, settings
from gk.accounts import AccountError
from gk.diagnosis import Finding
from gk.web import diagnosis
from gk.web.app import Web


@pytest.fixture
def web(tmp_path: Path) -> Web:
    return set_up_web(tmp_path)


def notices(page: str) -> list[str]:
    return re.findall(r'<p class="notice" role="status">([^<]*)</p>', page)


# -- post/redirect/get ------------------------------------------------------------------------


def test_every_admin_and_account_form_redirects_with_a_message_shown_once(web: Web) -> None:
    c = signed_in(web, ADMIN, ADMIN_PW)
    posts = [
        ("/admin/users", {"address": "carol@test.example", "password": "carol password 1"}, "/admin/users"),
        ("/admin/users/carol@test.example/profile", {"display_name": "Carol"}, "/admin/users"),
        ("/admin/users/carol@test.example/password", {"password": "another carol pass"}, "/admin/users"),
        ("/admin/aliases", {"alias": "c@test.example", "target": "carol@test.example"}, "/admin/users#aliases"),
        ("/admin/aliases/c@test.example/delete", {"confirm": "1"}, "/admin/users#aliases"),
        ("/admin/users/carol@test.example/delete", {"confirm": "1"}, "/admin/users"),
        ("/admin/domains", {"domain": "shop.example"}, "/admin/users#domains"),
        ("/admin/domains/shop.example/delete", {"confirm": "1"}, "/admin/users#domains"),
        ("/admin/settings", {"timezone": "Europe/Paris"}, "/admin/settings"),
        ("/admin/settings/host", {"hostname": "mail.test.example", "domain": "test.example"}, "/admin/settings#host"),
        ("/account/password", {"current": ADMIN_PW, "password": "a newer passphrase", "password2": "a newer passphrase"}, "/account"),
        ("/account/language", {"language": "en"}, "/account"),
    ]  # fmt: skip
    for path, form, target in posts:
        resp = c.post(path, form)
        assert resp.status == 303, (path, resp.status, resp.text[-400:])
        assert resp.location.endswith(target), (path, resp.location)
        page = c.get(target.partition("#")[0]).text
        assert len(notices(page)) == 1, (path, notices(page))
        assert notices(c.get(target.partition("#")[0]).text) == [], path  # a reload shows it no more


def test_validation_errors_rerender_with_4xx_and_the_values_entered(web: Web) -> None:
    c = signed_in(web, ADMIN, ADMIN_PW)
    resp = c.post(
        "/admin/users", {"address": "carol@test.example", "display_name": "Carol Dupont", "password": "short"}
    )
    assert resp.status == 400 and 'class="field-error"' in resp.text
    assert 'value="carol@test.example"' in resp.text and 'value="Carol Dupont"' in resp.text
    resp = c.post("/admin/aliases", {"alias": "nobody@", "target": USER})
    assert resp.status == 400 and 'value="nobody@"' in resp.text
    resp = c.post("/admin/settings/host", {"hostname": "not a host", "domain": "test.example"})
    assert resp.status == 400 and 'value="not a host"' in resp.text
    resp = c.post("/admin/settings/certificate", {"acme": "1", "email": "not-an-address"})
    assert resp.status == 400 and 'value="not-an-address"' in resp.text and not web.ctx.config.acme.enabled
    resp = c.post("/account/password", {"current": "wrong", "password": "x" * 12, "password2": "x" * 12})
    assert resp.status == 400 and 'class="field-error"' in resp.text


def test_the_new_app_password_and_token_are_shown_once_after_the_redirect(web: Web) -> None:
    c = signed_in(web, USER, USER_PW)
    resp = c.post("/account/tokens", {"label": "laptop", "mail": "read", "mcp": "1"})
    assert resp.status == 303 and resp.location.endswith("/account#api-tokens")
    page = c.get("/account").text
    token = re.search(r'id="new-api-token">([^<]+)<', page)
    assert token and len(token.group(1)) > 20
    assert 'id="new-api-token"' not in c.get("/account").text
    (info,) = [t for t in re.findall(r"/account/tokens/(\d+)/delete", page)]
    assert c.post(f"/account/tokens/{info}/delete").status == 400  # not confirmed: kept
    assert f"/account/tokens/{info}/delete" in c.get("/account").text
    # another user's token is not found, confirmed or not
    other = signed_in(web, ADMIN, ADMIN_PW)
    assert other.post(f"/account/tokens/{info}/delete", {"confirm": "1"}).status == 404
    assert c.post(f"/account/tokens/{info}/delete", {"confirm": "1"}).status == 303
    assert f"/account/tokens/{info}/delete" not in c.get("/account").text


def test_destructive_actions_need_the_confirmation(web: Web) -> None:
    accounts = web.ctx.accounts
    c = signed_in(web, ADMIN, ADMIN_PW)
    accounts.add_alias("b@test.example", USER)
    for path in (f"/admin/users/{USER}/delete", "/admin/aliases/b@test.example/delete"):
        resp = c.post(path)
        assert resp.status == 400 and "Tick the box to confirm" in resp.text, path
    assert accounts.get_user(USER) is not None and accounts.list_aliases() == [("b@test.example", USER)]
    page = c.get("/admin/users").text
    assert page.count('name="confirm" value="1" required') >= 2  # the user's (not one's own) and the alias's


# -- the Users page -----------------------------------------------------------------------------


def test_display_names_the_admin_flag_and_aliases(web: Web) -> None:
    accounts = web.ctx.accounts
    c = signed_in(web, ADMIN, ADMIN_PW)
    bob = signed_in(web, USER, USER_PW)
    assert bob.get("/admin/users").status == 403
    resp = c.post(f"/admin/users/{USER}/profile", {"display_name": "Bob Martin", "admin": "1"})
    assert resp.status == 303
    user = accounts.get_user(USER)
    assert user is not None and user.display_name == "Bob Martin" and user.is_admin
    assert bob.get("/admin/users").location.endswith("/login?next=/admin/users")  # rights changed: sign in again
    page = c.get("/admin/users").text
    assert "Bob Martin" in page
    # one's own administrator flag cannot be dropped (no lock-out)
    resp = c.post(f"/admin/users/{ADMIN}/profile", {"display_name": "Owner"})
    assert resp.status == 400 and "your own administrator rights" in resp.text
    assert accounts.get_user(ADMIN).is_admin  # type: ignore[union-attr]
    c.post(f"/admin/users/{USER}/profile", {"display_name": "Bob Martin"})
    assert not accounts.get_user(USER).is_admin  # type: ignore[union-attr]
    # aliases: listed under their user; mail to one resolves to the user
    assert c.post("/admin/aliases", {"alias": "Robert@Test.Example", "target": USER}).status == 303
    assert accounts.resolve_recipient("robert@test.example") == accounts.get_user(USER)
    assert 'class="tag alias">robert@test.example<' in c.get("/admin/users").text
    # an alias on a new domain asks first; a public provider's never; a user's address cannot be one
    resp = c.post("/admin/aliases", {"alias": "bob@family.example", "target": USER})
    assert resp.status == 400 and 'name="new_domain" value="family.example"' in resp.text
    resp = c.post("/admin/aliases", {"alias": "bob@family.example", "target": USER, "new_domain": "family.example"})
    assert resp.status == 303 and accounts.resolve_recipient("bob@family.example") == accounts.get_user(USER)
    form = {"alias": "bob@gmail.com", "target": USER, "new_domain": "gmail.com"}
    assert c.post("/admin/aliases", form).status == 400 and not accounts.is_local_domain("gmail.com")
    assert c.post("/admin/aliases", {"alias": ADMIN, "target": USER}).status == 400
    assert c.post("/admin/aliases/nothing@test.example/delete", {"confirm": "1"}).status == 404
    assert c.post("/admin/aliases/robert@test.example/delete", {"confirm": "1"}).status == 303
    assert accounts.resolve_recipient("robert@test.example") is None


def test_the_quota_is_set_on_the_users_page(web: Web) -> None:
    c = signed_in(web, ADMIN, ADMIN_PW)
    resp = c.post(f"/admin/users/{USER}/profile", {"display_name": "", "quota": "250"})
    assert resp.status == 303 and web.ctx.accounts.get_user(USER).quota_mb == 250  # type: ignore[union-attr]
    page = c.get("/admin/users").text
    assert (
        'data-quota="250"' in page
        and 'name="quota" type="number" min="0" step="1" inputmode="numeric" value="250"' in page
    )
    for bad in ("-1", "lots", "99999999999"):
        resp = c.post(f"/admin/users/{USER}/profile", {"display_name": "", "quota": bad})
        assert resp.status == 400 and "number of MB" in resp.text, bad
    assert web.ctx.accounts.get_user(USER).quota_mb == 250  # type: ignore[union-attr]
    assert c.post(f"/admin/users/{USER}/profile", {"display_name": "", "quota": "0"}).status == 303
    assert web.ctx.accounts.get_user(USER).quota_mb == 0  # type: ignore[union-attr]


def test_the_forward_is_set_on_the_users_page(web: Web) -> None:
    accounts = web.ctx.accounts
    c = signed_in(web, ADMIN, ADMIN_PW)
    form = {"display_name": "", "forward_to": "Bob@Elsewhere.Example"}  # "keep a copy" unticked
    assert c.post(f"/admin/users/{USER}/profile", form).status == 303
    user = accounts.get_user(USER)
    assert user is not None and user.forward_to == "bob@elsewhere.example" and not user.forward_keep
    assert 'class="tag forward">→ bob@elsewhere.example<' in c.get("/admin/users").text
    accounts.add_alias("robert@test.example", USER)
    for bad in ("not an address", USER, "robert@test.example"):  # malformed, or back to itself
        resp = c.post(f"/admin/users/{USER}/profile", {"display_name": "", "forward_to": bad, "forward_keep": "1"})
        assert resp.status == 400, bad
    assert accounts.get_user(USER).forward_to == "bob@elsewhere.example"  # type: ignore[union-attr]
    assert c.post(f"/admin/users/{USER}/profile", {"display_name": "", "forward_to": ""}).status == 303
    user = accounts.get_user(USER)
    assert user is not None and user.forward_to == "" and user.forward_keep  # no forward: mail stays here


# -- the common-password check -------------------------------------------------------------------


@pytest.mark.parametrize("password", ["password1", "qwertyuiop", "iloveyou2", "carol2024", "11111111"])
def test_common_passwords_are_refused_everywhere(web: Web, password: str) -> None:
    accounts = web.ctx.accounts
    with pytest.raises(AccountError, match="too easy to guess"):
        accounts.add_user("carol@test.example", password)
    with pytest.raises(AccountError, match="too easy to guess"):
        accounts.set_password(USER, password)
    c = signed_in(web, ADMIN, ADMIN_PW)
    resp = c.post("/admin/users", {"address": "carol@test.example", "password": password})
    assert resp.status == 400 and "too easy to guess" in resp.text
    c.post("/account/language", {"language": "fr"})
    resp = c.post("/account/password", {"current": ADMIN_PW, "password": password, "password2": password})
    assert resp.status == 400 and "trop facile à deviner" in resp.text


def test_the_rule_shown_is_the_rule_enforced(web: Web) -> None:
    c = signed_in(web, ADMIN, ADMIN_PW)
    for path in ("/admin/users", "/account"):
        assert "at least 8 characters, and not a common or easily guessed password" in c.get(path).text, path
    # a passphrase of unrelated words passes, however plain its characters
    web.ctx.accounts.add_user("carol@test.example", "lamp orbit seventh gravel")


def test_the_wizard_admin_step_refuses_a_common_password(tmp_path: Path) -> None:
    web = make_web(tmp_path)
    code = claim.ensure_setup_code(web.data_dir)
    c = Client(web)
    c.get("/wizard/claim")
    c.post("/wizard/claim", {"code": str(code)})
    page = c.get("/wizard/admin").text
    assert "not a common or easily guessed password" in page
    resp = c.post("/wizard/admin", {"address": ADMIN, "password": "Password123", "password2": "Password123"})
    assert resp.status == 400 and "too easy to guess" in resp.text and web.ctx.accounts.get_user(ADMIN) is None
    # the wizard's users step redirects after adding too (a reload adds nobody twice)
    assert c.post("/wizard/admin", {"address": ADMIN, "password": ADMIN_PW, "password2": ADMIN_PW}).status == 303
    c.get("/wizard/users")
    resp = c.post("/wizard/users", {"action": "add", "address": USER, "password": "qwerty123"})
    assert resp.status == 400 and "too easy to guess" in resp.text and 'value="bob@test.example"' in resp.text
    resp = c.post("/wizard/users", {"action": "add", "address": USER, "password": USER_PW})
    assert resp.status == 303 and resp.location.endswith("/wizard/users")
    assert notices(c.get("/wizard/users").text) == ["Added bob@test.example."]
    assert notices(c.get("/wizard/users").text) == []


# -- next steps after Finish --------------------------------------------------------------------


def test_next_steps_tick_from_what_the_box_saw_and_can_be_hidden(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.of(web.data_dir).update(mail_domain="family.example")
    c = signed_in(web, ADMIN, ADMIN_PW)
    page = c.get("/dashboard").text
    steps = re.findall(r'<li class="(done|todo)" data-step="(\w+)"', page)
    assert steps == [("todo", "dns"), ("todo", "check"), ("done", "people"), ("todo", "device"), ("todo", "mail")]
    # the diagnosis saw the MX record right and no DNS error
    findings = [
        Finding("dns", "dns:MX:family.example", "ok", "MX"),
        Finding("dns", "dns:TXT:family.example", "ok", "SPF"),
    ]
    monkeypatch.setattr(diagnosis, "_last", {"findings": findings, "when": 0.0})
    # a phone signed in with an app password
    accounts = web.ctx.accounts
    app_id = accounts.add_app_password(USER, "phone", "abcd-efgh-ijkm-npqr")
    assert web.ctx.auth.login(USER, "abcd-efgh-ijkm-npqr", "192.0.2.5", "imap").ok
    assert accounts.list_app_passwords(USER)[0]["id"] == app_id
    page = c.get("/dashboard").text
    steps = re.findall(r'<li class="(done|todo)" data-step="(\w+)"', page)
    assert steps == [("done", "dns"), ("done", "check"), ("done", "people"), ("done", "device"), ("todo", "mail")]
    # a tick once seen is kept (the diagnosis findings are in memory only)
    monkeypatch.setattr(diagnosis, "_last", {})
    assert re.findall(r'<li class="done" data-step="(\w+)"', c.get("/dashboard").text) == [
        "dns",
        "check",
        "people",
        "device",
    ]
    resp = c.post("/next-steps/dismiss")
    assert resp.status == 303 and resp.location.endswith("/dashboard")
    assert 'id="next-steps"' not in c.get("/dashboard").text
    assert Client(web).post("/next-steps/dismiss").status == 403  # no session, no CSRF token


def test_a_lan_only_box_shows_the_steps_that_apply(web: Web) -> None:
    settings.of(web.data_dir).update(mail_domain="home.lan")
    c = signed_in(web, ADMIN, ADMIN_PW)
    c.post("/account/language", {"language": "fr"})
    page = c.get("/dashboard").text
    assert re.findall(r'data-step="(\w+)"', page) == ["people", "device", "mail"]
    assert "Prochaines étapes" in page and "Envoyer un courriel de test" in page


# -- the way back after losing the claiming browser ---------------------------------------------


def test_losing_the_browser_mid_setup_explains_the_way_back(tmp_path: Path) -> None:
    web = make_web(tmp_path)
    code = claim.ensure_setup_code(web.data_dir)
    first = Client(web)
    first.get("/wizard/claim")
    assert first.post("/wizard/claim", {"code": str(code)}).location.endswith("/wizard/admin")
    other = Client(web)  # the owner's other browser, the first one lost
    resp = other.get("/wizard/claim")
    assert resp.status == 403
    assert "gk claim recover" in resp.text and "10 seconds" in resp.text and "30 seconds" in resp.text
    assert "déjà en cours" in other.get("/wizard/claim?lang=fr").text
    new_code = claim.open_recovery(web.data_dir)  # what gk claim recover (or the 10 s hold) does
    resp = other.get("/wizard/claim")
    assert resp.status == 200 and 'name="code"' in resp.text
    assert other.post("/wizard/claim", {"code": new_code}).location.endswith("/wizard/admin")


def test_a_browser_that_lost_the_box_to_a_newer_claim_is_no_claimant(tmp_path: Path) -> None:
    """Claim generations: the first browser claims, the owner reclaims from another device (setup
    code from ``gk claim recover``); the first browser, coming back with its old session, is sent
    to the claim page and told the way back — during setup and after it, in recovery."""
    web = make_web(tmp_path)
    code = claim.ensure_setup_code(web.data_dir)
    first = Client(web)
    first.get("/wizard/claim")
    assert first.post("/wizard/claim", {"code": str(code)}).location.endswith("/wizard/admin")
    assert first.get("/wizard/admin").status == 200 and claim.generation(web.data_dir) == 1
    second, new_code = Client(web), claim.open_recovery(web.data_dir)  # gk claim recover
    second.get("/wizard/claim")
    assert second.post("/wizard/claim", {"code": new_code}).location.endswith("/wizard/admin")
    assert claim.generation(web.data_dir) == 2 and second.get("/wizard/admin").status == 200
    # the first browser's session still exists, but a newer claim happened
    resp = first.get("/wizard/admin")
    assert resp.status in (302, 303) and resp.location.endswith("/wizard/claim")
    resp = first.get("/wizard/claim")
    assert resp.status == 403 and "gk claim recover" in resp.text and 'name="code"' not in resp.text
    resp = first.post("/wizard/admin", {"address": ADMIN, "password": ADMIN_PW, "password2": ADMIN_PW})
    assert resp.location.endswith("/wizard/claim")  # sent to the claim page, as a visitor
    assert web.ctx.accounts.get_user(ADMIN) is None  # nothing done on the stale claim's behalf
    # the second browser finishes; recovery later: a third claim ends the second one's claim too
    assert second.post("/wizard/admin", {"address": ADMIN, "password": ADMIN_PW, "password2": ADMIN_PW}).status == 303
    claim.complete(web.data_dir)
    third, new_code = Client(web), claim.open_recovery(web.data_dir)
    third.get("/wizard/claim")
    assert third.post("/wizard/claim", {"code": new_code}).location.endswith("/wizard/password")
    assert claim.generation(web.data_dir) == 3 and third.get("/wizard/password").status == 200
    resp = second.get("/wizard/password")
    assert resp.status in (302, 303) and resp.location.endswith("/wizard/claim")


def test_a_phone_signed_in_with_the_password_ticks_connect_a_phone(web: Web) -> None:
    """Not only app passwords: a mail, calendar or contacts client's password login (IMAP,
    submission, DAV) ticks it too; the web's own logins do not."""
    settings.of(web.data_dir).update(mail_domain="home.lan")
    c = signed_in(web, ADMIN, ADMIN_PW)

    def ticked() -> bool:
        return bool(re.search(r'<li class="done" data-step="device"', c.get("/dashboard").text))

    assert web.ctx.auth.login(USER, USER_PW, "192.0.2.7", "web").ok  # a browser: not a phone
    assert not ticked()
    assert not web.ctx.auth.login(USER, "wrong password", "192.0.2.7", "dav").ok
    assert not ticked()
    assert web.ctx.auth.login(USER, USER_PW, "192.0.2.7", "dav").ok  # a phone's calendar sync
    assert ticked()
