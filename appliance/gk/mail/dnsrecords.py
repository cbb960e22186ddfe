"""The DNS records a mail domain should publish, and a check of them against live DNS.

``records_for(ctx_or_data_dir, domain)`` returns MX, SPF, DKIM (RSA, plus Ed25519 when
``queue.dkim_ed25519_selector`` is set) and DMARC records as dicts ``{type, name, value,
purpose}``; DKIM keys are created if missing, so the records can be published before the
first start. the mail host's A record, the SRV records of RFC 6186/8314 and the ``autoconfig``/``autodiscover``
names come after them. ``check_live(records, resolver)`` looks each one up and says ``ok``,
``missing`` or ``different``. ``gk dns records DOMAIN [--check] [--json]`` prints them.
MTA-STS/TLS-RPT records are not offered: GK does not serve an MTA-STS policy (yet).
Cost: a few file reads; the live check is one DNS query per record.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
from pathlib import Path
from typing import Any

import dns.exception
import dns.resolver

from gk.config import Config
from gk.config import load as load_config
from gk.context import hostname_of
from gk.locale import N_
from gk.mail.authcheck.dmarc import OWN_DOMAIN_POLICY
from gk.mail.dkim import dns_record, ensure_keys

# what each record is for, shown next to it (translated where shown: gk.locale)
DKIM_PURPOSE = {
    "rsa": N_("DKIM public key (rsa) that signs outgoing mail"),
    "ed25519": N_("DKIM public key (ed25519) that signs outgoing mail"),
}


def _config_and_dir(ctx_or_data_dir: Any) -> tuple[Config, Path, str]:
    if isinstance(ctx_or_data_dir, (str, Path)):
        data_dir = Path(ctx_or_data_dir)
        cfg = load_config(data_dir)
        hostname = hostname_of(cfg)
        return cfg, data_dir, hostname
    return ctx_or_data_dir.config, ctx_or_data_dir.data_dir, ctx_or_data_dir.hostname


def _spf_mechanism(host: str) -> str:
    """``ip4:``/``ip6:`` for an address (``a:1.2.3.4`` is not valid SPF), else ``a:host``."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"a:{host}"
    return f"ip{ip.version}:{ip}"


def records_for(ctx_or_data_dir: Any, domain: str) -> list[dict[str, str]]:
    cfg, data_dir, hostname = _config_and_dir(ctx_or_data_dir)
    domain = domain.lower().rstrip(".")
    spf = "v=spf1 mx -all"
    if cfg.queue.smarthost:
        spf = f"v=spf1 mx {_spf_mechanism(cfg.queue.smarthost)} ~all"
    records = [
        {"type": "MX", "name": domain, "value": f"10 {hostname}.", "purpose": N_("mail for the domain comes to GK")},
        {"type": "TXT", "name": domain, "value": spf, "purpose": N_("SPF: who may send mail for the domain")},
    ]
    q = cfg.queue
    for key in ensure_keys(data_dir, domain, q.dkim_selector, q.dkim_ed25519_selector):
        records.append(
            {
                "type": "TXT",
                "name": key.dns_name,
                "value": dns_record(key),
                "purpose": DKIM_PURPOSE.get(
                    key.algorithm, f"DKIM public key ({key.algorithm}) that signs outgoing mail"
                ),
            }
        )
    records.append(
        {
            "type": "TXT",
            "name": f"_dmarc.{domain}",
            # the policy the SMTP service applies itself to mail claiming this domain on port 25
            "value": f"v=DMARC1; p={OWN_DOMAIN_POLICY}; adkim=r; aspf=r",
            "purpose": N_("DMARC: what receivers do with mail failing SPF and DKIM"),
        }
    )
    records.append(
        {
            "type": "A",
            "name": hostname,
            "value": "",
            "purpose": N_("the mail host's public IPv4 address (your router's); any value is accepted"),
        }
    )
    records.extend(client_setup_records(cfg, domain, hostname))
    return records


