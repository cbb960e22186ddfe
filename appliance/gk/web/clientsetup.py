"""Client setup for the LAN: Thunderbird autoconfig, Apple .mobileconfig (mail, CalDAV, CardDAV),
DAV well-known redirects, and the "connect your devices" page with the exact server names, ports
and security (calendars and contacts: DAVx5, iOS/macOS, Thunderbird).

The autoconfig XML follows Mozilla's ``config-v1.1.xml`` format (clientConfig version 1.1);
the profile is an Apple configuration profile (plist via the stdlib ``plistlib``) holding a
``com.apple.mail.managed`` payload — no password inside: the device asks for it — and, while
the box uses its own self-signed certificate, a ``com.apple.security.root`` payload carrying
it, so the phone trusts the box once the profile is installed. The devices page shows a QR
code (``segno``, imported on first view) of its own address, to open it on a phone.
"""

from __future__ import annotations

import io
import ssl
from typing import TYPE_CHECKING, Any

import bottle

from gk import settings
from gk.locale import N_
from gk.web.app import Web

if TYPE_CHECKING:
    from gk.context import AppContext

PROFILE_NS = "6f1f4c52-9a0e-4c1e-8f43-3b1c2e0d9a77"  # the profiles' UUID namespace (uuid.UUID on use)


def server_name(web: Web) -> str:
    return settings.of(web.data_dir).hostname() or web.ctx.hostname


def endpoints(ctx: AppContext, host: str) -> list[dict[str, Any]]:
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


def page_url(web: Web) -> str:
    """The address of the devices page as this browser reached the box, over HTTPS when on."""
    host = bottle.request.urlparts.hostname or server_name(web)
    if ":" in host:
        host = f"[{host}]"
    port = web.ctx.config.http.https_port
    if port:
        return f"https://{host}{'' if port == 443 else f':{port}'}/devices"
    port = web.ctx.config.http.port
    return f"http://{host}{'' if port == 80 else f':{port}'}/devices"


def qr_svg(text: str) -> str:
    import segno

    out = io.BytesIO()
    segno.make(text, error="m").save(
        out, kind="svg", xmldecl=False, svgns=True, scale=4, border=2, title=text, svgclass="qr", lineclass=None
    )
    return out.getvalue().decode()


def certificate_payload(ctx: AppContext, host: str, uid: Any, name: str = "") -> dict[str, Any] | None:
    """The box's own self-signed certificate as a trusted root, or None for an owner's certificate;
    ``name`` is what the phone shows for it (in the viewer's language)."""
    if ctx.config.tls.cert_file:
        return None
    try:
        pem = ctx.tls.cert.read_text()
    except OSError:
        return None
    return {
        "PayloadType": "com.apple.security.root",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"gk.{host}.certificate",
        "PayloadUUID": uid("certificate"),
        "PayloadDisplayName": name or f"GK certificate for {host}",
        "PayloadCertificateFileName": f"{host}.cer",
        "PayloadContent": ssl.PEM_cert_to_DER_cert(pem),
    }


def autoconfig(web: Web) -> str:
    ctx = web.ctx
    address = bottle.request.query.getunicode("emailaddress", default="") or ""
    domain = address.rpartition("@")[2].lower() if "@" in address else ""
    if not domain or not ctx.accounts.is_local_domain(domain):
        domain = settings.of(web.data_dir).mail_domain() or domain
    bottle.response.content_type = "application/xml; charset=utf-8"
    bottle.response.set_header("Cache-Control", "max-age=3600")
    return web.template("autoconfig.xml").render(
        domain=domain, host=server_name(web), endpoints=endpoints(ctx, server_name(web))
    )


def acme_challenge(web: Web, token: str) -> str:
    """HTTP-01 (RFC 8555 §8.3): the key authorisation ``gk acme renew`` left for the CA."""
    from gk.acme.service import ACMEService

    acme = web.ctx.services.maybe(ACMEService)
    answer = acme.challenge(token) if acme is not None else None
    if answer is None:
        raise bottle.HTTPError(404, N_("Not found"))
    bottle.response.content_type = "text/plain"
    return answer


def dav_redirect(web: Web) -> None:
    raise bottle.redirect("/dav/", 301)


