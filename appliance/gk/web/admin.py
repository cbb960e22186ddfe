"""Admin pages: add and remove users, reset a user's password, grant admin rights; settings
(time zone, Let's Encrypt)."""

from __future__ import annotations

import bottle

from gk import localtime, pools
from gk.accounts import AccountError
from gk.locale import N_
from gk.web import forms, smarthost
from gk.web.app import Web

# the Let's Encrypt service's states (gk.acme.service), as the settings page shows them
ACME_STATES = {
    "pending": N_("waiting for the first attempt"),
    "requesting": N_("requesting a certificate"),
    "failed": N_("failed"),
    "ok": N_("in use"),
}


def register(web: Web) -> None:
    app = web.app
    ctx = web.ctx

    def users_page(**kw: object) -> str:
        web.require_admin()
        return web.render("admin_users.html", users=ctx.accounts.list_users(), errors=kw.pop("errors", {}), **kw)

    @app.get("/admin/users")
    def users() -> str:
        return users_page(address="")

    @app.post("/admin/users")
    def add_user() -> str:
        admin = web.require_admin()
        address = forms.text("address").lower()
        try:
            user = ctx.accounts.add_user(address, forms.raw("password"), admin=bool(forms.text("admin")))
        except AccountError as exc:
            bottle.response.status = 400
            key = "password" if "password" in str(exc).lower() else "address"
            return users_page(address=address, errors={key: web.error_text(exc)})
        ctx.accounts.record_event("user_added", "web", web.client_ip(), user.address, f"by {admin.address}")
        return users_page(address="", notice=web.gettext("Added {address}.", address=user.address))

    @app.post("/admin/users/<address>/delete")
    def delete_user(address: str) -> str:
        admin = web.require_admin()
        if address == admin.address:
            bottle.response.status = 400
            return users_page(address="", errors={"list": web.gettext("You cannot remove your own account.")})
        try:
            ctx.accounts.delete_user(address)
        except AccountError as exc:
            raise bottle.HTTPError(404, str(exc)) from exc
        web.sessions.delete_user(address)
        ctx.accounts.record_event("user_deleted", "web", web.client_ip(), address, f"by {admin.address}")
        return users_page(
            address="", notice=web.gettext("Removed {address} (its mail stays on disk).", address=address)
        )

    @app.post("/admin/users/<address>/password")
    def reset_password(address: str) -> str:
        admin = web.require_admin()
        if ctx.accounts.get_user(address) is None:
            raise bottle.HTTPError(404, N_("Not found"))
        try:
            ctx.accounts.set_password(address, forms.raw("password"))
        except AccountError as exc:
            bottle.response.status = 400
            return users_page(address="", errors={"reset:" + address: web.error_text(exc)})
        web.sessions.delete_user(address)
        ctx.accounts.record_event("password_reset", "web", web.client_ip(), address, f"by {admin.address}")
        return users_page(address="", notice=web.gettext("New password set for {address}.", address=address))

    def settings_page(**kw: object) -> str:
        web.require_admin()
        current = kw.pop("timezone", None) or localtime.zone(web.data_dir).key
        acme = ctx.services.get("acme")
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

    @app.get("/admin/settings")
    def settings() -> str:
        return settings_page()

    @app.post("/admin/settings")
    def save_settings() -> str:
        admin = web.require_admin()
        tz = forms.text("timezone")
        try:
            localtime.set_zone(web.data_dir, tz)
        except localtime.TimeZoneError as exc:
            bottle.response.status = 400
            return settings_page(timezone=tz, errors={"timezone": web.error_text(exc)})
        ctx.accounts.record_event("settings", "web", web.client_ip(), admin.address, f"time zone {tz}")
        return settings_page(notice=web.gettext("Time zone saved."))

    @app.post("/admin/settings/certificate")
    def save_certificate() -> str:
        """Turn Let's Encrypt on or off (gk.toml ``[acme]``), live: the renewal service starts now."""
        admin = web.require_admin()
        enabled = bool(forms.text("acme"))
        email = forms.text("email")
        if email and "@" not in email:
            bottle.response.status = 400
            return settings_page(errors={"email": web.gettext("Enter a mail address, or leave it empty.")})
        cfg = pools.run_io(smarthost.write_config, ctx.data_dir, {"enabled": enabled, "email": email}, "acme")
        ctx.config.acme.enabled, ctx.config.acme.email = cfg.acme.enabled, cfg.acme.email
        running = ctx.services.get("acme")
        if enabled and running is None:
            from gk.acme import service as acme_service

            acme_service.start(ctx)
        elif not enabled and running is not None:
            running.stop(0)
            ctx.services.pop("acme", None)
        ctx.accounts.record_event(
            "settings", "web", web.client_ip(), admin.address, f"acme {'on' if enabled else 'off'}"
        )
        if enabled:
            notice = web.gettext("Let's Encrypt is on: the certificate is requested now.")
        else:
            notice = web.gettext("Let's Encrypt is off.")
        return settings_page(notice=notice)
