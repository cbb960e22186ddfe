"""Client setup for the LAN: Thunderbird autoconfig, Apple .mobileconfig, DAV well-known redirects,
and the "connect your devices" page with the exact server names, ports and security.

The autoconfig XML follows Mozilla's ``config-v1.1.xml`` format (clientConfig version 1.1);
the profile is an Apple configuration profile (plist via the stdlib ``plistlib``) holding a
``com.apple.mail.managed`` payload — no password inside: the device asks for it.
"""

from __future__ import annotations

import uuid
from typing import Any

import bottle

from gk import claim
from gk.web.app import Web

PROFILE_NS = uuid.UUID("6f1f4c52-9a0e-4c1e-8f43-3b1c2e0d9a77")


def server_name(web: Web) -> str:
    return claim.get_setting(web.data_dir, "hostname", "") or web.ctx.hostname


def endpoints(ctx: Any, host: str) -> list[dict[str, Any]]:
    """Mail endpoints with the ports of the running config (0 = disabled, left out)."""
    out = []
    for kind, port, security in (
        ("imap", ctx.config.imap.tls_port, "SSL"),
        ("imap", ctx.config.imap.port, "STARTTLS"),
        ("smtp", ctx.config.smtp.submissions_port, "SSL"),
        ("smtp", ctx.config.smtp.submission_port, "STARTTLS"),
    ):
        if port:
            out.append({"kind": kind, "host": host, "port": port, "security": security})
    return out


def register(web: Web) -> None:
    app = web.app
    ctx = web.ctx

    def autoconfig() -> str:
        address = bottle.request.query.getunicode("emailaddress", default="") or ""
        domain = address.rpartition("@")[2].lower() if "@" in address else ""
        if not domain or not ctx.accounts.is_local_domain(domain):
            domain = claim.get_setting(web.data_dir, "mail_domain", "") or domain
        bottle.response.content_type = "application/xml; charset=utf-8"
        bottle.response.set_header("Cache-Control", "max-age=3600")
        return web.jinja.get_template("autoconfig.xml").render(
            domain=domain, host=server_name(web), endpoints=endpoints(ctx, server_name(web))
        )

    app.route("/.well-known/autoconfig/mail/config-v1.1.xml", callback=autoconfig)
    app.route("/mail/config-v1.1.xml", callback=autoconfig)

    @app.route("/.well-known/caldav")
    @app.route("/.well-known/carddav")
    def dav_redirect() -> None:
        raise bottle.redirect("/dav/", 301)

    @app.get("/devices")
    def devices() -> str:
        user = web.require_user()
        host = server_name(web)
        return web.render("devices.html", host=host, endpoints=endpoints(ctx, host), address=user.address)

    @app.get("/devices/gk.mobileconfig")
    def mobileconfig() -> bytes:
        user = web.require_user()
        host = server_name(web)
        uid = lambda tag: str(uuid.uuid5(PROFILE_NS, f"{host}/{user.address}/{tag}")).upper()  # noqa: E731
        imap_port = ctx.config.imap.tls_port or ctx.config.imap.port
        smtp_port = ctx.config.smtp.submissions_port or ctx.config.smtp.submission_port
        mail = {
            "PayloadType": "com.apple.mail.managed",
            "PayloadVersion": 1,
            "PayloadIdentifier": f"gk.{host}.mail.{user.address}",
            "PayloadUUID": uid("mail"),
            "PayloadDisplayName": f"Mail {user.address}",
            "EmailAccountDescription": f"{user.address} on {host}",
            "EmailAccountType": "EmailTypeIMAP",
            "EmailAddress": user.address,
            "IncomingMailServerHostName": host,
            "IncomingMailServerPortNumber": imap_port,
            "IncomingMailServerUseSSL": True,
            "IncomingMailServerUsername": user.address,
            "IncomingMailServerAuthentication": "EmailAuthPassword",
            "OutgoingMailServerHostName": host,
            "OutgoingMailServerPortNumber": smtp_port,
            "OutgoingMailServerUseSSL": True,
            "OutgoingMailServerUsername": user.address,
            "OutgoingMailServerAuthentication": "EmailAuthPassword",
            "OutgoingPasswordSameAsIncomingPassword": True,
        }
        profile = {
            "PayloadType": "Configuration",
            "PayloadVersion": 1,
            "PayloadIdentifier": f"gk.{host}.{user.address}",
            "PayloadUUID": uid("profile"),
            "PayloadDisplayName": f"GK {host} ({user.address})",
            "PayloadDescription": "Mail settings for this GK server. Calendars and contacts follow once available.",
            "PayloadContent": [mail],
        }
        bottle.response.content_type = "application/x-apple-aspen-config"
        bottle.response.set_header("Content-Disposition", f'attachment; filename="{host}-{user.local}.mobileconfig"')
        import plistlib  # pulls in xml.parsers.expat: only when a profile is downloaded

        return plistlib.dumps(profile)
