"""The first-boot wizard: claim → admin → host & domain → time zone → TLS → users → DNS → outgoing mail
→ AI → summary.

Served only to LAN clients until complete (``app.Web._before``), then dead (404) except for
the claim and password steps while owner recovery is open. Claiming takes the setup code
(wrong codes are throttled per client address by ``gk.claim.codeguard``: delays, then that address
alone locked out; each a security event)
or a button press made while this browser's claim page was open (polled with htmx), granted only
when no other browser was waiting for it (``gk.claim.waiters``).
Wizard progress lives in the claim store (``gk.claim``), the choices in ``gk.settings``: both survive a crash mid-wizard.

The wizard is data: ``STEPS``, an ordered list of ``WizardStep`` (id, title, handler, who may
open it, whether it belongs to setup and/or owner recovery, whether it may be left undone).
``install(web, steps)`` serves ``/wizard/<id>`` for each; a feature adds its step as one entry
(``with_step``) before the summary. Who may open a step (``Needs``) is checked in one place,
``serve``; the claim gate (LAN, HTTPS-only, closed after setup) is ``app.Web._before``'s.
"""

from __future__ import annotations

import logging
import re
import types
import zoneinfo
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import bottle
import gevent

from gk import claim, localtime, pools, settings
from gk.accounts import AccountError
from gk.accounts.passwords import MIN_PASSWORD_LENGTH, PASSWORD_RULE
from gk.accounts.store import DomainNotLocal, check_address
from gk.claim.codeguard import CodeGuard
from gk.claim.waiters import ButtonWaiters
from gk.locale import N_
from gk.security import tls
from gk.web import flash, forms, smarthost
from gk.web.app import Web
from gk.web.headers import https_origin
from gk.web.wizardsteps import (  # the steps as data, re-exported for the wizard's callers
    Needs,
    Steps,
    WizardStep,
)

if TYPE_CHECKING:
    from gk.context import AppContext

log = logging.getLogger("gk.web")
HTMX_STOP_POLLING = 286  # htmx stops an "every 2s" trigger on this status

HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)

# the AI step's first choice; the models are the catalogue's that fit (gk/ai/catalogue.toml)
AI_MODELS = [("none", N_("No assistant"), 0)]


def total_ram_mb() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


@dataclass
class Wizard:
    """The wizard of one web app: its steps and the claim step's per-process state."""

    steps: tuple[WizardStep, ...]
    waiters: ButtonWaiters = field(default_factory=ButtonWaiters)
    code_guard: CodeGuard | None = None

    def shown(self, recovering: bool) -> list[WizardStep]:
        return [s for s in self.steps if (s.recovery if recovering else s.setup)]


def wizard(web: Web) -> Wizard:
    """The wizard's state on ``web``, made on the first request to a wizard page from the steps
    ``wizardsteps.install`` left there."""
    try:
        return web.attached(Wizard)
    except KeyError:
        http = web.ctx.config.http
        guard = CodeGuard(http.setup_code_lockout_failures, http.setup_code_lockout_seconds)
        state = Wizard(web.attached(Steps).steps, code_guard=guard)
        web.attach(state)
        return state


def done(web: Web, step: str) -> bool:
    return claim.step_done(web.data_dir, step)


def mark(web: Web, step: str) -> None:
    claim.mark_step_done(web.data_dir, step)


def in_recovery(web: Web) -> bool:
    st, rec = web.claim_state()
    return st == claim.COMPLETE and rec


def is_claimant(web: Web) -> bool:
    """This browser claimed the box, and no newer claim happened since (``claim.generation``):
    a browser that lost the box to a reclaim from another device is sent to the claim page,
    which explains the way back (403)."""
    sess = web.session(create=False)  # no session, no claimant: a visitor being redirected writes nothing
    held = sess.data.get("claimant") if sess else None
    if held is True:  # a session from before claim generations: it claimed the first time
        held = 1
    return isinstance(held, int) and held > 0 and held == claim.generation(web.data_dir)


