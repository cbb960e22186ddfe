"""Admin pages: add and remove users, reset a user's password, grant admin rights; the box's
local mail domains (added explicitly: a user on a new domain asks first, public providers are
refused); settings (time zone, Let's Encrypt)."""

from __future__ import annotations

import bottle

from gk import localtime, pools
from gk import settings as gksettings
from gk.accounts import AccountError, User
from gk.accounts.passwords import MIN_PASSWORD_LENGTH, PASSWORD_RULE
from gk.accounts.store import DomainNotLocal
from gk.locale import N_
from gk.web import flash, forms, smarthost
from gk.web.app import Web

# the Let's Encrypt service's states (gk.acme.service), as the settings page shows them
ACME_STATES = {
    "pending": N_("waiting for the first attempt"),
    "requesting": N_("requesting a certificate"),
    "failed": N_("failed"),
    "ok": N_("in use"),
}


def users_page(web: Web, **kw: object) -> str:
    accounts = web.ctx.accounts
    kw.setdefault("confirm_domain", "")
    kw.setdefault("address", "")
    for key, value in flash.take(web).items():
        kw.setdefault(key, value)
    aliases = accounts.list_aliases()
    by_target: dict[str, list[str]] = {}
    for source, target in aliases:
        by_target.setdefault(target, []).append(source)
    users = accounts.list_users()
    return web.render(
        "admin_users.html",
        users=users,
        usage=mail_usage(web, users),
        aliases=aliases,
        aliases_of=by_target,
        domains=accounts.list_domains(),
        errors=kw.pop("errors", {}),
        password_rule=web.gettext(PASSWORD_RULE, n=MIN_PASSWORD_LENGTH),
        **kw,
    )


def mail_usage(web: Web, users: list[User]) -> dict[str, float]:
    """MB of mail each user keeps (empty when the mailbox store is not running)."""
    from gk.mail.delivery import quota
    from gk.mail.mailbox import MailboxStore

    store = web.ctx.services.maybe(MailboxStore)
    if store is None:
        return {}
    return {u.address: round(quota.usage(store.user(u.address)) / quota.MB, 1) for u in users}


def users(web: Web) -> str:
    return users_page(web)


def not_confirmed(web: Web, what: str, errors_key: str, **kw: object) -> str | None:
    """A destructive post carries its ticked "confirm" box; else the page again (400), saying so."""
    if forms.text("confirm") == "1":
        return None
    bottle.response.status = 400
    return users_page(web, errors={errors_key: web.gettext("Tick the box to confirm: {what}", what=what)}, **kw)


def add_user(web: Web) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    address = forms.text("address").lower()
    display_name = forms.text("display_name")[:100]
    is_admin = bool(forms.text("admin"))
    # the admin ticked "add this domain" for exactly this address's domain
    confirmed = bool(forms.text("new_domain")) and forms.text("new_domain") == address.rpartition("@")[2]
    entered = {"address": address, "display_name": display_name, "new_admin": is_admin}
    try:
        user = ctx.accounts.add_user(
            address, forms.raw("password"), admin=is_admin, display_name=display_name, new_domain=confirmed
        )
    except DomainNotLocal as exc:
        bottle.response.status = 400
        return users_page(web, confirm_domain=exc.domain, errors={"address": web.error_text(exc)}, **entered)
    except AccountError as exc:
        bottle.response.status = 400
        key = "password" if "password" in str(exc).lower() else "address"
        return users_page(web, errors={key: web.error_text(exc)}, **entered)
    ctx.accounts.record_event("user_added", "web", web.client_ip(), user.address, f"by {admin.address}")
    # what to tell the new user: "Added" alone left the owner wondering where they sign in
    home = bottle.request.urlparts._replace(path="/", query="", fragment="").geturl()
    flash.redirect(
        web,
        "/admin/users",
        web.gettext("Added {address}.", address=user.address)
        + " "
        + web.gettext(
            "Give them this address and their password: they sign in at {url}, and Connect your devices there sets up their phone.",
            url=home,
        ),
    )