def client_setup_records(cfg: Config, domain: str, hostname: str) -> list[dict[str, str]]:
    """SRV records for automatic client setup (RFC 6186, implicit TLS preferred as RFC 8314 §5.1
    asks) and the autoconfig/autodiscover names Thunderbird and Outlook try first."""
    out = []
    for service, port in (
        ("_submissions._tcp", cfg.smtp.submissions_port),
        ("_submission._tcp", cfg.smtp.submission_port),
        ("_imaps._tcp", cfg.imap.tls_port),
    ):
        if port:
            out.append(
                {
                    "type": "SRV",
                    "name": f"{service}.{domain}",
                    "value": f"0 1 {port} {hostname}.",
                    "purpose": N_("lets mail apps find the server by themselves (RFC 6186)"),
                }
            )
    if cfg.dav.enabled and cfg.http.https_port:
        # calendars and contacts (RFC 6764 §3): SRV for the host and port, TXT for the path
        for service in ("_caldavs._tcp", "_carddavs._tcp"):
            out.append(
                {
                    "type": "SRV",
                    "name": f"{service}.{domain}",
                    "value": f"0 1 {cfg.http.https_port} {hostname}.",
                    "purpose": N_("lets calendar and contacts apps find the server by themselves (RFC 6764)"),
                }
            )
            out.append(
                {
                    "type": "TXT",
                    "name": f"{service}.{domain}",
                    "value": "path=/dav/",
                    "purpose": N_("where calendars and contacts are on the server (RFC 6764)"),
                }
            )
    for name in ("autoconfig", "autodiscover"):
        out.append(
            {
                "type": "CNAME",
                "name": f"{name}.{domain}",
                "value": f"{hostname}.",
                "purpose": N_("lets Thunderbird and Outlook fetch the settings from GK"),
            }
        )
    return out


def _normalize(rtype: str, value: str) -> str:
    value = value.strip().lower()
    if rtype == "MX":
        pref, _, host = value.partition(" ")
        return f"{pref} {host.strip().rstrip('.')}"
    if rtype in ("SRV", "CNAME"):
        return " ".join(value.split()).rstrip(".")
    return " ".join(value.replace(" ;", ";").split())


def check_live(records: list[dict[str, str]], resolver: dns.resolver.Resolver) -> list[dict[str, Any]]:
    """Each record with ``status`` (ok/missing/different/error) and the ``found`` values."""
    out = []
    for rec in records:
        found: list[str] = []
        status = "missing"
        try:
            answers = resolver.resolve(rec["name"], rec["type"], search=False)
            for r in answers:
                if rec["type"] == "TXT":
                    found.append(b"".join(r.strings).decode("utf-8", "replace"))
                else:
                    found.append(r.to_text())
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            pass
        except dns.exception.DNSException as exc:
            status = "error"
            found = [str(exc)]
        if status != "error" and not found and rec["type"] == "CNAME":
            found = _addresses(resolver, rec["name"])  # an A record instead of the CNAME works too
            if found:
                status = "ok"
                out.append({**rec, "status": status, "found": found})
                continue
        if status != "error" and found and not rec["value"]:
            status = "ok"  # any value will do (the host's address)
        elif status != "error" and found:
            want = _normalize(rec["type"], rec["value"])
            if rec["type"] == "TXT":
                prefix = rec["value"].split(";")[0].split(" ")[0].lower()
                found = [f for f in found if f.lower().startswith(prefix)] or found
            status = "ok" if any(_normalize(rec["type"], f) == want for f in found) else "different"
        out.append({**rec, "status": status, "found": found})
    return out


def _addresses(resolver: dns.resolver.Resolver, name: str) -> list[str]:
    try:
        return [r.to_text() for r in resolver.resolve(name, "A", search=False)]
    except dns.exception.DNSException:
        return []


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="dns_cmd", required=True)
    r = sub.add_parser("records", help="print the DNS records to publish for DOMAIN")
    r.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    r.add_argument("domain")
    r.add_argument("--check", action="store_true", help="compare with what DNS answers now")
    r.add_argument("--json", action="store_true", help="machine-readable output")


def handle(args: argparse.Namespace) -> int:
    records: list[dict[str, Any]] = records_for(args.data_dir, args.domain)
    if args.check:
        from gk.mail.dnsresolver import make_resolver

        records = check_live(records, make_resolver(load_config(args.data_dir).dns))
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for rec in records:
        value = rec["value"] if rec["type"] != "TXT" else json.dumps(rec["value"])
        status = f"\t; {rec['status']}" if "status" in rec else ""
        print(f"{rec['name']}.\tIN\t{rec['type']}\t{value}{status}")
    if args.check and any(r["status"] != "ok" for r in records):
        return 1
    return 0
