"""The first-boot wizard: claim → admin → host & domain → time zone → TLS → users → DNS → outgoing mail
→ AI → summary.

Served only to LAN clients until complete (``app.Web._before``), then dead (404) except for
the claim and password steps while owner recovery is open. Claiming takes the setup code
(wrong codes are throttled per client address by ``gk.claim.codeguard``: delays, then that address
alone locked out; each a security event)
or a button press made while this browser's claim page was open (polled with htmx), granted only
when no other browser was waiting for it (``gk.claim.waiters``).
Wizard choices live in the claim store (``gk.claim``), so they survive a crash mid-wizard.
"""

from __future__ import annotations

import logging
import re
import types
import zoneinfo
from typing import Any

import bottle
import gevent

from gk import claim, localtime, pools
from gk.accounts import AccountError
from gk.accounts.passwords import MIN_PASSWORD_LENGTH
from gk.accounts.store import check_address
from gk.claim.codeguard import CodeGuard
from gk.claim.waiters import ButtonWaiters
from gk.config import ConfigError
from gk.locale import N_
from gk.security import tls
from gk.web import forms, smarthost
from gk.web.app import Web
from gk.web.headers import https_origin

log = logging.getLogger("gk.web")
HTMX_STOP_POLLING = 286  # htmx stops an "every 2s" trigger on this status

STEPS = ["claim", "admin", "host", "timezone", "tls", "users", "dns", "outgoing", "ai", "summary"]
TITLES = {
    "claim": N_("Claim this server"),
    "admin": N_("Administrator account"),
    "host": N_("Host name and mail domain"),
    "timezone": N_("Time zone"),
    "tls": N_("Certificate"),
    "users": N_("Users"),
    "dns": N_("DNS records to publish"),
    "outgoing": N_("Outgoing mail"),
    "ai": N_("AI model"),
    "summary": N_("Summary"),
    "https": N_("Continue over HTTPS"),
}
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)

# Placeholder list until the AI feature lands: (id, label, RAM needed in MB).
AI_MODELS = [
    ("none", N_("No assistant"), 0),
    ("qwen2.5-0.5b-q4", "Qwen2.5 0.5B Instruct (Q4_K_M, ~400 MB)", 900),
    ("llama3.2-1b-q4", "Llama 3.2 1B Instruct (Q4_K_M, ~800 MB)", 1800),
    ("llama3.2-3b-q4", "Llama 3.2 3B Instruct (Q4_K_M, ~2 GB)", 3800),
]


