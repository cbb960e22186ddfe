"""Admin page "Mail delivery" (``/admin/mail``): DNS records to publish and their live check, the
outbound queue with per-message retry/delete, and the outgoing-mail route (smarthost form).

Records come from ``gk.mail.dnsrecords.records_for`` (it may create a missing DKIM key, so it
runs in gevent's threadpool); "Check DNS" runs ``check_live`` with GK's resolver (``[dns]``),
one greenlet per record (dnspython is cooperative under monkey-patching), so a page with
slow DNS waits about one query timeout, not one per record. The queue section is the queue
service's ``snapshot()``; retry and delete act through the queue's store (the same calls as
``gk queue retry|delete``) and wake its scheduler. Every action is a CSRF-checked POST
(``app.Web._before``) and admin-only.

Cost per view: one snapshot query (at most 500 rows) and a stat per domain; the records are
cached per domain until the host name, smarthost, selectors or DKIM key files change (a few
hundred bytes each; the first view pays ~60 ms of RSA key loading). The DNS check adds one query
per record.
"""

from __future__ import annotations

import datetime
import logging
import types
from typing import TYPE_CHECKING, Any

import bottle
import gevent
import gevent.pool

from gk import localtime, pools, settings
from gk.locale import N_
from gk.web import flash, forms, i18n, smarthost
from gk.web.app import Web

if TYPE_CHECKING:
    from gk.context import AppContext

log = logging.getLogger("gk.web")


def hostname_for_records(web: Web) -> str:
    """The host name the MX should name: the wizard's choice (it takes effect at restart), else the running one."""
    return settings.of(web.data_dir).hostname() or web.ctx.hostname


# (domain, hostname, smarthost, selectors, DKIM dir mtime) -> records. Loading a DKIM key parses
# and checks an RSA private key (~60 ms on a laptop core, several times that on a small board),
# so the records are kept until an input changes; a few hundred bytes per local domain.
_records_cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}


