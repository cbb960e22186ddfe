"""Login, logout, the user's own account: password change, language, per-device app passwords.

Login goes through ``ctx.auth.login(..., service="web")``: the same throttling, lockout,
security events and argon2-in-threadpool as SMTP and IMAP.
"""

from __future__ import annotations

import secrets
import unicodedata
import urllib.parse
from typing import Any

import bottle

from gk.accounts import AccountError
from gk.accounts.known_ips import KnownIPs
from gk.accounts.passwords import MIN_PASSWORD_LENGTH, PASSWORD_RULE
from gk.ai.tokens import TokenStore
from gk.locale import N_
from gk.web import flash, forms
from gk.web.app import Web
from gk.web.i18n import LANGUAGES, translator

APP_PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
DEVICE_COOKIE = "gk_device"  # the browser's device token: a known client to the login throttle
DEVICE_COOKIE_SECONDS = int(KnownIPs.DAYS * 86400)


def safe_next(target: str) -> str:
    """Only a local path: ``/mail`` yes; ``//evil.example``, ``/\\evil``, ``https://…`` no, and no
    control character or white space anywhere, raw or percent-decoded: browsers and ``urljoin``
    strip TAB/CR/LF, so ``/%09/evil.example`` would become ``//evil.example``. Anything else is ``/``."""
    decoded = urllib.parse.unquote(target)
    for candidate in (target, decoded):
        if not candidate.startswith("/") or candidate.startswith(("//", "/\\")) or "\\" in candidate:
            return "/"
        if any(ch.isspace() or unicodedata.category(ch)[0] in "CZ" for ch in candidate):
            return "/"
    return target