def save_profile(web: Web, address: str) -> str:
    """A user's display name and administrator flag (never one's own flag: no lock-out)."""
    ctx = web.ctx
    admin = web.signed_in()
    user = ctx.accounts.get_user(address)
    if user is None:
        raise bottle.HTTPError(404, N_("Not found"))
    display_name = forms.text("display_name")[:100]
    make_admin = bool(forms.text("admin"))
    error = ""
    quota_mb = user.quota_mb
    if user.address == admin.address and not make_admin:
        error = web.gettext("You cannot remove your own administrator rights.")
    elif "quota" in bottle.request.forms:
        try:
            quota_mb = int(forms.text("quota") or "0")
            if not 0 <= quota_mb <= 10_000_000:
                raise ValueError(quota_mb)
        except ValueError:
            error = web.gettext("Enter the quota as a number of MB (0 for none).")
    if error:
        bottle.response.status = 400
        return users_page(web, errors={"user:" + user.address: error}, open_user=user.address)
    if "forward_to" in bottle.request.forms:
        try:
            ctx.accounts.set_forward(user.address, forms.text("forward_to"), keep=bool(forms.text("forward_keep")))
        except AccountError as exc:
            bottle.response.status = 400
            errors = {"user:" + user.address: web.error_text(exc)}
            return users_page(web, errors=errors, open_user=user.address)
    ctx.accounts.set_profile(user.address, display_name=display_name)
    ctx.accounts.set_quota(user.address, quota_mb)
    if make_admin != user.is_admin:
        ctx.accounts.set_admin(user.address, make_admin)
        web.sessions.delete_user(user.address)  # its sessions start again with the new rights
        kind = "admin_granted" if make_admin else "admin_revoked"
        ctx.accounts.record_event(kind, "web", web.client_ip(), user.address, f"by {admin.address}")
    flash.redirect(web, "/admin/users", web.gettext("Saved {address}.", address=user.address))


def add_domain(web: Web) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    try:
        name = ctx.accounts.add_domain(forms.text("domain").lower())
    except AccountError as exc:
        bottle.response.status = 400
        return users_page(web, errors={"domain": web.error_text(exc)}, domain=forms.text("domain"))
    ctx.accounts.record_event("domain_added", "web", web.client_ip(), admin.address, name)
    flash.redirect(web, "/admin/users#domains", web.gettext("{domain} is now a mail domain of this box.", domain=name))


def delete_domain(web: Web, name: str) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    refused = not_confirmed(web, web.gettext("remove {domain}", domain=name), "domains")
    if refused is not None:
        return refused
    try:
        ctx.accounts.delete_domain(name)
    except AccountError as exc:
        bottle.response.status = 400
        return users_page(web, errors={"domains": web.error_text(exc)})
    ctx.accounts.record_event("domain_deleted", "web", web.client_ip(), admin.address, name)
    flash.redirect(
        web, "/admin/users#domains", web.gettext("{domain} is no longer a mail domain of this box.", domain=name)
    )


def delete_user(web: Web, address: str) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    if address == admin.address:
        bottle.response.status = 400
        return users_page(web, errors={"list": web.gettext("You cannot remove your own account.")})
    if ctx.accounts.get_user(address) is None:
        raise bottle.HTTPError(404, N_("Not found"))
    refused = not_confirmed(web, web.gettext("remove {address}", address=address), "user:" + address, open_user=address)
    if refused is not None:
        return refused
    try:
        ctx.accounts.delete_user(address)
    except AccountError as exc:
        raise bottle.HTTPError(404, str(exc)) from exc
    web.sessions.delete_user(address)
    ctx.accounts.record_event("user_deleted", "web", web.client_ip(), address, f"by {admin.address}")
    flash.redirect(web, "/admin/users", web.gettext("Removed {address} (its mail stays on disk).", address=address))


def reset_password(web: Web, address: str) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    if ctx.accounts.get_user(address) is None:
        raise bottle.HTTPError(404, N_("Not found"))
    try:
        ctx.accounts.set_password(address, forms.raw("password"))
    except AccountError as exc:
        bottle.response.status = 400
        return users_page(web, errors={"reset:" + address: web.error_text(exc)}, open_user=address)
    web.sessions.delete_user(address)
    ctx.accounts.record_event("password_reset", "web", web.client_ip(), address, f"by {admin.address}")
    flash.redirect(web, "/admin/users", web.gettext("New password set for {address}.", address=address))


def add_alias(web: Web) -> str:
    """Another address delivered to a user (``gk alias add``); a new domain asks first, as for users."""
    ctx = web.ctx
    admin = web.signed_in()
    source, target = forms.text("alias").lower(), forms.text("target").lower()
    confirmed = bool(forms.text("new_domain")) and forms.text("new_domain") == source.rpartition("@")[2]
    entered = {"alias": source, "alias_target": target}
    try:
        ctx.accounts.add_alias(source, target, new_domain=confirmed)
    except DomainNotLocal as exc:
        bottle.response.status = 400
        return users_page(web, alias_confirm_domain=exc.domain, errors={"alias": web.error_text(exc)}, **entered)
    except AccountError as exc:
        bottle.response.status = 400
        return users_page(web, errors={"alias": web.error_text(exc)}, **entered)
    ctx.accounts.record_event("alias_added", "web", web.client_ip(), target, f"{source} by {admin.address}")
    flash.redirect(
        web, "/admin/users#aliases", web.gettext("Mail to {alias} now goes to {address}.", alias=source, address=target)
    )