def domain_records(ctx: AppContext, hostname: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """[(domain, records)] for every local domain (the threadpool: DKIM keys may be generated)."""
    from gk.mail import dnsrecords

    view = types.SimpleNamespace(config=ctx.config, data_dir=ctx.data_dir, hostname=hostname)
    q = ctx.config.queue
    out = []
    for domain in sorted(ctx.accounts.local_domains()):
        try:
            kdir = ctx.data_dir / "dkim" / domain
            mtime = max([kdir.stat().st_mtime_ns, *(p.stat().st_mtime_ns for p in kdir.iterdir())])
        except OSError:
            mtime = 0
        key = (domain, hostname, q.smarthost, q.dkim_selector, q.dkim_ed25519_selector, mtime)
        recs = _records_cache.get(key)
        if recs is None:
            recs = pools.run_cpu(dnsrecords.records_for, view, domain)
            if mtime:
                if len(_records_cache) > 64:
                    _records_cache.clear()
                _records_cache[key] = recs
        out.append((domain, [dict(r) for r in recs]))
    return out


def check(ctx: AppContext, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from gk.mail.dnsrecords import check_live
    from gk.mail.dnsresolver import make_resolver

    resolver = make_resolver(ctx.config.dns)
    pool = gevent.pool.Pool(8)
    return list(pool.imap(lambda rec: check_live([rec], resolver)[0], records))


def _when(ts: float | None, data_dir: Any = None, lang: str = "en") -> str:
    if not ts:
        return "-"
    when = localtime.local(data_dir, ts) if data_dir is not None else datetime.datetime.fromtimestamp(ts)
    return i18n.format_datetime(when, lang)


# a recipient's state in the queue (gk.mail.queue.store), as the page shows it
QUEUE_STATES = {"queued": N_("waiting"), "sent": N_("sent"), "bounced": N_("bounced")}


def queue_messages(ctx: AppContext, lang: str = "en") -> list[dict[str, Any]] | None:
    """The snapshot grouped by message: [{id, mail_from, subject, created, size, recipients: [...]}]."""
    from gk.mail.queue.service import QueueService

    queue = ctx.services.maybe(QueueService)
    if queue is None:
        return None
    messages: dict[int, dict[str, Any]] = {}
    for row in queue.snapshot():
        msg = messages.setdefault(
            row["id"],
            {
                "id": row["id"],
                "mail_from": row["mail_from"],
                "user": row["user"],
                "subject": row.get("subject") or "",
                "size": row["size"],
                "created": _when(row["created"], ctx.data_dir, lang),
                "recipients": [],
            },
        )
        msg["recipients"].append(
            {
                "rcpt": row["rcpt"],
                "state": row["state"],
                "attempts": row["attempts"],
                "next": _when(row["next_attempt"], ctx.data_dir, lang) if row["state"] == "queued" else "-",
                "last_error": row["last_error"] or "",
                "last_host": row["last_host"] or "",
            }
        )
    return list(messages.values())


def mail_page(web: Web, checked: bool = False, **kw: Any) -> str:
    ctx = web.ctx
    hostname = hostname_for_records(web)
    domains = domain_records(ctx, hostname)
    if checked:
        domains = [(d, check(ctx, recs)) for d, recs in domains]
    kw.setdefault("choice", smarthost.current(ctx.config.queue))
    for key, value in flash.take(web).items():
        kw.setdefault(key, value)
    return web.render(
        "admin/mail.html",
        domains=domains,
        checked=checked,
        hostname=hostname,
        queue=queue_messages(ctx, web.lang()),
        route=smarthost.describe(ctx.config.queue, web.gettext),
        queue_states=QUEUE_STATES,
        errors=kw.pop("errors", {}),
        **kw,
    )


def queue_service(web: Web) -> Any:
    from gk.mail.queue.service import QueueService

    queue = web.ctx.services.maybe(QueueService)
    if queue is None:
        raise bottle.HTTPError(503, N_("The outbound queue is not running."))
    return queue


def mail_delivery(web: Web) -> str:
    return mail_page(web)


def mail_check(web: Web) -> str:
    return mail_page(web, checked=True)


def queue_retry(web: Web, msg_id: int) -> str:
    admin = web.signed_in()
    queue = queue_service(web)
    n = queue.retry(msg_id)
    if not n:
        bottle.response.status = 404
        return mail_page(web, errors={"queue": web.gettext("Message {id} is not waiting in the queue.", id=msg_id)})
    log.info("queue msg=%d: retry now (by %s from the web)", msg_id, admin.address)
    notice = web.gettext("Message {id}: {n} recipient(s) will be tried again now.", id=msg_id, n=n)
    flash.redirect(web, "/admin/mail#queue", notice)


def queue_delete(web: Web, msg_id: int) -> str:
    admin = web.signed_in()
    queue = queue_service(web)
    if forms.text("confirm") != "1":
        bottle.response.status = 400
        error = web.gettext("Tick the box to confirm: {what}", what=web.gettext("delete message {id}", id=msg_id))
        return mail_page(web, errors={"queue": error})
    if not queue.delete(msg_id):
        bottle.response.status = 404
        return mail_page(web, errors={"queue": web.gettext("Message {id} is not in the queue.", id=msg_id)})
    log.info("queue msg=%d: deleted without a bounce (by %s from the web)", msg_id, admin.address)
    web.ctx.accounts.record_event("queue_delete", "web", web.client_ip(), admin.address, f"message {msg_id}")
    notice = web.gettext("Message {id} deleted from the queue (no bounce is sent).", id=msg_id)
    flash.redirect(web, "/admin/mail#queue", notice)


def mail_route(web: Web) -> str:
    ctx = web.ctx
    admin = web.signed_in()
    errors, choice = smarthost.save_form(web, admin.address)
    if errors:
        bottle.response.status = 400
        return mail_page(web, choice=choice, errors=errors)
    notice = web.gettext(
        "Saved: outgoing mail now goes {route}.", route=smarthost.describe(ctx.config.queue, web.gettext)
    )
    flash.redirect(web, "/admin/mail#route", notice)