def total_ram_mb() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def register(web: Web) -> None:
    app = web.app
    ctx = web.ctx
    waiters = ButtonWaiters()
    code_guard = CodeGuard(ctx.config.http.setup_code_lockout_failures, ctx.config.http.setup_code_lockout_seconds)

    def done(step: str) -> bool:
        return claim.get_setting(web.data_dir, "done:" + step) == "1"

    def mark(step: str) -> None:
        claim.set_settings(web.data_dir, **{"done:" + step: "1"})

    def in_recovery() -> bool:
        st, rec = web.claim_state()
        return st == claim.COMPLETE and rec

    def is_claimant() -> bool:
        sess = web.session()
        return bool(sess and sess.data.get("claimant"))

    def need_admin_session() -> Any:
        """Steps after 'admin' need the claimant logged in as an administrator."""
        if not is_claimant():
            raise bottle.redirect("/wizard/claim")
        user = web.user()
        if user is None or not user.is_admin:
            raise bottle.redirect("/wizard/admin")
        return user

    def page(step: str, **kw: Any) -> str:
        steps = ["claim", "password"] if in_recovery() else STEPS
        return web.render(
            f"wizard/{step}.html",
            step=step,
            steps=steps,
            titles=TITLES,
            index=steps.index(step) if step in steps else 0,
            errors=kw.pop("errors", {}),
            code_file=str(web.data_dir / claim.SETUP_CODE_FILE),
            min_password=MIN_PASSWORD_LENGTH,
            **kw,
        )

    def https_url(path: str) -> str:
        origin = https_origin(bottle.request.environ, ctx.config.http.https_port)
        if not origin:
            port = ctx.config.http.https_port
            origin = f"https://{ctx.hostname}" + ("" if port == 443 else f":{port}")
        return origin + path

    def over_https_only() -> None:
        """Before every wizard route: over plain HTTP (with HTTPS on) the wizard is only a page that
        sends the owner to HTTPS and shows the certificate fingerprint to expect in the browser's
        warning; the setup code and the administrator password never cross the network in clear
        text, and a POST over HTTP changes nothing (403)."""
        req = bottle.request
        if not req.path.startswith("/wizard") or web.is_https() or not ctx.config.http.https_port:
            return
        try:
            fingerprint = tls.fingerprint_sha256(ctx.tls.cert)
        except (OSError, ValueError):
            fingerprint = ""
        target = req.path if req.method in ("GET", "HEAD") and req.path.startswith("/wizard/") else "/wizard"
        body = page("https", fingerprint=fingerprint, https_url=https_url(target))
        raise bottle.HTTPResponse(body, status=200 if req.method in ("GET", "HEAD") else 403)

    app.add_hook("before_request", over_https_only)

    @app.get("/wizard")
    @app.get("/wizard/")
    def wizard_home() -> None:
        if in_recovery():
            raise bottle.redirect("/wizard/password" if is_claimant() else "/wizard/claim")
        if not is_claimant():
            raise bottle.redirect("/wizard/claim")
        for step in STEPS[1:]:
            if not done(step):
                raise bottle.redirect(f"/wizard/{step}")
        raise bottle.redirect("/wizard/summary")

    def claimed(how: str) -> str:
        recovering = in_recovery()
        if not recovering:
            claim.claim(web.data_dir, how)
            claim.close_recovery(web.data_dir)  # recovery during setup: this browser takes over
        sess = web.rotate_session()  # the claimant's id is not one seen before the claim
        sess.data["claimant"] = True
        web.sessions.save_data(sess)
        ctx.accounts.record_event("claimed", "web", web.client_ip(), "", f"by {how}")
        web.forget_state()
        return "/wizard/password" if recovering else "/wizard/admin"

    @app.get("/wizard/claim")
    def claim_form() -> str:
        if is_claimant():
            raise bottle.redirect("/wizard")
        if claim.state(web.data_dir) != claim.UNCLAIMED and not claim.recovery_open(web.data_dir):
            raise bottle.HTTPError(403, N_("This server is already being set up from another browser."))
        sess = web.session()
        assert sess is not None
        waiters.announce(sess.sid, fresh=True)  # this browser now waits for a button press
        return page("claim")

    @app.post("/wizard/claim")
    def claim_submit() -> str:
        if claim.state(web.data_dir) != claim.UNCLAIMED and not claim.recovery_open(web.data_dir):
            raise bottle.HTTPError(403, N_("This server is already being set up from another browser."))
        ip = web.client_ip()
        delay = code_guard.attempt(ip)
        if delay is None:  # this address only: the owner on another device can still claim
            ctx.accounts.record_event("setup_code_locked", "web", ip)
            bottle.response.status = 429
            return page("claim", errors={"code": web.gettext("Too many wrong codes; wait a few minutes.")})
        if delay:
            gevent.sleep(delay)
        code = forms.text("code")
        if code and claim.check_code(web.data_dir, code):
            code_guard.success(ip)
            raise bottle.redirect(claimed("setup code"))
        ctx.accounts.record_event("setup_code_failed", "web", ip)
        bottle.response.status = 400
        return page("claim", errors={"code": web.gettext("Wrong setup code.")})

    @app.post("/wizard/claim/button")
    def claim_button() -> str:
        """Polled by the claim page (htmx, every 2 s). A press is granted only to the one browser
        that was waiting when it happened (``gk.claim.waiters``); with several waiting, none gets
        it and each is told to use the setup code (HTTP 286 tells htmx to stop polling)."""
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
                bottle.response.set_header("HX-Redirect", claimed("button"))
                return ""
        return web.render("wizard/button_wait.html", refused=False)

    # -- recovery: new password for an administrator -------------------------------------
    @app.route("/wizard/password", method=["GET", "POST"])
    def recovery_password() -> str:
        if not in_recovery():
            raise bottle.HTTPError(404, N_("Not found"))
        if not is_claimant():
            raise bottle.redirect("/wizard/claim")
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
        return page("password", admins=admins)

    # -- admin account ------------------------------------------------------------------
    @app.route("/wizard/admin", method=["GET", "POST"])
    def admin_step() -> str:
        if not is_claimant():
            raise bottle.redirect("/wizard/claim")
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
                    mark("admin")
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
                    claim.set_settings(web.data_dir, mail_domain=user.domain)
                    mark("admin")
                    raise bottle.redirect("/wizard/host")
            bottle.response.status = 400
        user = web.user()
        return page("admin", address=address, existing=user.address if user and user.is_admin else "", errors=errors)

    @app.route("/wizard/host", method=["GET", "POST"])
    def host_step() -> str:
        need_admin_session()
        errors: dict[str, str] = {}
        hostname = claim.get_setting(web.data_dir, "hostname", ctx.hostname)
        domain = claim.get_setting(web.data_dir, "mail_domain", "")
        if bottle.request.method == "POST":
            hostname, domain = forms.text("hostname").lower(), forms.text("domain").lower()
            if not HOSTNAME_RE.match(hostname):
                errors["hostname"] = web.gettext("Enter a full host name such as mail.example.org.")
            if not HOSTNAME_RE.match(domain):
                errors["domain"] = web.gettext("Enter a domain such as example.org.")
            if not errors:
                claim.set_settings(web.data_dir, hostname=hostname, mail_domain=domain)
                mark("host")
                raise bottle.redirect("/wizard/timezone")
            bottle.response.status = 400
        return page("host", hostname=hostname, domain=domain, errors=errors)

    @app.route("/wizard/timezone", method=["GET", "POST"])
    def timezone_step() -> str:
        need_admin_session()
        errors: dict[str, str] = {}
        zones = sorted(zoneinfo.available_timezones())
        tz = claim.get_setting(web.data_dir, "timezone", "UTC")
        if bottle.request.method == "POST":
            tz = forms.text("timezone")
            if tz not in zones:
                errors["timezone"] = web.gettext("Choose a time zone from the list.")
                bottle.response.status = 400
            else:
                localtime.set_zone(web.data_dir, tz)
                mark("timezone")
                raise bottle.redirect("/wizard/tls")
        return page("timezone", zones=zones, timezone=tz, errors=errors)

    @app.route("/wizard/tls", method=["GET", "POST"])
    def tls_step() -> str:
        need_admin_session()
        if bottle.request.method == "POST":
            claim.set_settings(web.data_dir, https_redirect="1" if forms.text("https_redirect") else "0")
            mark("tls")
            raise bottle.redirect("/wizard/users")
        try:
            fingerprint = tls.fingerprint_sha256(ctx.tls.cert)
        except (OSError, ValueError):
            fingerprint = ""
        return page(
            "tls",
            fingerprint=fingerprint,
            https_port=ctx.config.http.https_port,
            redirect=claim.get_setting(web.data_dir, "https_redirect", "1") == "1",
            own_cert=bool(ctx.config.tls.cert_file),
        )

    @app.route("/wizard/users", method=["GET", "POST"])
    def users_step() -> str:
        need_admin_session()
        errors: dict[str, str] = {}
        address = ""
        if bottle.request.method == "POST":
            if forms.text("action") == "continue":
                mark("users")
                raise bottle.redirect("/wizard/dns")
            address = forms.text("address").lower()
            try:
                ctx.accounts.add_user(address, forms.raw("password"))
                address = ""
            except AccountError as exc:
                errors["password" if "password" in str(exc).lower() else "address"] = web.error_text(exc)
                bottle.response.status = 400
        domain = claim.get_setting(web.data_dir, "mail_domain", "")
        return page("users", users=ctx.accounts.list_users(), address=address, domain=domain, errors=errors)

    @app.route("/wizard/dns", method=["GET", "POST"])
    def dns_step() -> str:
        need_admin_session()
        if bottle.request.method == "POST":
            mark("dns")
            raise bottle.redirect("/wizard/outgoing")
        domain = claim.get_setting(web.data_dir, "mail_domain", "")
        hostname = claim.get_setting(web.data_dir, "hostname", ctx.hostname)
        records = dns_records(ctx, domain, hostname)
        has_dkim = any("v=DKIM1" in value for _, _, value in records)
        return page("dns", records=records, domain=domain, has_dkim=has_dkim)

    @app.route("/wizard/outgoing", method=["GET", "POST"])
    def outgoing_step() -> str:
        user = need_admin_session()
        errors: dict[str, str] = {}
        choice = smarthost.current(ctx.config.queue)
        if bottle.request.method == "POST":
            form = {k: forms.raw(k) for k in ("mode", "host", "port", "tls", "username", "password")}
            values, errors, choice = smarthost.parse_form(form, ctx.config.queue)
            if not errors:
                try:
                    smarthost.save(ctx, values, user.address, web.client_ip())
                except (ConfigError, OSError) as exc:
                    errors["mode"] = web.gettext("Could not save gk.toml: {error}", error=exc)
                else:
                    mark("outgoing")
                    raise bottle.redirect("/wizard/ai")
            bottle.response.status = 400
        return page("outgoing", choice=choice, errors=errors)

    @app.route("/wizard/ai", method=["GET", "POST"])
    def ai_step() -> str:
        need_admin_session()
        ram = total_ram_mb()
        fitting = [(mid, label, need) for mid, label, need in AI_MODELS if need <= ram or mid == "none"]
        errors: dict[str, str] = {}
        if bottle.request.method == "POST":
            choice = forms.text("model")
            if choice not in {m[0] for m in fitting}:
                errors["model"] = web.gettext("Choose one of the listed models.")
                bottle.response.status = 400
            else:
                claim.set_settings(web.data_dir, ai_model=choice)
                mark("ai")
                raise bottle.redirect("/wizard/summary")
        current = claim.get_setting(web.data_dir, "ai_model", fitting[-1][0])
        return page("ai", models=fitting, ram=ram, current=current, errors=errors)

    @app.route("/wizard/summary", method=["GET", "POST"])
    def summary_step() -> str:
        need_admin_session()
        if bottle.request.method == "POST":
            settings = claim.all_settings(web.data_dir)
            if settings.get("hostname"):
                apply_hostname(web.data_dir, settings["hostname"])
                renew_certificate(ctx, settings["hostname"])
            claim.complete(web.data_dir)
            web.forget_state()
            ctx.accounts.record_event("wizard_complete", "web", web.client_ip(), str(web.user().address))  # type: ignore[union-attr]
            raise bottle.redirect("/dashboard")
        return page(
            "summary",
            settings=claim.all_settings(web.data_dir),
            users=ctx.accounts.list_users(),
            outgoing=smarthost.describe(ctx.config.queue, web.gettext),
        )