def delete_alias(web: Web, address: str) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    refused = not_confirmed(web, web.gettext("remove {address}", address=address), "aliases")
    if refused is not None:
        return refused
    try:
        ctx.accounts.delete_alias(address)
    except AccountError as exc:
        raise bottle.HTTPError(404, N_("Not found")) from exc
    ctx.accounts.record_event("alias_deleted", "web", web.client_ip(), "", f"{address} by {admin.address}")
    flash.redirect(web, "/admin/users#aliases", web.gettext("Removed the alias {address}.", address=address))


def settings_page(web: Web, **kw: object) -> str:
    ctx = web.ctx
    current = kw.pop("timezone", None) or localtime.zone(web.data_dir).key
    owner = gksettings.of(web.data_dir)
    for key, value in flash.take(web).items():
        kw.setdefault(key, value)
    kw.setdefault("hostname", owner.hostname() or ctx.hostname)
    kw.setdefault("domain", owner.mail_domain())
    from gk.acme.service import ACMEService

    acme = ctx.services.maybe(ACMEService)
    return web.render(
        "admin_settings.html",
        zones=sorted(localtime.valid_zones()),
        timezone=current,
        acme_cfg=ctx.config.acme,
        acme=acme.status if acme is not None else None,
        acme_states=ACME_STATES,
        errors=kw.pop("errors", {}),
        **kw,
    )


def settings(web: Web) -> str:
    return settings_page(web)


def save_settings(web: Web) -> str:
    admin = web.signed_in()
    tz = forms.text("timezone")
    try:
        localtime.set_zone(web.data_dir, tz)
    except localtime.TimeZoneError as exc:
        bottle.response.status = 400
        return settings_page(web, timezone=tz, errors={"timezone": web.error_text(exc)})
    web.ctx.accounts.record_event("settings", "web", web.client_ip(), admin.address, f"time zone {tz}")
    flash.redirect(web, "/admin/settings", web.gettext("Time zone saved."))


def save_host(web: Web) -> str:
    """Change the host name and the mail domain after the wizard, live: the next SMTP greeting,
    bounce and TLS handshake use the new name (the self-signed certificate is made anew)."""
    from gk.web.wizard import HOSTNAME_RE, renew_certificate

    ctx = web.ctx
    admin = web.signed_in()
    hostname, domain = forms.text("hostname").lower().rstrip("."), forms.text("domain").lower().rstrip(".")
    errors: dict[str, str] = {}
    if not HOSTNAME_RE.match(hostname):
        errors["hostname"] = web.gettext("Enter a full host name such as mail.example.org.")
    if not HOSTNAME_RE.match(domain):
        errors["domain"] = web.gettext("Enter a domain such as example.org.")
    else:
        try:
            ctx.accounts.add_domain(domain)  # the mail domain is a local one (public providers refused)
        except AccountError as exc:
            errors["domain"] = web.error_text(exc)
    if errors:
        bottle.response.status = 400
        return settings_page(web, hostname=hostname, domain=domain, errors=errors)
    gksettings.of(web.data_dir).update(hostname=hostname, mail_domain=domain)
    renew_certificate(ctx, hostname)
    ctx.accounts.record_event("settings", "web", web.client_ip(), admin.address, f"host {hostname} domain {domain}")
    flash.redirect(web, "/admin/settings#host", web.gettext("Host name and mail domain saved."))


def save_certificate(web: Web) -> str:
    """Turn Let's Encrypt on or off (gk.toml ``[acme]``), live: the renewal service starts now."""
    ctx = web.ctx
    admin = web.signed_in()
    enabled = bool(forms.text("acme"))
    email = forms.text("email")
    if email and "@" not in email:
        bottle.response.status = 400
        return settings_page(
            web, email=email, errors={"email": web.gettext("Enter a mail address, or leave it empty.")}
        )
    cfg = pools.run_io(smarthost.write_config, ctx.data_dir, {"enabled": enabled, "email": email}, "acme")
    ctx.config.acme.enabled, ctx.config.acme.email = cfg.acme.enabled, cfg.acme.email
    from gk.acme import service as acme_service

    running = ctx.services.maybe(acme_service.ACMEService)
    if enabled and running is None:
        started = acme_service.start(ctx)
        if started is not None:
            ctx.services.register("acme", started)  # stopped with the others at shutdown
    elif not enabled and running is not None:
        ctx.services.remove(acme_service.ACMEService)
        running.stop(0)
    ctx.accounts.record_event("settings", "web", web.client_ip(), admin.address, f"acme {'on' if enabled else 'off'}")
    if enabled:
        notice = web.gettext("Let's Encrypt is on: the certificate is requested now.")
    else:
        notice = web.gettext("Let's Encrypt is off.")
    flash.redirect(web, "/admin/settings#certificate", notice)