def devices(web: Web) -> str:
    user = web.signed_in()
    host = server_name(web)
    url = page_url(web)
    port, tls = dav_url(web, host)
    dav = f"{'https' if tls else 'http'}://{host}{'' if port in (80, 443) else f':{port}'}/dav/"
    return web.render(
        "devices.html",
        host=host,
        endpoints=endpoints(web.ctx, host),
        address=user.address,
        url=url,
        qr=qr_svg(url),
        dav_url=dav if web.ctx.config.dav.enabled else "",
        chat=chat_settings(web, host, user.local),
    )


def chat_settings(web: Web, host: str, account: str) -> dict[str, Any] | None:
    """What an IRC app needs (server, TLS port, SASL PLAIN with the user's name), and the web
    chat's address; None while the chat is off."""
    from gk.chat.core import ChatService

    if web.ctx.services.maybe(ChatService) is None:
        return None
    return {"host": host, "port": web.ctx.config.chat.irc_port, "account": account}


def dav_url(web: Web, host: str) -> tuple[int, bool]:
    """(port, TLS?) DAV clients reach ``/dav/`` on: the HTTPS port, else plain HTTP (LAN tests)."""
    http = web.ctx.config.http
    return (http.https_port, True) if http.https_port else (http.port, False)


def dav_payloads(web: Web, host: str, address: str, uid: Any) -> list[dict[str, Any]]:
    """The CalDAV and CardDAV accounts of an Apple profile (iOS/macOS ``com.apple.caldav.account``
    and ``com.apple.carddav.account``), the principal URL given so the device skips discovery;
    none while calendars and contacts are off."""
    if not web.ctx.config.dav.enabled:
        return []
    port, tls = dav_url(web, host)
    principal = f"/dav/{address}/"
    out = []
    for kind, label in (("CalDAV", web.gettext("Calendars")), ("CardDAV", web.gettext("Contacts"))):
        out.append(
            {
                "PayloadType": f"com.apple.{kind.lower()}.account",
                "PayloadVersion": 1,
                "PayloadIdentifier": f"gk.{host}.{kind.lower()}.{address}",
                "PayloadUUID": uid(kind.lower()),
                "PayloadDisplayName": f"{label} {address}",
                f"{kind}AccountDescription": web.gettext("{address} on {host}", address=address, host=host),
                f"{kind}HostName": host,
                f"{kind}Port": port,
                f"{kind}UseSSL": tls,
                f"{kind}PrincipalURL": principal,
                f"{kind}Username": address,
            }
        )
    return out


def mobileconfig(web: Web) -> bytes:
    import uuid  # on the first profile download, not at start

    ctx = web.ctx
    user = web.signed_in()
    host = server_name(web)
    namespace = uuid.UUID(PROFILE_NS)
    uid = lambda tag: str(uuid.uuid5(namespace, f"{host}/{user.address}/{tag}")).upper()  # noqa: E731
    imap_port = ctx.config.imap.tls_port or ctx.config.imap.port
    smtp_port = ctx.config.smtp.submissions_port or ctx.config.smtp.submission_port
    mail = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"gk.{host}.mail.{user.address}",
        "PayloadUUID": uid("mail"),
        "PayloadDisplayName": web.gettext("Mail {address}", address=user.address),
        "EmailAccountDescription": web.gettext("{address} on {host}", address=user.address, host=host),
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
    contents: list[dict[str, Any]] = [mail, *dav_payloads(web, host, user.address, uid)]
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"gk.{host}.{user.address}",
        "PayloadUUID": uid("profile"),
        "PayloadDisplayName": f"GK {host} ({user.address})",
        "PayloadDescription": web.gettext("Mail, calendar and contacts settings for this GK server."),
        "PayloadContent": contents,
    }
    cert = certificate_payload(ctx, host, uid, web.gettext("GK certificate for {host}", host=host))
    if cert is not None:
        contents.append(cert)
    bottle.response.content_type = "application/x-apple-aspen-config"
    bottle.response.set_header("Content-Disposition", f'attachment; filename="{host}-{user.local}.mobileconfig"')
    import plistlib  # pulls in xml.parsers.expat: only when a profile is downloaded

    return plistlib.dumps(profile)
