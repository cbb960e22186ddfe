"""Admin page "Diagnosis" (``/admin/diagnosis``): the checks of ``gk.diagnosis``, on demand.

GET shows the page with the last run's findings (kept in memory until the next run or a
restart); POST (CSRF-checked, admin-only) runs every check and shows the result, grouped
(DNS, network, certificate, system), errors first, each with what it means and how to fix
it, in the viewer's language: a finding's English templates go through ``i18n`` and are then
formatted with its values. The records to publish come from the Mail delivery page's cache
(``maildelivery.domain_records``, in the threadpool: it may create a DKIM key); the network
checks run on the hub (dnspython and sockets are cooperative under monkey-patching), each
bounded by ``[diagnosis] timeout``.
Cost: nothing until an admin runs it; the last run's findings (a few KB) stay in memory.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from gk import localtime
from gk.locale import N_
from gk.mail.dnsresolver import make_resolver
from gk.web import i18n, maildelivery
from gk.web.app import Web

if TYPE_CHECKING:
    from gk.diagnosis import Finding, Inputs

log = logging.getLogger("gk.web")

GROUPS = [
    ("dns", N_("DNS records")),
    ("network", N_("Network")),
    ("certificate", N_("Certificate")),
    ("system", N_("System")),
]
ORDER = {"error": 0, "warning": 1, "info": 2, "ok": 3}
_last: dict[str, Any] = {}


def last_findings() -> list[Finding] | None:
    """The last run's findings (None: no run since the start), for the dashboard's next steps."""
    findings: list[Finding] | None = _last.get("findings")
    return findings


def inputs_for(web: Web) -> Inputs:
    from gk.diagnosis import Inputs  # the checks load with the first run, not at start

    ctx = web.ctx
    hostname = maildelivery.hostname_for_records(web)
    records = dict(maildelivery.domain_records(ctx, hostname))
    return Inputs(
        config=ctx.config,
        data_dir=ctx.data_dir,
        hostname=hostname,
        domains=sorted(records),
        cert_file=ctx.tls.cert,
        resolver=make_resolver(ctx.config.dns),
        records=records,
    )


def localized(findings: list[Finding], lang: str) -> list[dict[str, Any]]:
    tr = i18n.translator(lang)
    out = []
    for f in sorted(findings, key=lambda f: ORDER.get(f.status, 9)):
        item = f.as_dict()
        params = {k: tr(v) if k == "purpose" else v for k, v in f.params.items()}
        for key in ("title", "detail", "fix"):
            template = getattr(f, key)
            item[key] = tr(template).format(**params) if template else ""
        out.append(item)
    return out


def page(web: Web) -> str:
    findings: list[Finding] | None = _last.get("findings")
    lang = web.lang()
    groups = []
    if findings is not None:
        for key, label in GROUPS:
            items = localized([f for f in findings if f.group == key], lang)
            if items:
                groups.append((key, label, items))
    counts = {s: sum(1 for f in findings or [] if f.status == s) for s in ORDER}
    ran = _last.get("when")
    if ran is not None:
        ran = i18n.format_datetime(localtime.local(web.data_dir, ran), lang, seconds=False)
    return web.render("admin/diagnosis.html", groups=groups, ran=ran, counts=counts)


def diagnosis_run(web: Web) -> str:
    from gk.diagnosis import run  # the checks load with the first run, not at start

    admin = web.signed_in()
    started = time.monotonic()
    findings = run(inputs_for(web))
    _last.update(findings=findings, when=time.time())
    errors = sum(1 for f in findings if f.status == "error")
    log.info(
        "diagnosis run by %s: %d finding(s), %d error(s), %.1fs",
        admin.address,
        len(findings),
        errors,
        time.monotonic() - started,
    )
    return page(web)