def after(web: Web, step: str) -> str:
    """The path of the setup step that follows ``step``."""
    ids = [s.id for s in wizard(web).shown(False)]
    return f"/wizard/{ids[ids.index(step) + 1]}" if step in ids[:-1] else "/wizard"


def page(web: Web, step: str, **kw: Any) -> str:
    shown = wizard(web).shown(in_recovery(web))
    steps = [s.id for s in shown]
    titles = {s.id: s.title for s in wizard(web).steps if s.title} | {
        "https": N_("Continue over HTTPS"),
        "claimed": N_("Set up from another browser"),
    }
    index = steps.index(step) if step in steps else 0
    # a step the claimant may go back to: after the claim, and done (or before the current one)
    revisitable = {
        s.id
        for i, s in enumerate(shown)
        if s.needs is not Needs.VISITOR and s.id != "https" and is_claimant(web) and (i < index or done(web, s.id))
    }
    earlier = [s for s in steps[:index] if s in revisitable]
    return web.render(
        f"wizard/{step}.html",
        step=step,
        steps=steps,
        titles=titles,
        index=index,
        revisitable=revisitable,
        back=earlier[-1] if earlier and step not in ("admin", "password") else "",
        errors=kw.pop("errors", {}),
        code_file=str(web.data_dir / claim.SETUP_CODE_FILE),
        min_password=MIN_PASSWORD_LENGTH,
        password_rule=PASSWORD_RULE,
        **kw,
    )


def https_url(web: Web, path: str) -> str:
    ctx = web.ctx
    origin = https_origin(bottle.request.environ, ctx.config.http.https_port)
    if not origin:
        port = ctx.config.http.https_port
        origin = f"https://{ctx.hostname}" + ("" if port == 443 else f":{port}")
    return origin + path


def over_http(web: Web) -> str:
    """The wizard's page over plain HTTP while HTTPS is on (``app.Web._before`` serves it): where to
    go, and the certificate fingerprint to expect in the browser's warning."""
    req = bottle.request
    try:
        fingerprint = tls.fingerprint_sha256(web.ctx.tls.cert)
    except (OSError, ValueError):
        fingerprint = ""
    target = req.path if req.method in ("GET", "HEAD") and req.path.startswith("/wizard/") else "/wizard"
    return page(web, "https", fingerprint=fingerprint, https_url=https_url(web, target))


def serve(web: Web, step: WizardStep) -> str:
    """Every step's route: who may open it (``step.needs``), then its handler."""
    if not step.setup and not in_recovery(web):
        raise bottle.HTTPError(404, N_("Not found"))
    if step.needs is not Needs.VISITOR and not is_claimant(web):
        raise bottle.redirect("/wizard/claim")
    if step.needs is Needs.ADMIN:
        user = web.user()
        if user is None or not user.is_admin:
            raise bottle.redirect("/wizard/admin")
    return step.handler(web)


def home(web: Web) -> None:
    if in_recovery(web):
        raise bottle.redirect("/wizard/password" if is_claimant(web) else "/wizard/claim")
    if not is_claimant(web):
        raise bottle.redirect("/wizard/claim")
    for step in wizard(web).shown(False):
        if step.needs is not Needs.VISITOR and not step.skippable and not done(web, step.id):
            raise bottle.redirect(step.path)
    raise bottle.redirect("/wizard/summary")


def claimed(web: Web, how: str) -> str:
    ctx = web.ctx
    recovering = in_recovery(web)
    if not recovering:
        gen = claim.claim(web.data_dir, how)
        claim.close_recovery(web.data_dir)  # recovery during setup: this browser takes over
    else:
        gen = claim.reclaim(web.data_dir, how)
    sess = web.rotate_session()  # the claimant's id is not one seen before the claim
    sess.data["claimant"] = gen  # the claim generation: a newer claim elsewhere ends this one
    web.sessions.save_data(sess)
    ctx.accounts.record_event("claimed", "web", web.client_ip(), "", f"by {how}")
    web.forget_state()
    return "/wizard/password" if recovering else "/wizard/admin"


