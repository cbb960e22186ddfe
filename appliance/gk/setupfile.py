"""Headless first boot: ``gk setup --answers FILE`` does what the web wizard does, from a TOML file.

For scripted installs, fleets and tests (YunoHost's ``tools postinstall`` is the model)::

    [admin]
    address = "me@example.org"
    password = "a long passphrase"
    [host]
    hostname = "mail.example.org"   # default: mail.<domain of the admin>
    domain = "example.org"          # default: the admin's domain
    timezone = "Europe/Paris"       # default: UTC
    https_redirect = true
    [outgoing]
    mode = "direct"                 # or "relay", with host, port, tls, username, password
    [ai]
    model = "none"
    [[users]]
    address = "kid@example.org"
    password = "another passphrase"

Every field is checked before anything is written; an error names the field and the fix
(``[host] timezone: 'Mars/Olympus' is not a time zone …``). Then: the box is claimed (the setup
code is spent), the admin and users are created, the settings saved, gk.toml gets the host
name and the outgoing route, and the wizard is closed for good. A box already set up is left
alone (exit 1). Run it before ``gk serve`` starts (first boot) or restart GK after it.
"""

from __future__ import annotations

import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gk import claim, localtime, settings
from gk.accounts import AccountError
from gk.accounts.passwords import password_problem
from gk.accounts.store import check_address

AI_MODELS = ("none", "qwen2.5-0.5b-q4", "llama3.2-1b-q4", "llama3.2-3b-q4")
HOST_FIELDS = {"hostname", "domain", "timezone", "https_redirect"}


def _catalogue_ids() -> tuple[str, ...]:
    """The model ids of the catalogue shipped with GK (gk/ai/catalogue.toml), as the wizard offers them."""
    from gk.ai import catalogue

    try:
        return tuple(e.id for e in catalogue.cached())
    except catalogue.CatalogueError:
        return ()


class AnswersError(Exception):
    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{source}:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class Answers:
    admin_address: str
    admin_password: str
    hostname: str
    domain: str
    timezone: str = "UTC"
    https_redirect: bool = True
    outgoing: dict[str, str] = field(default_factory=lambda: {"mode": "direct"})
    ai_model: str = "none"
    users: list[tuple[str, str]] = field(default_factory=list)


def _str(table: dict[str, Any], key: str, where: str, problems: list[str], default: str | None = None) -> str:
    value = table.get(key, default)
    if value is None:
        problems.append(f'[{where}] {key}: missing; add {key} = "…"')
        return ""
    if not isinstance(value, str):
        problems.append(f"[{where}] {key}: must be a string")
        return ""
    return value.strip()


def parse(text: str, source: str = "answers") -> Answers:
    """The answers in ``text`` (TOML), every problem reported at once as an ``AnswersError``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AnswersError(source, [f"not valid TOML: {exc}"]) from None
    problems: list[str] = []
    for key in data:
        if key not in ("admin", "host", "outgoing", "ai", "users"):
            problems.append(f"[{key}]: unknown table; the tables are [admin], [host], [outgoing], [ai], [[users]]")
    admin = data.get("admin", {})
    host = data.get("host", {})
    for key in host:
        if key not in HOST_FIELDS:
            problems.append(f"[host] {key}: unknown key; the keys are " + ", ".join(sorted(HOST_FIELDS)))
    address = _str(admin, "address", "admin", problems).lower()
    password = _str(admin, "password", "admin", problems)
    try:
        address = check_address(address) if address else address
    except AccountError as exc:
        problems.append(f"[admin] address: {exc}")
    if password and (why := password_problem(password)):
        problems.append(f"[admin] password: {why}")
    admin_domain = address.rpartition("@")[2]
    domain = _str(host, "domain", "host", problems, admin_domain).lower()
    hostname = _str(host, "hostname", "host", problems, f"mail.{domain}" if domain else "").lower()
    if hostname.endswith(".local") or "." not in hostname:
        problems.append(f"[host] hostname: {hostname!r} is not a full host name such as mail.{domain or 'example.org'}")
    timezone = _str(host, "timezone", "host", problems, "UTC")
    if timezone not in zoneinfo.available_timezones():
        problems.append(f"[host] timezone: {timezone!r} is not a time zone; use a name such as Europe/Paris")
    redirect = host.get("https_redirect", True)
    if not isinstance(redirect, bool):
        problems.append("[host] https_redirect: must be true or false")
    outgoing = {k: str(v) for k, v in data.get("outgoing", {"mode": "direct"}).items()}
    ai_model = _str(data.get("ai", {}), "model", "ai", problems, "none")
    if ai_model not in AI_MODELS and ai_model not in _catalogue_ids():
        problems.append(f"[ai] model: {ai_model!r} is not one of " + ", ".join(AI_MODELS + _catalogue_ids()))
    users = []
    for n, u in enumerate(data.get("users", []), 1):
        u_address = _str(u, "address", f"users #{n}", problems).lower()
        u_password = _str(u, "password", f"users #{n}", problems)
        try:
            u_address = check_address(u_address) if u_address else u_address
        except AccountError as exc:
            problems.append(f"[[users]] #{n} address: {exc}")
        if u_password and (why := password_problem(u_password)):
            problems.append(f"[[users]] #{n} password: {why}")
        users.append((u_address, u_password))
    answers = Answers(address, password, hostname, domain, timezone, bool(redirect), outgoing, ai_model, users)
    if problems:
        raise AnswersError(source, problems)
    return answers


def apply(data_dir: Path, answers: Answers) -> list[str]:
    """Set the box up as the wizard would; returns what was done, one line each."""
    from gk.config import load
    from gk.context import open_accounts
    from gk.security.tls import renew_self_signed
    from gk.web import smarthost

    if claim.is_complete(data_dir):
        raise AnswersError(str(data_dir), ["this box is already set up; use the web UI or `gk claim recover`"])
    cfg = load(data_dir)
    values, errors, _ = smarthost.parse_form(answers.outgoing, cfg.queue)
    if errors:
        raise AnswersError("answers", [f"[outgoing] {k}: {v}" for k, v in errors.items()])
    accounts = open_accounts(cfg, data_dir)
    done = []
    claim.claim(data_dir, "answers file")
    done.append("claimed: the setup code is spent")
    existing = accounts.get_user(answers.admin_address)
    if existing is None:
        accounts.add_user(answers.admin_address, answers.admin_password, admin=True)
    elif not existing.is_admin:
        accounts.set_admin(answers.admin_address, True)
    done.append(f"administrator {answers.admin_address}")
    for address, password in answers.users:
        if accounts.get_user(address) is None:
            accounts.add_user(address, password)
            done.append(f"user {address}")
    owner = settings.of(data_dir)
    owner.update(
        hostname=answers.hostname,  # into gk.toml: read at the next start
        mail_domain=answers.domain,
        https_redirect=answers.https_redirect,
        ai_model=answers.ai_model,
    )
    localtime.set_zone(data_dir, answers.timezone)
    owner.set_relay(values)
    renew_self_signed(data_dir, cfg.tls, answers.hostname)
    done.append(f"host {answers.hostname}, mail domain {answers.domain}, time zone {answers.timezone}")
    done.append("outgoing mail " + smarthost.describe(load(data_dir).queue))
    claim.complete(data_dir)
    accounts.record_event("wizard_complete", "cli", "", answers.admin_address, "gk setup --answers")
    done.append("the wizard is closed")
    return done