def new_app_password() -> str:
    raw = "".join(secrets.choice(APP_PASSWORD_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def home(web: Web) -> None:
    user = web.user()
    if user is None:
        raise bottle.redirect("/login")
    raise bottle.redirect("/mail")


def login_form(web: Web) -> str:
    if web.user():
        raise bottle.redirect("/")
    return web.render("login.html", error="", address="", next=safe_next(bottle.request.query.get("next", "/")))


def login_submit(web: Web) -> str:
    ctx = web.ctx
    _ = translator(web.lang())
    address, password = forms.text("address"), forms.raw("password")
    nxt = safe_next(forms.text("next") or "/")
    device = bottle.request.get_cookie(DEVICE_COOKIE) or ""
    result = ctx.auth.login(address, password, web.client_ip(), "web", device=device)
    if result.ok:
        assert result.user is not None
        web.log_in(result.user)
        if result.device:  # this browser is known to the account: others' failures never lock it out
            bottle.response.set_cookie(
                DEVICE_COOKIE, result.device, path="/login", max_age=DEVICE_COOKIE_SECONDS,
                httponly=True, samesite="strict", secure=web.is_https(),
            )  # fmt: skip
        raise bottle.redirect(nxt)
    bottle.response.status = 429 if result.locked else 401
    error = _("Too many failed attempts; try again later.") if result.locked else _("Wrong address or password.")
    return web.render("login.html", error=error, address=address, next=nxt)


def logout(web: Web) -> None:
    web.log_out()
    raise bottle.redirect("/login")


def _tokens(web: Web) -> TokenStore:
    """The API token table (``ai.sqlite3``), opened on the first use of the account page."""
    try:
        return web.attached(TokenStore)
    except KeyError:
        store = TokenStore.for_data_dir(web.ctx.data_dir)
        web.attach(store)
        return store


# the token form: one choice per feature (none / read / read-write) and the two transports
TOKEN_FEATURES = (("mail", N_("Mail")), ("chat", N_("Chat")), ("calendar", N_("Calendars and contacts")))
TOKEN_TRANSPORTS = (("mcp", N_("AI clients (MCP)")), ("ai", N_("Assistant API (/v1)")))


def token_scope_text(scopes: frozenset[str], _: Any) -> str:
    """The scopes of a token as the account page shows them: "Mail: read and write, MCP"."""
    parts = []
    for key, label in TOKEN_FEATURES:
        if f"{key}:write" in scopes:
            parts.append(f"{_(label)}: {_('read and write')}")
        elif f"{key}:read" in scopes:
            parts.append(f"{_(label)}: {_('read only')}")
    parts += [_(label) for key, label in TOKEN_TRANSPORTS if key in scopes]
    return ", ".join(parts)


def account_page(web: Web, **kw: object) -> str:
    from gk.oauth import web as oauth_web

    user = web.signed_in()
    _ = translator(web.lang())
    shown = flash.take(web)  # what the post that redirected here left (a secret shown once)
    if shown.get("notice"):
        kw.setdefault("notice", shown["notice"])
    if shown.get("app_password"):
        kw.setdefault("new_app", (shown.get("app_name", ""), shown["app_password"]))
    if shown.get("token"):
        kw.setdefault("new_token", (shown.get("token_label", ""), shown["token"]))
    tokens = [(t, token_scope_text(t.scopes, _)) for t in _tokens(web).list(user.address)]
    return web.render(
        "account.html",
        apps=web.ctx.accounts.list_app_passwords(user.address),
        tokens=tokens,
        token_features=TOKEN_FEATURES,
        token_transports=TOKEN_TRANSPORTS,
        languages=LANGUAGES,
        errors=kw.pop("errors", {}),
        password_rule=web.gettext(PASSWORD_RULE, n=MIN_PASSWORD_LENGTH),
        chat_digest=chat_digest(web, user.local),
        oauth_grants=oauth_web.grants_of(web, user.address),
        **kw,
    )


def chat_digest(web: Web, account: str) -> tuple[bool, int] | None:
    """(digests wanted, minutes before one is sent) for the account page; None without chat."""
    from gk.chat.core import ChatService

    chat = web.ctx.services.maybe(ChatService)
    after = web.ctx.config.chat.digest_after
    if chat is None or not after:
        return None
    from gk.chat import digest

    return digest.wanted(chat.store, account), max(1, round(after / 60))


def set_chat_digest(web: Web) -> None:
    """The user's opt-out (or back in) of the chat's mail digests."""
    from gk.chat import digest
    from gk.chat.core import ChatService

    user = web.signed_in()
    chat = web.ctx.services.maybe(ChatService)
    if chat is None:
        raise bottle.HTTPError(404, N_("Not found"))
    digest.set_wanted(chat.store, user.local, bool(forms.text("digest")))
    flash.redirect(web, "/account", web.gettext("Saved."))


def account(web: Web) -> str:
    return account_page(web)


def change_password(web: Web) -> str:
    ctx = web.ctx
    user = web.signed_in()
    _ = translator(web.lang())
    errors: dict[str, str] = {}
    current, new, new2 = forms.raw("current"), forms.raw("password"), forms.raw("password2")
    result = ctx.auth.login(user.address, current, web.client_ip(), "web")
    if not result.ok:
        errors["current"] = _("Wrong address or password.")
    elif new != new2:
        errors["password2"] = _("The two passwords differ.")
    else:
        try:
            ctx.accounts.set_password(user.address, new)
        except AccountError as exc:
            errors["password"] = web.error_text(exc)
    if errors:
        bottle.response.status = 400
        return account_page(web, errors=errors)
    sess = web.session()
    web.sessions.delete_user(user.address, keep=sess.sid if sess else "")
    ctx.accounts.record_event("password_changed", "web", web.client_ip(), user.address)
    flash.redirect(web, "/account", _("Password changed."))


def set_language(web: Web) -> None:
    user = web.signed_in()
    lang = forms.text("language")
    if lang in LANGUAGES or lang == "":
        web.ctx.accounts.set_profile(user.address, language=lang)
    flash.redirect(web, "/account", translator(lang or web.lang())(N_("Language saved.")))


def add_app_password(web: Web) -> str:
    ctx = web.ctx
    user = web.signed_in()
    name = forms.text("name")[:60]
    if not name:
        bottle.response.status = 400
        return account_page(web, errors={"name": web.gettext("Give the device a name, e.g. 'phone'.")})
    password = new_app_password()
    ctx.accounts.add_app_password(user.address, name, password)
    ctx.accounts.record_event("app_password_added", "web", web.client_ip(), user.address, name)
    flash.redirect(web, "/account#app-passwords", app_name=name, app_password=password)


def not_confirmed(web: Web) -> str | None:
    """A removal carries its ticked "confirm" box; else the page again (400), saying so."""
    if forms.text("confirm") == "1":
        return None
    bottle.response.status = 400
    return account_page(
        web, notice="", errors={"confirm": web.gettext("Tick the box next to it to confirm the removal.")}
    )


def delete_app_password(web: Web, app_id: int) -> str:
    user = web.signed_in()
    if not any(a["id"] == app_id for a in web.ctx.accounts.list_app_passwords(user.address)):
        raise bottle.HTTPError(404, N_("Not found"))
    if (refused := not_confirmed(web)) is not None:
        return refused
    if not web.ctx.accounts.delete_app_password(user.address, app_id):
        raise bottle.HTTPError(404, N_("Not found"))
    flash.redirect(web, "/account#app-passwords", web.gettext("App password removed: that device is signed out."))


def add_token(web: Web) -> str:
    """A new API token with the scopes ticked: shown once on the page, stored hashed."""
    user = web.signed_in()
    label = forms.text("label")[:60]
    scopes: list[str] = []
    for key, _label in TOKEN_FEATURES:
        level = forms.text(key)
        if level in ("read", "write"):
            scopes.append(f"{key}:{level}")
    scopes += [key for key, _label in TOKEN_TRANSPORTS if forms.text(key) == "1"]
    if not label or not scopes:
        bottle.response.status = 400
        error = web.gettext("Name the token and give it at least one access.")
        return account_page(web, errors={"label": error})
    token_id, token = _tokens(web).add(user.address, label=label, scope=",".join(scopes))
    web.ctx.accounts.record_event("api_token_added", "web", web.client_ip(), user.address, f"{token_id} {label}")
    flash.redirect(web, "/account#api-tokens", token_label=label, token=token)


def delete_token(web: Web, token_id: int) -> str:
    user = web.signed_in()
    if not any(t.id == token_id for t in _tokens(web).list(user.address)):  # another user's token: not found
        raise bottle.HTTPError(404, N_("Not found"))
    if (refused := not_confirmed(web)) is not None:
        return refused
    if not _tokens(web).delete(token_id, user.address):
        raise bottle.HTTPError(404, N_("Not found"))
    web.ctx.accounts.record_event("api_token_deleted", "web", web.client_ip(), user.address, str(token_id))
    flash.redirect(web, "/account#api-tokens", web.gettext("Token revoked."))