def claim_step(web: Web) -> str:
    if bottle.request.method == "GET" and is_claimant(web):
        raise bottle.redirect("/wizard")
    st, recovery = web.claim_state()  # as fresh as reading the claim database (claim.gate)
    if st != claim.UNCLAIMED and not recovery:
        # the owner who lost the claiming browser is told the way back (button hold, gk claim recover)
        bottle.response.status = 403
        return page(web, "claimed")
    if bottle.request.method == "GET":
        sess = web.session()
        assert sess is not None
        wizard(web).waiters.announce(sess.sid, fresh=True)  # this browser now waits for a button press
        return page(web, "claim")
    return claim_submit(web)


def claim_submit(web: Web) -> str:
    ctx = web.ctx
    guard = wizard(web).code_guard
    assert guard is not None
    ip = web.client_ip()
    delay = guard.attempt(ip)
    if delay is None:  # this address only: the owner on another device can still claim
        ctx.accounts.record_event("setup_code_locked", "web", ip)
        bottle.response.status = 429
        return page(web, "claim", errors={"code": web.gettext("Too many wrong codes; wait a few minutes.")})
    if delay:
        gevent.sleep(delay)
    code = forms.text("code")
    if code and claim.check_code(web.data_dir, code):
        guard.success(ip)
        raise bottle.redirect(claimed(web, "setup code"))
    ctx.accounts.record_event("setup_code_failed", "web", ip)
    bottle.response.status = 400
    return page(web, "claim", errors={"code": web.gettext("Wrong setup code.")})


def claim_button(web: Web) -> str:
    """Polled by the claim page (htmx, every 2 s). A press is granted only to the one browser
    that was waiting when it happened (``gk.claim.waiters``); with several waiting, none gets
    it and each is told to use the setup code (HTTP 286 tells htmx to stop polling)."""
    ctx = web.ctx
    waiters = wizard(web).waiters
    sess = web.session()
    assert sess is not None
    key = sess.sid
    waiters.announce(key)
    if waiters.refused(key):
        bottle.response.status = HTMX_STOP_POLLING
        return web.render("wizard/button_wait.html", refused=True)
    press = claim.pending_button_press(web.data_dir)
    if press is not None:
        press_id, pressed_at = press
        at_press = waiters.waiting_at(pressed_at)
        if len(at_press) > 1:
            claim.consume_button_press(web.data_dir, press_id)  # nobody gets this press
            waiters.refuse(at_press)
            ctx.accounts.record_event(
                "button_claim_refused", "web", web.client_ip(), "", f"{len(at_press)} browsers were waiting"
            )
            if key in at_press:
                bottle.response.status = HTMX_STOP_POLLING
                return web.render("wizard/button_wait.html", refused=True)
        elif at_press == {key} and claim.consume_button_press(web.data_dir, press_id):
            waiters.forget(key)
            bottle.response.set_header("HX-Redirect", claimed(web, "button"))
            return ""
    return web.render("wizard/button_wait.html", refused=False)


# -- recovery: new password for an administrator -----------------------------------------
def password_step(web: Web) -> str:
    ctx = web.ctx
    admins = [u.address for u in ctx.accounts.list_users() if u.is_admin]
    errors: dict[str, str] = {}
    if bottle.request.method == "POST":
        address = forms.text("address")
        pw, pw2 = forms.raw("password"), forms.raw("password2")
        if address not in admins:
            errors["address"] = web.gettext("Choose one of the administrator accounts.")
        elif pw != pw2:
            errors["password2"] = web.gettext("The two passwords differ.")
        else:
            try:
                ctx.accounts.set_password(address, pw)
            except AccountError as exc:
                errors["password"] = web.error_text(exc)
        if not errors:
            web.sessions.delete_user(address)
            claim.close_recovery(web.data_dir)
            ctx.accounts.record_event("owner_recovery", "web", web.client_ip(), address, "password reset")
            web.forget_state()
            web.log_out()
            raise bottle.redirect("/login")
    return page(web, "password", admins=admins)


