"""After Finish: the owner's next steps, at the top of the dashboard until dismissed.

Publish the DNS records → check them (the diagnosis) → add the household → connect a phone → send
a test mail. Each tick comes from what the box has seen, never from a click: the last diagnosis run
(the domain's MX record as DNS answers it; no DNS error), a second user (the test mail's "another
user of the box" presumed one, and no step led to the Users page), a device's login (an app password — what "Connect
your devices" has phones use — an OAuth grant, or the account's password from an IMAP, SMTP or
DAV client rather than the web), a message in the administrator's Sent folder (the webmail and mail
clients file what they send there). A box without a public domain (none, or a local one such as
``home.lan``) shows only the steps that apply to mail on the home network.

A tick, once seen, is kept in the claim store (``claim.mark_step_done``, key ``next:<step>``): the
diagnosis findings live in memory only and a restart must not untick the list. Cost: a few small
SQLite reads per dashboard view while the list is shown; nothing once dismissed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gk import claim, settings
from gk.locale import N_
from gk.web import flash
from gk.web.app import Web

LOCAL_SUFFIXES = (".local", ".lan", ".home", ".home.arpa", ".internal", ".localdomain", ".test", ".invalid")
DISMISSED = "next:dismissed"


@dataclass(frozen=True)
class NextStep:
    key: str
    title: str  # catalog text (N_)
    detail: str
    link: str
    link_text: str
    done: bool


def lan_only(domain: str) -> bool:
    """No domain mail servers on the internet could find: only the home network's mail applies."""
    return not domain or "." not in domain or domain.endswith(LOCAL_SUFFIXES)


def _seen(web: Web, key: str, now: bool) -> bool:
    """``now`` (reality checked this time), or seen before; a first sighting is kept."""
    if now:
        if not claim.step_done(web.data_dir, "next:" + key):
            claim.mark_step_done(web.data_dir, "next:" + key)
        return True
    return claim.step_done(web.data_dir, "next:" + key)


def _dns(web: Web) -> tuple[bool, bool]:
    """(the MX record answers as it should, the last diagnosis found no DNS error), from its last run."""
    from gk.web import diagnosis

    findings = diagnosis.last_findings()
    if findings is None:
        return False, False
    dns = [f for f in findings if f.group == "dns"]
    published = any(f.key.startswith("dns:MX:") and f.status == "ok" for f in dns)
    checked = published and not any(f.status == "error" for f in dns)
    return published, checked


def _device(web: Web) -> bool:
    """A device signed in: an app password used, an OAuth grant used, or a password login from a
    mail, calendar or contacts client (IMAP, SMTP submission, DAV; not the web), as the box keeps
    them among each account's known clients (``authenticate.SERVICE_PREFIX``)."""
    from gk.accounts.authenticate import SERVICE_PREFIX
    from gk.accounts.known_ips import KnownIPs

    accounts = web.ctx.accounts
    users = accounts.list_users()
    if any(a["last_used"] for u in users for a in accounts.list_app_passwords(u.address)):
        return True
    since = time.time() - KnownIPs.DAYS * 86400
    if any(c.startswith(SERVICE_PREFIX) for u in users for c in accounts.known_clients(u.address, since)):
        return True
    from gk.mcp.service import MCPService

    mcp = web.ctx.services.maybe(MCPService)
    return mcp is not None and any(g.last_used for u in users for g in mcp.oauth.store.grants(u.address))


def _sent(web: Web, address: str) -> bool:
    from gk.mail.mailbox import MailboxStore

    store = web.ctx.services.maybe(MailboxStore)
    if store is None:
        return False
    return any(f.special_use == "\\Sent" and f.exists for f in store.user(address).folders())


def steps(web: Web, address: str) -> list[NextStep]:
    domain = settings.of(web.data_dir).mail_domain()
    out = []
    if not lan_only(domain):
        published, checked = _dns(web)
        out.append(
            NextStep(
                "dns",
                N_("Publish the DNS records"),
                N_("At your domain's DNS provider, add the records listed on the Mail delivery page."),
                "/admin/mail",
                N_("Records to publish"),
                _seen(web, "dns", published),
            )
        )
        out.append(
            NextStep(
                "check",
                N_("Check them"),
                N_(
                    "Run the diagnosis: it compares each record with what DNS answers, and checks port 25 and reverse DNS."
                ),
                "/admin/diagnosis",
                N_("Diagnosis"),
                _seen(web, "check", checked),
            )
        )
    out.append(
        NextStep(
            "people",
            N_("Add the household"),
            N_("Give each person an address and a password of their own: they sign in here and on their phone."),
            "/admin/users",
            N_("Users"),
            _seen(web, "people", len(web.ctx.accounts.list_users()) > 1),
        )
    )
    out.append(
        NextStep(
            "device",
            N_("Connect a phone"),
            N_(
                "Make an app password and set up the phone's mail, calendar and contacts: ticked once it has signed in."
            ),
            "/devices",
            N_("Connect your devices"),
            _seen(web, "device", _device(web)),
        )
    )
    out.append(
        NextStep(
            "mail",
            N_("Send a test mail"),
            N_("Write to another user of the box, or to an address outside to see it arrive there.")
            if not lan_only(domain)
            else N_("Write to another user of the box: mail between the household's users needs no domain."),
            "/mail/compose",
            N_("Write"),
            _seen(web, "mail", _sent(web, address)),
        )
    )
    return out


def for_dashboard(web: Web, address: str) -> list[NextStep] | None:
    """The checklist, or None once the owner dismissed it."""
    if claim.step_done(web.data_dir, DISMISSED):
        return None
    return steps(web, address)


def dismiss(web: Web) -> None:
    web.signed_in()
    claim.mark_step_done(web.data_dir, DISMISSED)
    flash.redirect(web, "/dashboard", web.gettext("The next steps are hidden."))