def dns_records(ctx: Any, domain: str, hostname: str) -> list[tuple[str, str, str]]:
    """(name, type, value) to publish: ``gk.mail.dnsrecords`` (MX, SPF, DKIM, DMARC) when present."""
    if not domain:
        return []
    try:
        from gk.mail import dnsrecords

        view = types.SimpleNamespace(config=ctx.config, data_dir=ctx.data_dir, hostname=hostname)
        return [(r["name"], r["type"], r["value"]) for r in dnsrecords.records_for(view, domain)]
    except ImportError:
        pass
    return [
        (domain, "MX", f"10 {hostname}."),
        (domain, "TXT", "v=spf1 mx -all"),
        (f"_dmarc.{domain}", "TXT", f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"),
    ]


def renew_certificate(ctx: Any, hostname: str) -> None:
    """The self-signed certificate names the host chosen in the wizard from the next handshake on."""
    from gk.security.tls import renew_self_signed

    if pools.run_cpu(renew_self_signed, ctx.data_dir, ctx.config.tls, hostname):
        # loaded on the hub, where handshakes run: the shared context is never changed from two threads
        ctx.ssl_context.load_cert_chain(str(ctx.tls.cert), str(ctx.tls.key))
        log.info("made a new self-signed certificate for %s", hostname)


def apply_hostname(data_dir: Any, hostname: str) -> None:
    """Set ``server.hostname`` in gk.toml by editing that one line (comments and other keys kept)."""
    path = data_dir / "gk.toml"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    section = ""
    new = f'hostname = "{hostname}"'
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("["):
            section = s.strip("[] ")
        elif section == "server" and re.match(r"^hostname\s*=", s):
            lines[i] = new
            break
    else:
        if "[server]" in [x.strip() for x in lines]:
            lines.insert([x.strip() for x in lines].index("[server]") + 1, new)
        else:
            lines[:0] = ["[server]", new, ""]
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