# -- admin account ----------------------------------------------------------------------
def admin_step(web: Web) -> str:
    ctx = web.ctx
    errors: dict[str, str] = {}
    address = ""
    if bottle.request.method == "POST":
        address = forms.text("address").lower()
        pw, pw2 = forms.raw("password"), forms.raw("password2")
        try:
            address = check_address(address)
        except AccountError as exc:
            errors["address"] = web.error_text(exc)
        existing = ctx.accounts.get_user(address) if not errors else None
        if existing is not None and existing.is_admin:
            # resuming the wizard in another browser (after owner recovery during setup)
            result = ctx.auth.login(address, pw, web.client_ip(), "web")
            if result.ok and result.user is not None:
                web.log_in(result.user)
                mark(web, "admin")
                raise bottle.redirect("/wizard")
            errors["password"] = web.gettext("Wrong address or password.")
        elif pw != pw2:
            errors["password2"] = web.gettext("The two passwords differ.")
        if not errors:
            try:
                user = ctx.accounts.add_user(address, pw, admin=True)
            except AccountError as exc:
                errors["password" if "password" in str(exc).lower() else "address"] = web.error_text(exc)
            else:
                web.log_in(user)
                settings.of(web.data_dir).update(mail_domain=user.domain)
                mark(web, "admin")
                raise bottle.redirect(after(web, "admin"))
        bottle.response.status = 400
    current = web.user()
    shown = current.address if current and current.is_admin else ""
    return page(web, "admin", address=address, existing=shown, errors=errors)


def host_step(web: Web) -> str:
    ctx = web.ctx
    errors: dict[str, str] = {}
    domain = settings.of(web.data_dir).mail_domain()
    # never the machine's own name (vm.local): mail.<the admin's domain> until the owner chooses
    hostname = settings.of(web.data_dir).hostname() or (f"mail.{domain}" if domain else ctx.hostname)
    if bottle.request.method == "POST":
        hostname, domain = forms.text("hostname").lower(), forms.text("domain").lower()
        if not HOSTNAME_RE.match(hostname):
            errors["hostname"] = web.gettext("Enter a full host name such as mail.example.org.")
        if not HOSTNAME_RE.match(domain):
            errors["domain"] = web.gettext("Enter a domain such as example.org.")
        if not errors:
            settings.of(web.data_dir).update(hostname=hostname, mail_domain=domain)
            mark(web, "host")
            raise bottle.redirect(after(web, "host"))
        bottle.response.status = 400
    return page(web, "host", hostname=hostname, domain=domain, errors=errors)


def timezone_step(web: Web) -> str:
    errors: dict[str, str] = {}
    zones = sorted(zoneinfo.available_timezones())
    saved = settings.of(web.data_dir).timezone()
    tz = saved or "UTC"
    if bottle.request.method == "POST":
        tz = forms.text("timezone")
        if tz not in zones:
            errors["timezone"] = web.gettext("Choose a time zone from the list.")
            bottle.response.status = 400
        else:
            localtime.set_zone(web.data_dir, tz)
            mark(web, "timezone")
            raise bottle.redirect(after(web, "timezone"))
    return page(web, "timezone", zones=zones, timezone=tz, errors=errors, detect=not saved)


def tls_step(web: Web) -> str:
    ctx = web.ctx
    if bottle.request.method == "POST":
        settings.of(web.data_dir).update(https_redirect=bool(forms.text("https_redirect")))
        mark(web, "tls")
        raise bottle.redirect(after(web, "tls"))
    try:
        fingerprint = tls.fingerprint_sha256(ctx.tls.cert)
    except (OSError, ValueError):
        fingerprint = ""
    return page(
        web,
        "tls",
        fingerprint=fingerprint,
        https_port=ctx.config.http.https_port,
        redirect=settings.of(web.data_dir).https_redirect(default=True),
        own_cert=bool(ctx.config.tls.cert_file),
    )


