"""Admin pages: add and remove users, reset a user's password, grant admin rights; the box's
local mail domains (added explicitly: a user on a new domain asks first, public providers are
refused); settings (time zone, Let's Encrypt)."""

from __future__ import annotations

import bottle

from gk import localtime, pools
from gk import settings as gksettings
from gk.accounts import AccountError
from gk.accounts.store import DomainNotLocal
from gk.locale import N_
from gk.web import forms, smarthost
from gk.web.app import ADMIN, Route, Web

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
    return web.render(
        "admin_users.html",
        users=accounts.list_users(),
        domains=accounts.list_domains(),
        errors=kw.pop("errors", {}),
        **kw,
    )


def users(web: Web) -> str:
    return users_page(web, address="")


def add_user(web: Web) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    address = forms.text("address").lower()
    # the admin ticked "add this domain" for exactly this address's domain
    confirmed = bool(forms.text("new_domain")) and forms.text("new_domain") == address.rpartition("@")[2]
    try:
        user = ctx.accounts.add_user(
            address, forms.raw("password"), admin=bool(forms.text("admin")), new_domain=confirmed
        )
    except DomainNotLocal as exc:
        bottle.response.status = 400
        return users_page(web, address=address, confirm_domain=exc.domain, errors={"address": web.error_text(exc)})
    except AccountError as exc:
        bottle.response.status = 400
        key = "password" if "password" in str(exc).lower() else "address"
        return users_page(web, address=address, errors={key: web.error_text(exc)})
    ctx.accounts.record_event("user_added", "web", web.client_ip(), user.address, f"by {admin.address}")
    return users_page(web, address="", notice=web.gettext("Added {address}.", address=user.address))


def add_domain(web: Web) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    try:
        name = ctx.accounts.add_domain(forms.text("domain").lower())
    except AccountError as exc:
        bottle.response.status = 400
        return users_page(web, address="", errors={"domain": web.error_text(exc)}, domain=forms.text("domain"))
    ctx.accounts.record_event("domain_added", "web", web.client_ip(), admin.address, name)
    return users_page(web, address="", notice=web.gettext("{domain} is now a mail domain of this box.", domain=name))


def delete_domain(web: Web, name: str) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    try:
        ctx.accounts.delete_domain(name)
    except AccountError as exc:
        bottle.response.status = 400
        return users_page(web, address="", errors={"domains": web.error_text(exc)})
    ctx.accounts.record_event("domain_deleted", "web", web.client_ip(), admin.address, name)
    return users_page(
        web, address="", notice=web.gettext("{domain} is no longer a mail domain of this box.", domain=name)
    )


def delete_user(web: Web, address: str) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    if address == admin.address:
        bottle.response.status = 400
        return users_page(web, address="", errors={"list": web.gettext("You cannot remove your own account.")})
    try:
        ctx.accounts.delete_user(address)
    except AccountError as exc:
        raise bottle.HTTPError(404, str(exc)) from exc
    web.sessions.delete_user(address)
    ctx.accounts.record_event("user_deleted", "web", web.client_ip(), address, f"by {admin.address}")
    return users_page(
        web, address="", notice=web.gettext("Removed {address} (its mail stays on disk).", address=address)
    )


def reset_password(web: Web, address: str) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    if ctx.accounts.get_user(address) is None:
        raise bottle.HTTPError(404, N_("Not found"))
    try:
        ctx.accounts.set_password(address, forms.raw("password"))
    except AccountError as exc:
        bottle.response.status = 400
        return users_page(web, address="", errors={"reset:" + address: web.error_text(exc)})
    web.sessions.delete_user(address)
    ctx.accounts.record_event("password_reset", "web", web.client_ip(), address, f"by {admin.address}")
    return users_page(web, address="", notice=web.gettext("New password set for {address}.", address=address))


def settings_page(web: Web, **kw: object) -> str:
    ctx = web.ctx
    current = kw.pop("timezone", None) or localtime.zone(web.data_dir).key
    owner = gksettings.of(web.data_dir)
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
    return settings_page(web, notice=web.gettext("Time zone saved."))


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
    return settings_page(web, notice=web.gettext("Host name and mail domain saved."))


def save_certificate(web: Web) -> str:
    """Turn Let's Encrypt on or off (gk.toml ``[acme]``), live: the renewal service starts now."""
    ctx = web.ctx
    admin = web.signed_in()
    enabled = bool(forms.text("acme"))
    email = forms.text("email")
    if email and "@" not in email:
        bottle.response.status = 400
        return settings_page(web, errors={"email": web.gettext("Enter a mail address, or leave it empty.")})
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
    return settings_page(web, notice=notice)


ROUTES = (
    Route("GET", "/admin/users", users, ADMIN),
    Route("POST", "/admin/users", add_user, ADMIN),
    Route("POST", "/admin/users/<address>/delete", delete_user, ADMIN),
    Route("POST", "/admin/users/<address>/password", reset_password, ADMIN),
    Route("POST", "/admin/domains", add_domain, ADMIN),
    Route("POST", "/admin/domains/<name>/delete", delete_domain, ADMIN),
    Route("GET", "/admin/settings", settings, ADMIN),
    Route("POST", "/admin/settings", save_settings, ADMIN),
    Route("POST", "/admin/settings/certificate", save_certificate, ADMIN),
    Route("POST", "/admin/settings/host", save_host, ADMIN),
)
