"""The checks of a diagnosis run, one function per subject; see the package docstring."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gk.config import Config
from gk.locale import N_

if TYPE_CHECKING:
    import dns.resolver

OK, WARNING, ERROR, INFO = "ok", "warning", "error", "info"
# Records a mail domain cannot work without; the rest (SRV, autoconfig) only ease client setup.
ESSENTIAL = {"MX", "A"}
# Blocklist answers in 127.255.255.0/24 mean "query refused" (Spamhaus: public resolver), not "listed".
REFUSED = ipaddress.ip_network("127.255.255.0/24")


@dataclass
class Finding:
    """One checked fact. ``title``, ``detail`` and ``fix`` are English ``str.format`` templates
    over ``params`` (the web page translates the template, then formats it)."""

    group: str  # dns | network | certificate | system
    key: str  # stable id, e.g. "dns:MX:example.org"
    status: str  # ok | warning | error | info
    title: str
    detail: str = ""
    fix: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def text(self, template: str) -> str:
        return template.format(**self.params) if template else ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(title=self.text(self.title), detail=self.text(self.detail), fix=self.text(self.fix))
        return out


@dataclass
class Inputs:
    config: Config
    data_dir: Path
    hostname: str
    domains: list[str]
    cert_file: Path
    resolver: dns.resolver.Resolver
    now: float = field(default_factory=time.time)
    # records to publish per domain, when the caller has them (the web UI caches them)
    records: dict[str, list[dict[str, Any]]] | None = None


def inputs_from_data_dir(data_dir: Path) -> Inputs:
    """What ``gk diagnose`` needs, read from the data dir (the server need not run)."""
    from gk.config import load
    from gk.context import hostname_of, open_accounts
    from gk.mail.dnsresolver import make_resolver

    cfg = load(data_dir)
    accounts = open_accounts(cfg, data_dir)
    cert = Path(cfg.tls.cert_file) if cfg.tls.cert_file else data_dir / "tls" / "cert.pem"
    return Inputs(cfg, data_dir, hostname_of(cfg), sorted(accounts.local_domains()), cert, make_resolver(cfg.dns))


def run(inputs: Inputs, only: Iterable[str] | None = None) -> list[Finding]:
    groups: dict[str, Callable[[Inputs], list[Finding]]] = {
        "dns": check_dns,
        "network": check_network,
        "certificate": check_certificate,
        "system": check_system,
    }
    wanted = set(only) if only else set(groups)
    out: list[Finding] = []
    for name, check in groups.items():
        if name in wanted:
            out.extend(check(inputs))
    return out


# -- DNS records -------------------------------------------------------------------------------
def check_dns(inputs: Inputs) -> list[Finding]:
    from gk.mail.dnsrecords import check_live, records_for

    if not inputs.domains:
        return [
            Finding(
                "dns",
                "dns:none",
                INFO,
                N_("No mail domain yet"),
                N_("Mail between the box's users on the home network works without any domain."),
                N_("To receive mail from the internet, add a user on a domain you own."),
            )
        ]
    view = _RecordsView(inputs)
    out = [_hostname_finding(inputs)]
    for domain in inputs.domains:
        wanted = (inputs.records or {}).get(domain) or records_for(view, domain)
        for rec in check_live(wanted, inputs.resolver):
            # TXT (SPF, DKIM, DMARC) is essential, save the RFC 6764 DAV path hints (_caldavs._tcp)
            essential = rec["type"] in ESSENTIAL or (rec["type"] == "TXT" and "._tcp." not in rec["name"])
            status = {"ok": OK, "error": WARNING}.get(rec["status"], ERROR if essential else WARNING)
            found = ", ".join(rec.get("found") or []) or "-"
            params = {"type": rec["type"], "name": rec["name"], "value": rec["value"] or "-", "found": found}
            params["purpose"] = rec["purpose"]
            if rec["status"] == "ok":
                detail = N_("{purpose}.")
                fix = ""
            elif rec["status"] == "missing":
                detail = N_("{purpose}: DNS has no such record.")
                fix = N_("Publish {type} {name} = {value} at the domain's DNS provider.")
                if not rec["value"]:
                    fix = N_("Publish an A record for {name} with your public IP address at the domain's DNS provider.")
            elif rec["status"] == "different":
                detail = N_("{purpose}: DNS answers {found}.")
                fix = N_("Change {type} {name} to {value} at the domain's DNS provider.")
            else:
                detail = N_("DNS did not answer: {found}.")
                fix = N_("Check the box's network and DNS resolver, then run the checks again.")
            out.append(
                Finding(
                    "dns", f"dns:{rec['type']}:{rec['name']}", status, N_("{type} record {name}"), detail, fix, params
                )
            )
    return out


def _hostname_finding(inputs: Inputs) -> Finding:
    host = inputs.hostname.lower()
    params = {"host": host, "domain": inputs.domains[0]}
    if "." not in host or host.endswith((".local", ".lan", ".home", ".localdomain", ".internal")):
        return Finding(
            "dns",
            "dns:hostname",
            ERROR,
            N_("The host name {host} is a local name"),
            N_("Mail servers on the internet cannot find a local name, and refuse mail that greets them with one."),
            N_("Set a host name under your domain, such as mail.{domain}, in Settings."),
            params,
        )
    return Finding("dns", "dns:hostname", OK, N_("The host name is {host}"), "", "", params)


class _RecordsView:
    """What ``records_for`` reads from a context: config, data dir, host name."""

    def __init__(self, inputs: Inputs):
        self.config = inputs.config
        self.data_dir = inputs.data_dir
        self.hostname = inputs.hostname


# -- network: reverse DNS, blocklists, port 25 ---------------------------------------------------
def host_addresses(inputs: Inputs) -> list[str]:
    import dns.exception

    found = []
    for rtype in ("A", "AAAA"):
        try:
            found += [r.to_text() for r in inputs.resolver.resolve(inputs.hostname, rtype, search=False)]
        except dns.exception.DNSException:
            pass
    return found


def check_network(inputs: Inputs) -> list[Finding]:
    out = []
    addresses = host_addresses(inputs)
    host = inputs.hostname
    if not addresses:
        out.append(
            Finding(
                "network",
                "rdns:none",
                INFO,
                N_("Reverse DNS and blocklists not checked"),
                N_("The mail host {host} has no address in DNS yet."),
                N_("Publish an A record for {host} with your public IP address."),
                {"host": host},
            )
        )
    for ip in addresses:
        out.extend(_reverse_dns(inputs, ip))
        out.extend(_blocklists(inputs, ip))
    out.append(_port25(inputs))
    out.append(
        Finding(
            "network",
            "port25:in",
            INFO,
            N_("Incoming mail (port 25)"),
            N_("The box cannot test from inside whether the internet reaches its port 25."),
            N_(
                "Forward TCP ports 25, 465, 587 and 993 on your router to this box, then send a mail from an outside address."
            ),
        )
    )
    return out


def _is_public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return addr.is_global


def _reverse_dns(inputs: Inputs, ip: str) -> list[Finding]:
    import dns.exception
    import dns.resolver
    import dns.reversename

    params = {"ip": ip, "host": inputs.hostname}
    if not _is_public(ip):
        return [
            Finding(
                "network",
                f"rdns:{ip}",
                INFO,
                N_("{host} points to {ip}, a local address"),
                N_("Fine for mail on the home network; the internet cannot reach a local address."),
                N_("For mail from the internet, point {host} at your public address."),
                params,
            )
        ]
    try:
        names = [
            r.to_text().rstrip(".").lower() for r in inputs.resolver.resolve(dns.reversename.from_address(ip), "PTR")
        ]
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        names = []
    except dns.exception.DNSException as exc:
        params["error"] = str(exc).rstrip(".")
        return [
            Finding(
                "network",
                f"rdns:{ip}",
                WARNING,
                N_("Reverse DNS of {ip}"),
                N_("DNS did not answer: {error}."),
                "",
                params,
            )
        ]
    params["found"] = ", ".join(names) or "-"
    if inputs.hostname.lower() in names:
        return [
            Finding(
                "network",
                f"rdns:{ip}",
                OK,
                N_("Reverse DNS of {ip}"),
                N_("{ip} is named {host} both ways."),
                "",
                params,
            )
        ]
    return [
        Finding(
            "network",
            f"rdns:{ip}",
            ERROR,
            N_("Reverse DNS of {ip}"),
            N_(
                "{ip} is named {found}, not {host}: Gmail, Outlook and others refuse or junk mail from an address whose reverse DNS does not match."
            ),
            N_("Ask your internet provider to set the reverse DNS (PTR) of {ip} to {host}, or send through a relay."),
            params,
        )
    ]


def _blocklists(inputs: Inputs, ip: str) -> list[Finding]:
    import dns.exception
    import dns.resolver

    addr = ipaddress.ip_address(ip)
    if addr.version != 4 or not _is_public(ip):
        return []
    reversed_ip = ".".join(reversed(ip.split(".")))
    out = []
    for zone in inputs.config.diagnosis.blocklists:
        params = {"ip": ip, "zone": zone}
        try:
            answers = [r.to_text() for r in inputs.resolver.resolve(f"{reversed_ip}.{zone}", "A", search=False)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            out.append(Finding("network", f"dnsbl:{zone}", OK, N_("{ip} on {zone}"), N_("Not listed."), "", params))
            continue
        except dns.exception.DNSException as exc:
            params["error"] = str(exc).rstrip(".")
            out.append(
                Finding(
                    "network",
                    f"dnsbl:{zone}",
                    WARNING,
                    N_("{ip} on {zone}"),
                    N_("Could not check: {error}."),
                    "",
                    params,
                )
            )
            continue
        if all(ipaddress.ip_address(a) in REFUSED for a in answers):
            out.append(
                Finding(
                    "network",
                    f"dnsbl:{zone}",
                    WARNING,
                    N_("{ip} on {zone}"),
                    N_("The blocklist refused the query (it does not answer public resolvers)."),
                    N_("Use your internet provider's DNS resolver in [dns] nameservers to check this list."),
                    params,
                )
            )
            continue
        params["found"] = ", ".join(answers)
        out.append(
            Finding(
                "network",
                f"dnsbl:{zone}",
                ERROR,
                N_("{ip} on {zone}"),
                N_("Listed ({found}): many servers refuse mail from a listed address."),
                N_("Look the address up on the list's web site and ask for removal, or send through a relay."),
                params,
            )
        )
    return out


def _port25(inputs: Inputs) -> Finding:
    import dns.exception

    q = inputs.config.queue
    d = inputs.config.diagnosis
    if q.smarthost:
        target, port, what = q.smarthost, q.smarthost_port, "relay"
    elif d.port25_probe_host:
        target, port, what = d.port25_probe_host, d.port25_probe_port, "probe"
    else:
        return Finding(
            "network",
            "port25:out",
            INFO,
            N_("Outgoing port 25"),
            N_("Not checked ([diagnosis] port25_probe_host is empty)."),
        )
    params: dict[str, Any] = {"target": target, "port": port}
    try:
        address = _address_of(inputs, target)
    except dns.exception.DNSException as exc:
        params["error"] = str(exc).rstrip(".")
        return Finding(
            "network",
            "port25:out",
            WARNING,
            N_("Outgoing port 25 not checked"),
            N_("{target} could not be looked up: {error}."),
            N_("Check the box's network and DNS resolver, then run the checks again."),
            params,
        )
    try:
        with socket.create_connection((address, port), timeout=d.timeout) as s:
            s.settimeout(d.timeout)
            greeting = s.recv(512).decode("ascii", "replace").strip()
    except OSError as exc:
        params["error"] = (str(exc) or type(exc).__name__).rstrip(".")
        if what == "relay":
            return Finding(
                "network",
                "port25:out",
                ERROR,
                N_("The relay {target}:{port} cannot be reached"),
                N_("Outgoing mail waits in the queue: {error}."),
                N_("Check the relay's host name and port on the Mail delivery page."),
                params,
            )
        return Finding(
            "network",
            "port25:out",
            ERROR,
            N_("Outgoing port 25 is blocked"),
            N_("Connecting to {target}:{port} failed ({error}); many internet providers block port 25."),
            N_("Ask your provider to open outgoing port 25, or send through a relay (Mail delivery page)."),
            params,
        )
    params["greeting"] = greeting[:120]
    title = N_("The relay {target}:{port} answers") if what == "relay" else N_("Outgoing port 25 is open")
    return Finding("network", "port25:out", OK, title, N_("{target} answered: {greeting}"), "", params)


def _address_of(inputs: Inputs, host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return inputs.resolver.resolve(host, "A", search=False)[0].to_text()


# -- certificate ------------------------------------------------------------------------------------
def check_certificate(inputs: Inputs) -> list[Finding]:
    params: dict[str, Any] = {"file": str(inputs.cert_file), "host": inputs.hostname}
    try:
        info = ssl._ssl._test_decode_cert(str(inputs.cert_file))  # type: ignore[attr-defined]
    except (OSError, ssl.SSLError) as exc:
        params["error"] = str(exc).rstrip(".")
        return [
            Finding(
                "certificate",
                "cert",
                ERROR,
                N_("No readable certificate"),
                N_("{file}: {error}"),
                N_("Restart GK: it makes a new one."),
                params,
            )
        ]
    not_after = ssl.cert_time_to_seconds(info["notAfter"])
    days = int((not_after - inputs.now) // 86400)
    names = [v.lower() for k, v in info.get("subjectAltName", ()) if k == "DNS"]
    params.update(days=days, names=", ".join(names) or "-")
    out = []
    if days < 0:
        out.append(
            Finding(
                "certificate",
                "cert:expiry",
                ERROR,
                N_("The certificate has expired"),
                N_("It expired {days} days ago."),
                N_("Renew it, or remove it from [tls] to use a new self-signed one."),
                {**params, "days": -days},
            )
        )
    elif days < 14:
        out.append(
            Finding(
                "certificate",
                "cert:expiry",
                WARNING,
                N_("The certificate expires in {days} days"),
                "",
                N_("Renew it before it expires."),
                params,
            )
        )
    else:
        out.append(
            Finding(
                "certificate", "cert:expiry", OK, N_("The certificate is valid for {days} more days"), "", "", params
            )
        )
    if not _name_matches(inputs.hostname.lower(), names):
        out.append(
            Finding(
                "certificate",
                "cert:name",
                ERROR,
                N_("The certificate does not name {host}"),
                N_("It names {names}: mail apps will refuse or warn when they connect to {host}."),
                N_("Use a certificate for {host}, or restart GK after changing the host name so it makes a new one."),
                params,
            )
        )
    else:
        out.append(Finding("certificate", "cert:name", OK, N_("The certificate names {host}"), "", "", params))
    if info.get("issuer") == info.get("subject"):
        out.append(
            Finding(
                "certificate",
                "cert:issuer",
                WARNING,
                N_("The certificate is self-signed"),
                N_("Browsers and phones warn once, and some mail servers will not trust this box's TLS."),
                N_(
                    "Accept it on each device once (the Connect your devices page carries it), or install a certificate from a public authority."
                ),
                params,
            )
        )
    return out


def _name_matches(host: str, names: list[str]) -> bool:
    for name in names:
        if name == host or (name.startswith("*.") and host.partition(".")[2] == name[2:]):
            return True
    return False


# -- system: clock, disk, memory ----------------------------------------------------------------------
def check_system(inputs: Inputs) -> list[Finding]:
    return [_clock(), _disk(inputs.data_dir), _memory()]


def _clock() -> Finding:
    if Path("/run/systemd/timesync/synchronized").exists():
        return Finding(
            "system", "clock", OK, N_("The clock is synchronised"), N_("systemd-timesyncd keeps it on time.")
        )
    if shutil.which("timedatectl"):
        try:
            out = subprocess.run(
                ["timedatectl", "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        if out == "yes":
            return Finding("system", "clock", OK, N_("The clock is synchronised"), "")
        if out == "no":
            return Finding(
                "system",
                "clock",
                WARNING,
                N_("The clock is not synchronised"),
                N_("A wrong clock breaks TLS certificates, DKIM signatures and calendar times."),
                N_("Let the box reach an NTP server (UDP port 123)."),
            )
    return Finding("system", "clock", INFO, N_("Clock synchronisation unknown"), N_("This system does not report it."))


def _disk(data_dir: Path) -> Finding:
    usage = shutil.disk_usage(data_dir)
    free_pct = usage.free * 100 / usage.total if usage.total else 0.0
    params = {"free_mb": usage.free // 2**20, "total_mb": usage.total // 2**20, "pct": round(free_pct)}
    if usage.free < 500 * 2**20 or free_pct < 5:
        return Finding(
            "system",
            "disk",
            ERROR,
            N_("The disk is almost full"),
            N_("{free_mb} MB free of {total_mb} MB ({pct} %): new mail will be refused."),
            N_("Delete old mail or move the data to a larger disk."),
            params,
        )
    if free_pct < 15:
        return Finding(
            "system",
            "disk",
            WARNING,
            N_("The disk is filling up"),
            N_("{free_mb} MB free of {total_mb} MB ({pct} %)."),
            N_("Delete old mail or plan a larger disk."),
            params,
        )
    return Finding(
        "system", "disk", OK, N_("Disk space"), N_("{free_mb} MB free of {total_mb} MB ({pct} %)."), "", params
    )


def _memory() -> Finding:
    from gk.hw.tune import meminfo_mb

    info = meminfo_mb()
    if not info:
        return Finding("system", "memory", INFO, N_("Memory"), N_("Not reported by this system."))
    total, avail = info.get("MemTotal", 0), info.get("MemAvailable", 0)
    params = {"avail_mb": avail, "total_mb": total}
    if total and avail * 100 / total < 10:
        return Finding(
            "system",
            "memory",
            WARNING,
            N_("Memory is short"),
            N_("{avail_mb} MB available of {total_mb} MB."),
            N_("Choose a smaller AI model or turn features off."),
            params,
        )
    return Finding("system", "memory", OK, N_("Memory"), N_("{avail_mb} MB available of {total_mb} MB."), "", params)


def summary(findings: list[Finding]) -> dict[str, int]:
    counts = {OK: 0, WARNING: 0, ERROR: 0, INFO: 0}
    for f in findings:
        counts[f.status] += 1
    return counts