def users_step(web: Web) -> str:
    ctx = web.ctx
    errors: dict[str, str] = {}
    address = confirm_domain = ""
    if bottle.request.method == "POST":
        if forms.text("action") == "continue":
            mark(web, "users")
            raise bottle.redirect(after(web, "users"))
        address = forms.text("address").lower()
        confirmed = bool(forms.text("new_domain")) and forms.text("new_domain") == address.rpartition("@")[2]
        try:
            added = ctx.accounts.add_user(address, forms.raw("password"), new_domain=confirmed)
        except DomainNotLocal as exc:
            errors["address"] = web.error_text(exc)
            confirm_domain = exc.domain
            bottle.response.status = 400
        except AccountError as exc:
            errors["password" if "password" in str(exc).lower() else "address"] = web.error_text(exc)
            bottle.response.status = 400
        else:  # post/redirect/get: a reload of the page after adds nobody twice
            flash.redirect(web, "/wizard/users", web.gettext("Added {address}.", address=added.address))
    domain = settings.of(web.data_dir).mail_domain()
    return page(
        web,
        "users",
        notice=flash.take(web).get("notice", ""),
        users=ctx.accounts.list_users(),
        address=address,
        domain=domain,
        errors=errors,
        confirm_domain=confirm_domain,
    )


def dns_step(web: Web) -> str:
    ctx = web.ctx
    if bottle.request.method == "POST":
        mark(web, "dns")
        raise bottle.redirect(after(web, "dns"))
    domain = settings.of(web.data_dir).mail_domain()
    hostname = settings.of(web.data_dir).hostname() or ctx.hostname
    records = dns_records(ctx, domain, hostname)
    has_dkim = any("v=DKIM1" in value for _, _, value in records)
    return page(web, "dns", records=records, domain=domain, has_dkim=has_dkim)


def outgoing_step(web: Web) -> str:
    ctx = web.ctx
    user = web.signed_in()
    errors: dict[str, str] = {}
    choice = smarthost.current(ctx.config.queue)
    if bottle.request.method == "POST":
        errors, choice = smarthost.save_form(web, user.address)
        if not errors:
            mark(web, "outgoing")
            raise bottle.redirect(after(web, "outgoing"))
        bottle.response.status = 400
    return page(web, "outgoing", choice=choice, errors=errors)


def ai_choices(web: Web, ram: int) -> tuple[list[tuple[str, str, int]], str]:
    """(id, label, MB needed) of "no assistant" and of each catalogue model that fits, smallest
    first; and the default: the smallest good one that fits, else none (gk.ai.catalogue)."""
    from gk.ai import catalogue

    try:
        entries = catalogue.cached(web.ctx.config.ai.catalogue)
    except catalogue.CatalogueError as exc:
        log.warning("wizard: %s", exc)
        entries = []
    fit = [
        (e.id, web.gettext("{name}, {size} MB ({licence})", name=e.name, size=e.approx_mb, licence=e.licence), e.ram_mb)
        for e in catalogue.fitting(entries, ram)
    ]
    default = catalogue.default_for(entries, ram)
    return [AI_MODELS[0], *fit], default.id if default else "none"


def start_model_download(web: Web, choice: str) -> None:
    """The chosen catalogue model starts downloading in the background (the models page shows it)."""
    from gk.ai import catalogue
    from gk.ai.service import AIService

    svc = web.ctx.services.maybe(AIService)
    entry = catalogue.find(catalogue.cached(web.ctx.config.ai.catalogue), choice) if choice != "none" else None
    if svc is not None and entry is not None and entry.downloadable:
        svc.pulls.start(entry.id)


def ai_step(web: Web) -> str:
    ram = total_ram_mb()
    fitting, default = ai_choices(web, ram)
    errors: dict[str, str] = {}
    if bottle.request.method == "POST":
        choice = forms.text("model")
        if choice not in {m[0] for m in fitting}:
            errors["model"] = web.gettext("Choose one of the listed models.")
            bottle.response.status = 400
        else:
            settings.of(web.data_dir).update(ai_model=choice)
            start_model_download(web, choice)
            mark(web, "ai")
            raise bottle.redirect(after(web, "ai"))
    current = settings.of(web.data_dir).ai_model(default=default)
    return page(web, "ai", models=fitting, ram=ram, current=current, errors=errors)


def summary_step(web: Web) -> str:
    ctx = web.ctx
    if bottle.request.method == "POST":
        if chosen_host := settings.of(web.data_dir).hostname():  # saved to gk.toml by the host step
            renew_certificate(ctx, chosen_host)
        claim.complete(web.data_dir)
        web.forget_state()
        ctx.accounts.record_event("wizard_complete", "web", web.client_ip(), web.signed_in().address)
        raise bottle.redirect("/dashboard")
    features = [(s.id, s.title, s.summary(web)) for s in wizard(web).shown(False) if s.summary is not None]
    return page(
        web,
        "summary",
        settings=settings.of(web.data_dir).snapshot(),
        users=ctx.accounts.list_users(),
        outgoing=smarthost.describe(ctx.config.queue, web.gettext),
        features=features,
    )


def ai_summary(web: Web) -> str:
    """The AI model on the summary: its catalogue name, and how its download goes (the wizard's
    choice starts it; offline it fails, and the owner should know before the wizard closes)."""
    choice = settings.of(web.data_dir).ai_model(default="none")
    if choice in ("", "none"):
        return web.gettext("No assistant")
    from gk.ai import catalogue

    try:
        name = next((e.name for e in catalogue.cached(web.ctx.config.ai.catalogue) if e.id == choice), choice)
    except catalogue.CatalogueError:
        name = choice
    from gk.ai.service import AIService

    svc = web.ctx.services.maybe(AIService)
    state = svc.pulls.states.get(choice) if svc is not None else None
    if state is None or (state.finished and not state.error):
        return name
    if not state.finished:
        return web.gettext("{name} (downloading: {percent} %)", name=name, percent=state.percent)
    return web.gettext("{name} (the download did not finish: {error})", name=name, error=state.error)


def dns_records(ctx: AppContext, domain: str, hostname: str) -> list[tuple[str, str, str]]:
    """(name, type, value) to publish: ``gk.mail.dnsrecords`` (MX, SPF, DKIM, DMARC) when present."""
    if not domain:
        return []
    try:
        from gk.mail import dnsrecords

        view = types.SimpleNamespace(config=ctx.config, data_dir=ctx.data_dir, hostname=hostname)
        return [(r["name"], r["type"], r["value"]) for r in dnsrecords.records_for(view, domain)]
    except ImportError:
        pass
    from gk.mail.authcheck.dmarc import OWN_DOMAIN_POLICY

    return [
        (domain, "MX", f"10 {hostname}."),
        (domain, "TXT", "v=spf1 mx -all"),
        (f"_dmarc.{domain}", "TXT", f"v=DMARC1; p={OWN_DOMAIN_POLICY}; rua=mailto:postmaster@{domain}"),
    ]


def renew_certificate(ctx: AppContext, hostname: str) -> None:
    """The self-signed certificate names the host chosen in the wizard from the next handshake on."""
    from gk.security.tls import renew_self_signed

    if pools.run_cpu(renew_self_signed, ctx.data_dir, ctx.config.tls, hostname):
        # loaded on the hub, where handshakes run: the shared context is never changed from two threads
        ctx.ssl_context.load_cert_chain(str(ctx.tls.cert), str(ctx.tls.key))
        log.info("made a new self-signed certificate for %s", hostname)
