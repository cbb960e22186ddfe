"""GK configuration: TOML (``DATA_DIR/gk.toml``) loaded into typed dataclasses.

Every field has a default. The loader (``ConfigBuilder``) checks each key against the
dataclass it belongs to: an unknown key, a value of the wrong type or a value outside its
range is an error that names the key (``smtp.max_message_size``) and says how to fix it.
All errors of a file are collected and reported together.

Each feature owns one section dataclass here; a feature adds fields to its own section only.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import re
import tomllib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from gk.store.files import write_durable

log = logging.getLogger("gk.config")

APPLIANCE_DATA_DIR = Path("/var/lib/gk")

# Ports of DESIGN.md: the appliance's standard ports, and the ones a checkout uses.
STANDARD_PORTS = {
    "http.port": 80,
    "http.https_port": 443,
    "smtp.port": 25,
    "smtp.submission_port": 587,
    "smtp.submissions_port": 465,
    "imap.port": 143,
    "imap.tls_port": 993,
    "chat.irc_port": 6697,
}
DEV_PORTS = {
    "http.port": 8080,
    "http.https_port": 8443,
    "smtp.port": 2525,
    "smtp.submission_port": 2587,
    "smtp.submissions_port": 2465,
    "imap.port": 2143,
    "imap.tls_port": 2993,
    "chat.irc_port": 2697,
}

Check = Callable[[Any], str | None]


def port_number() -> Check:
    def check(v: Any) -> str | None:
        return None if 0 <= v <= 65535 else "must be a port number 0..65535 (0 = disabled)"

    return check


def at_least(lo: float) -> Check:
    def check(v: Any) -> str | None:
        return None if v >= lo else f"must be >= {lo}"

    return check


def between(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"must be between {lo} and {hi}"

    return check


def one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else "must be one of " + ", ".join(repr(c) for c in choices)

    return check


def opt(default: Any, doc: str, check: Check | None = None) -> Any:
    """A config field with its default, a one-line description and an optional check."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"doc": doc, "check": check})
    return field(default=default, metadata={"doc": doc, "check": check})


@dataclass
class ServerConfig:
    hostname: str = opt("", "host name used in SMTP greetings and TLS certificates ('' = system host name)")
    bind: str = opt("0.0.0.0", "address every listener binds to ('::' for dual stack, '127.0.0.1' for local only)")
    log_level: str = opt("info", "log verbosity", one_of("debug", "info", "warning", "error"))
    shutdown_grace: float = opt(10.0, "seconds SIGTERM waits for open sessions to finish", at_least(0))
    gc_interval: float = opt(
        1.0,
        "seconds between checks for a full garbage collection, run when the event loop is idle or at the "
        "latest every 60 s (bounds RSS under TLS churn; 0 = Python's own collections only)",
        at_least(0),
    )
    sqlite_cache_kib: int = opt(
        2048, "SQLite page cache of each shared database in KiB (gk tune sizes it to the RAM)", at_least(64)
    )
    switch_interval_ms: float = opt(
        5.0,
        "longest a thread holding the GIL keeps the event loop waiting for it, in ms (Python's 5; "
        "lower hands it back sooner to mail and web while DAV or the assistant run Python in their threads)",
        at_least(0.1),
    )


@dataclass
class TLSConfig:
    cert_file: str = opt("", "PEM certificate chain ('' = self-signed, generated into DATA_DIR/tls/)")
    key_file: str = opt("", "PEM private key ('' = generated into DATA_DIR/tls/)")


@dataclass
class HTTPConfig:
    port: int = opt(80, "plain HTTP port (web UI, wizard, APIs)", port_number())
    https_port: int = opt(443, "HTTPS port (0 = disabled)", port_number())
    session_days: int = opt(30, "days a web login stays valid", at_least(1))
    lan_networks: list[str] = opt(
        [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "fe80::/10",
            "fc00::/7",
        ],
        "client networks the first-boot wizard and owner recovery are served to (loopback, RFC 1918, link-local, ULA)",
    )
    setup_code_lockout_failures: int = opt(
        10, "wrong setup codes from one client address that lock that address (only) out", at_least(1)
    )
    setup_code_lockout_seconds: float = opt(900.0, "how long such an address is refused, seconds", at_least(1))
    websocket_origins: list[str] = opt(
        [],
        "other web origins (https://host[:port]) whose pages may open WebSockets here; the box's own is always allowed",
    )
    max_connections: int = opt(500, "concurrent HTTP and HTTPS connections (WebSockets included)", at_least(1))
    max_connections_per_ip: int = opt(
        100, "concurrent HTTP(S) connections from one client IP (IPv6: one /64; a browser opens ~6 a site)", at_least(1)
    )
    header_timeout: float = opt(20.0, "seconds from a request's first byte to the end of its headers", at_least(0.1))
    idle_timeout: float = opt(60.0, "seconds a connection may wait for its next request (keep-alive)", at_least(0.1))
    io_timeout: float = opt(
        60.0, "seconds one read of a request body or one 64 KiB write of a response may wait", at_least(0.1)
    )


@dataclass
class SMTPConfig:
    port: int = opt(25, "inbound MX port: mail for local domains from anyone, no AUTH (0 = disabled)", port_number())
    submission_port: int = opt(587, "submission port: STARTTLS then AUTH (0 = disabled)", port_number())
    submissions_port: int = opt(465, "submission with implicit TLS (0 = disabled)", port_number())
    max_message_size: int = opt(50 * 1024 * 1024, "largest message accepted, bytes (SIZE)", at_least(1024))
    max_recipients: int = opt(100, "recipients per message", at_least(1))
    max_line_length: int = opt(4096, "longest command or DATA line, bytes including CRLF", at_least(1000))
    max_connections: int = opt(200, "concurrent sessions on port 25 (MX); submission has its own budget", at_least(1))
    max_connections_per_ip: int = opt(10, "concurrent port-25 sessions from one client IP (IPv6: one /64)", at_least(1))
    max_submission_connections: int = opt(50, "concurrent sessions on ports 587 and 465 together", at_least(1))
    max_submission_connections_per_ip: int = opt(
        20, "concurrent 587/465 sessions from one client IP (a household behind NAT shares one)", at_least(1)
    )
    command_timeout: float = opt(300.0, "seconds to wait for the next command", at_least(1))
    data_idle_timeout: float = opt(180.0, "seconds of silence allowed between DATA lines", at_least(1))
    data_timeout: float = opt(
        900.0, "longest a whole DATA transfer may take, seconds (then 421 4.4.2 and the session closes)", at_least(1)
    )
    junk_command_limit: int = opt(
        100, "NOOP, RSET, VRFY and HELP a session may send before each counts as an error (Postfix's)", at_least(1)
    )
    soft_error_limit: int = opt(3, "errors in one session before each error reply is delayed", at_least(0))
    hard_error_limit: int = opt(20, "errors in one session before it is closed with 421 4.7.0", at_least(1))
    error_sleep_time: float = opt(
        1.0, "delay of the first error reply past soft_error_limit; grows by as much with each error", at_least(0)
    )
    require_tls_for_auth: bool = opt(True, "offer AUTH only over TLS (never turn off outside tests)")
    dmarc_reject_action: str = opt(
        "reject", "what to do with mail failing DMARC with p=reject", one_of("reject", "junk")
    )
    check_spf: bool = opt(True, "check SPF on inbound mail (port 25)")
    check_dkim: bool = opt(True, "verify DKIM signatures on inbound mail")
    check_dmarc: bool = opt(True, "evaluate DMARC on inbound mail")
    dkim_max_verify_size: int = opt(
        10 * 1024 * 1024,
        "largest inbound message whose DKIM signatures are verified (bigger: dkim=neutral)",
        at_least(0),
    )


@dataclass
class IMAPConfig:
    port: int = opt(143, "IMAP port with STARTTLS (0 = disabled)", port_number())
    tls_port: int = opt(993, "IMAP with implicit TLS (0 = disabled)", port_number())
    max_connections: int = opt(500, "concurrent IMAP sessions", at_least(1))
    max_connections_per_ip: int = opt(50, "concurrent IMAP sessions from one IP address", at_least(1))
    max_line_length: int = opt(65536, "longest command line, bytes", at_least(1000))
    max_literal_size: int = opt(64 * 1024 * 1024, "largest literal (APPEND), bytes", at_least(1024))
    idle_timeout: float = opt(1800.0, "seconds a logged-in session may stay silent", at_least(10))
    login_timeout: float = opt(60.0, "seconds a session that has not logged in may stay silent", at_least(1))
    login_deadline: float = opt(
        180.0, "seconds a session has from its greeting to log in, however busy it keeps (then BYE)", at_least(1)
    )
    login_cache_seconds: float = opt(300.0, "lifetime of a verified-credential cache entry (0 = off)", at_least(0))
    max_commands_per_second: int = opt(500, "commands one IMAP session may send per second (bursts of 2x)", at_least(1))


@dataclass
class AuthConfig:
    argon2_time_cost: int = opt(2, "argon2id iterations", at_least(1))
    argon2_memory_kib: int = opt(19456, "argon2id memory per hash, KiB", at_least(8192))
    argon2_parallelism: int = opt(1, "argon2id lanes", at_least(1))
    parallel_hashes: int = opt(0, "password checks running at once (0 = from RAM and cores: 2 on 512 MB)", at_least(0))
    delay_after_failures: int = opt(
        3, "failed logins of one client on one account before its attempts are delayed", at_least(1)
    )
    max_delay: float = opt(8.0, "longest delay before a login attempt, seconds", at_least(0))
    lockout_failures_ip: int = opt(
        20, "failures from one client (any accounts) that lock it out of accounts it has not used lately", at_least(1)
    )
    lockout_failures_account: int = opt(
        10, "failures of one client on one account that lock it out of that account (see docs/security.md)", at_least(1)
    )
    lockout_seconds: float = opt(
        900.0, "length of a first lockout, seconds (doubles for each repeat, up to a day)", at_least(1)
    )
    failure_window: float = opt(3600.0, "failures older than this are forgotten, seconds", at_least(1))


@dataclass
class DNSConfig:
    nameservers: list[str] = opt([], "resolver addresses ([] = the system's /etc/resolv.conf)")
    port: int = opt(53, "resolver port (tests use a loopback DNS server on another port)", port_number())
    timeout: float = opt(5.0, "seconds per DNS query", at_least(0.1))


@dataclass
class QueueConfig:
    remote_smtp_port: int = opt(25, "port of remote MX hosts (tests deliver to a loopback peer)", port_number())
    retry_minutes: list[float] = opt(
        [2.0, 4.0, 8.0, 16.0, 32.0], "minutes between delivery attempts; the last repeats (fractions allowed)"
    )
    expire_hours: float = opt(120.0, "give up and bounce after this many hours", at_least(0.0001))
    delay_warning_hours: float = opt(
        4.0, "send a delay notice to the sender after this many hours (0 = never)", at_least(0)
    )
    per_domain_connections: int = opt(2, "concurrent connections to one destination domain", at_least(1))
    smarthost: str = opt("", "relay all outbound mail through this host ('' = deliver directly by MX)")
    smarthost_port: int = opt(587, "smarthost port", port_number())
    smarthost_tls: str = opt("starttls", "smarthost TLS mode", one_of("starttls", "implicit", "none"))
    smarthost_username: str = opt("", "smarthost AUTH user ('' = no AUTH)")
    smarthost_password: str = opt("", "smarthost AUTH password")
    max_deliveries: int = opt(10, "concurrent outbound SMTP connections over all destinations", at_least(1))
    connect_timeout: float = opt(30.0, "seconds to wait for a remote SMTP connection", at_least(0.1))
    command_timeout: float = opt(300.0, "seconds to wait for a remote SMTP reply", at_least(0.1))
    ca_file: str = opt("", "extra PEM CA bundle trusted for outbound TLS, besides the system's ('' = none)")
    mta_sts_port: int = opt(443, "HTTPS port MTA-STS policies are fetched from (tests: a loopback port)", port_number())
    dkim_selector: str = opt("gk", "DKIM selector of the RSA-2048 key (DNS name SELECTOR._domainkey.DOMAIN)")
    dkim_ed25519_selector: str = opt("", "also sign with Ed25519 under this selector ('' = RSA only)")


@dataclass
class ACMEConfig:
    enabled: bool = opt(
        False, "get and renew the certificate from an ACME CA by HTTP-01 on port 80 (needs a public host name)"
    )
    directory_url: str = opt(
        "https://acme-v02.api.letsencrypt.org/directory", "the CA's ACME directory (Let's Encrypt)"
    )
    email: str = opt("", "contact address the CA may write to about expiry ('' = none)")
    ca_file: str = opt("", "PEM bundle trusted for the CA's own HTTPS ('' = the system's; tests: pebble's)")
    renew_days: float = opt(30.0, "renew when the certificate has fewer days left than this", at_least(1))
    check_hours: float = opt(12.0, "hours between certificate checks", at_least(0.001))
    first_check_seconds: float = opt(5.0, "seconds after start before the first check", at_least(0))
    timeout: float = opt(120.0, "seconds the CA may take to validate and issue", at_least(1))


@dataclass
class DiagnosisConfig:
    port25_probe_host: str = opt(
        "gmail-smtp-in.l.google.com",
        "host the outgoing port-25 check connects to, only when the owner runs it ('' = skip)",
    )
    port25_probe_port: int = opt(25, "port of that host (tests use a loopback listener)", port_number())
    blocklists: list[str] = opt(
        ["zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org"],
        "DNS blocklists the public address is looked up in",
    )
    timeout: float = opt(5.0, "seconds each network check may take", at_least(0.1))


def clock_time() -> Check:
    def check(v: Any) -> str | None:
        m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", v)
        return None if m else "must be a time of day HH:MM (24 h), such as '03:30'"

    return check


def absolute_path_or_empty() -> Check:
    def check(v: Any) -> str | None:
        return None if v == "" or v.startswith("/") else "must be an absolute directory path, or '' for DATA_DIR/backup"

    return check


BACKUP_SCHEDULES = ("off", "daily", "weekly")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass
class BackupConfig:
    keep: int = opt(3, "backup archives kept in the target directory (older ones are removed)", at_least(1))
    schedule: str = opt("off", "automatic backups by gk serve: 'off', 'daily' or 'weekly'", one_of(*BACKUP_SCHEDULES))
    time: str = opt("03:30", "time of day of the automatic backup, in the box's time zone (HH:MM)", clock_time())
    weekday: str = opt("sun", "day of a weekly backup", one_of(*WEEKDAYS))
    target: str = opt(
        "",
        "directory the archives go to ('' = DATA_DIR/backup); it must exist: GK never creates it, "
        "so an unplugged USB drive fails the backup instead of filling the SD card",
        absolute_path_or_empty(),
    )
    compress: str = opt(
        "none",
        "compress the archives: 'none' (.tar) or 'gzip' (.tar.gz, level 1: smaller, more CPU); restore reads both",
        one_of("none", "gzip"),
    )
    test_only_interval: float = opt(
        0.0,
        "TESTS ONLY: run the automatic backup every this many seconds instead of the schedule (0 = the schedule)",
        at_least(0),
    )


@dataclass
class ChatConfig:
    enabled: bool = opt(True, "run the chat (rooms, history, the IRC server for stock clients)")
    irc_port: int = opt(6697, "IRC with implicit TLS for stock clients (0 = disabled)", port_number())
    max_connections: int = opt(500, "concurrent IRC sessions", at_least(1))
    max_connections_per_ip: int = opt(
        50, "concurrent IRC sessions (6697 and WebSocket) from one client IP (IPv6: one /64)", at_least(1)
    )
    lines_per_second: float = opt(5.0, "lines one IRC connection may send per second, sustained", at_least(0.1))
    line_burst: int = opt(50, "lines one IRC connection may send in a burst before flood control", at_least(1))
    registration_timeout: float = opt(60.0, "seconds a new IRC connection has to log in", at_least(1))
    ping_interval: float = opt(120.0, "seconds of silence before the server PINGs a client", at_least(5))
    default_rooms: list[str] = opt(["general"], "public rooms created at start; new users join them")
    max_upload_bytes: int = opt(
        10 * 1024 * 1024, "largest file one chat upload (web chat, IRC draft/FILEHOST) may store, bytes", at_least(1024)
    )
    digest_after: float = opt(
        1800.0,
        "seconds a mention or direct message stays unread before it is mailed to the user's inbox (0 = never)",
        at_least(0),
    )


@dataclass
class DAVConfig:
    enabled: bool = opt(True, "calendars and contacts (CalDAV/CardDAV) under /dav/ on the web listeners")
    max_resource_size: int = opt(
        1024 * 1024, "largest calendar object or vCard one PUT may store, bytes", at_least(1024)
    )
    max_request_size: int = opt(
        10 * 1024 * 1024, "largest DAV request body (a whole-calendar import), bytes", at_least(4096)
    )
    invitations: bool = opt(True, "mail invitations (iMIP) to the attendees of events a user organizes")
    sync_page_size: int = opt(
        1000,
        "most changes one sync-collection answer lists; a client continues from its token (RFC 6578 §3.6; 0 = all)",
        at_least(0),
    )


@dataclass
class AIConfig:
    enabled: bool = opt(True, "the private assistant and its OpenAI-compatible API at /v1 (needs a model)")
    model: str = opt("", "GGUF file in DATA_DIR/models to use ('' = the first one there)")
    context_size: int = opt(2048, "tokens of context (prompt + answer); gk tune sizes it to the RAM", at_least(128))
    batch_size: int = opt(256, "tokens evaluated per llama.cpp batch when reading a prompt", at_least(8))
    threads: int = opt(0, "inference threads (0 = cores - 1, so the mail server keeps a core)", at_least(0))
    nice: int = opt(
        10, "OS priority of the inference threads, 0-19 (higher: mail and web get the CPU first)", between(0, 19)
    )
    scheduler: str = opt(
        "normal",
        "Linux scheduling class of the inference threads: normal (with nice above), batch (never preempts "
        "on wake-up), idle (runs only on CPU time nothing else wants)",
        one_of("normal", "batch", "idle"),
    )
    idle_unload_seconds: float = opt(300.0, "unload the model after this long without a request", at_least(1))
    min_free_mb: int = opt(64, "memory left to the rest of the box after a model is loaded, MiB", at_least(0))
    max_queue: int = opt(16, "requests that may wait for the assistant (more get HTTP 503)", at_least(1))
    max_tokens: int = opt(512, "longest answer when a request sets no max_tokens", at_least(1))
    state_cache_mb: int = opt(
        0, "MiB of saved KV states, so a conversation resumed after another does not re-read its history", at_least(0)
    )
    download_url_base: str = opt(
        "https://huggingface.co", "where `gk ai pull` fetches catalogue models: BASE/REPO/resolve/COMMIT/FILE (HTTPS)"
    )
    catalogue: str = opt("", "a model catalogue TOML file to use instead of the one shipped with GK ('' = built in)")
    offline_dirs: list[str] = opt(
        ["/boot/firmware/gk-models", "/boot/gk-models", "/media", "/boot/efi/gk-models"],
        "directories searched for GGUF files to import without the internet (boot partition, USB sticks)",
    )


@dataclass
class MCPConfig:
    enabled: bool = opt(
        True, "the MCP server at /mcp: the user's mail as read-only tools for MCP clients (bearer tokens)"
    )
    allowed_origins: list[str] = opt(
        [], "browser origins (scheme://host[:port]) allowed to call /mcp besides the box's own host name"
    )
    max_request_size: int = opt(256 * 1024, "largest JSON-RPC request body, bytes", at_least(1024))
    approval_hours: int = opt(
        72, "hours a tool's pending action (send, post, move, delete…) waits for the owner's approval", at_least(1)
    )


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    smtp: SMTPConfig = field(default_factory=SMTPConfig)
    imap: IMAPConfig = field(default_factory=IMAPConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    dns: DNSConfig = field(default_factory=DNSConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    diagnosis: DiagnosisConfig = field(default_factory=DiagnosisConfig)
    acme: ACMEConfig = field(default_factory=ACMEConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    dav: DAVConfig = field(default_factory=DAVConfig)
    ai: AIConfig = field(default_factory=AIConfig)
    mcp: MCPConfig = field(default_factory=MCPConfig)


class ConfigError(Exception):
    """One or more config problems; ``problems`` holds one line per key."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def __str__(self) -> str:
        return f"invalid configuration in {self.source}:\n" + "\n".join(f"  - {p}" for p in self.problems)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}s"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    if typing.get_origin(tp) is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            return False, None
        out = []
        for item in value:
            ok, v = _coerce(item, inner)
            if not ok:
                return False, None
            out.append(v)
        return True, out
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if tp is str:
        return isinstance(value, str), value
    return False, None


class ConfigBuilder:
    """Builds a ``Config`` from defaults, then overlays (TOML tables or dotted keys)."""

    def __init__(self, source: str = "defaults"):
        self.source = source
        self.config = Config()
        self.problems: list[str] = []

    def set(self, dotted: str, value: Any) -> ConfigBuilder:
        section_name, _, key = dotted.partition(".")
        self._apply_section(section_name, {key: value})
        return self

    def merge(self, data: dict[str, Any]) -> ConfigBuilder:
        for section_name, table in data.items():
            if not isinstance(table, dict):
                self.problems.append(f"{section_name}: expected a [{section_name}] table, found a value")
                continue
            self._apply_section(section_name, table)
        return self

    def _apply_section(self, section_name: str, table: dict[str, Any]) -> None:
        sections = {f.name: f for f in dataclasses.fields(Config)}
        if section_name not in sections:
            known = ", ".join(sorted(sections))
            self.problems.append(f"[{section_name}]: unknown section; known sections are {known}")
            return
        section = getattr(self.config, section_name)
        hints = typing.get_type_hints(type(section))
        fields = {f.name: f for f in dataclasses.fields(section)}
        for key, value in table.items():
            name = f"{section_name}.{key}"
            if key not in fields:
                known = ", ".join(sorted(fields))
                self.problems.append(f"{name}: unknown key; [{section_name}] accepts {known}")
                continue
            tp = hints[key]
            ok, coerced = _coerce(value, tp)
            if not ok:
                self.problems.append(f"{name}: expected {_type_name(tp)}, found {value!r}")
                continue
            check = fields[key].metadata.get("check")
            msg = check(coerced) if check else None
            if msg:
                self.problems.append(f"{name}: {msg} (found {coerced!r})")
                continue
            setattr(section, key, coerced)

    def build(self) -> Config:
        if self.problems:
            raise ConfigError(self.source, self.problems)
        return self.config


def is_dev_data_dir(data_dir: Path) -> bool:
    return data_dir.resolve() != APPLIANCE_DATA_DIR


def default_data_dir() -> Path:
    """``$GK_DATA_DIR``, else ``./var`` in a checkout, else the appliance's ``/var/lib/gk``."""
    env = os.environ.get("GK_DATA_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    if (repo / "Makefile").exists() and (repo / "appliance").is_dir():
        return repo / "var"
    return APPLIANCE_DATA_DIR


def config_path(data_dir: Path) -> Path:
    return data_dir / "gk.toml"


def base_builder(data_dir: Path) -> ConfigBuilder:
    builder = ConfigBuilder()
    ports = DEV_PORTS if is_dev_data_dir(data_dir) else STANDARD_PORTS
    for key, value in ports.items():
        builder.set(key, value)
    return builder


def load(data_dir: Path) -> Config:
    """Defaults (dev ports outside /var/lib/gk), then ``DATA_DIR/gk.toml`` if present."""
    builder = base_builder(data_dir)
    path = config_path(data_dir)
    if path.exists():
        builder.source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), [f"not valid TOML: {exc}; fix the syntax at that line"]) from exc
        builder.merge(data)
    return builder.build()


def to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def to_toml(config: Config) -> str:
    return tomli_w.dumps(to_dict(config))


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).strip()[len("v = ") :]


def commented_defaults(data_dir: Path) -> str:
    """The text of a fresh gk.toml: every key, commented out, with its default and meaning."""
    config = base_builder(data_dir).build()
    lines = [
        "# GK configuration. Every key below shows its default; uncomment to change it.",
        "# `gk config check` validates this file; `gk config show` prints the effective values.",
        "",
    ]
    for section_field in dataclasses.fields(Config):
        section = getattr(config, section_field.name)
        lines.append(f"[{section_field.name}]")
        for f in dataclasses.fields(section):
            value = _toml_value(getattr(section, f.name))
            lines.append(f"# {f.metadata.get('doc', '')}")
            lines.append(f"# {f.name} = {value}")
        lines.append("")
    return "\n".join(lines)


def ensure_config_file(data_dir: Path) -> Path:
    path = config_path(data_dir)
    if not path.exists():
        write_config_text(data_dir, commented_defaults(data_dir), new_mode=0o644)  # no secrets in it yet
    return path


# -- writing gk.toml -----------------------------------------------------------------------------
# The one writer of DATA_DIR/gk.toml (the fresh commented file, the wizard's host name, the
# relay host): temp file, fsync, rename, fsync of the directory, so a crash or power cut at any
# point leaves the old file or the new one, never a mix. Callers that read-modify-write must
# serialise themselves (``gk.settings`` does).
def write_config_text(
    data_dir: Path, text: str, *, private: bool = False, new_mode: int = 0o600, mode: int | None = None
) -> None:
    """Replace gk.toml with ``text`` durably; keeps the file's mode (``new_mode`` for a new file,
    ``mode`` to set one) and, when run as root (``gk tune``), its owner.

    ``private``: the text holds a secret (a relay password), so the file becomes owner-only."""
    path = config_path(data_dir)
    owner: tuple[int, int] | None = None
    try:
        st = path.stat()
        keep = st.st_mode & 0o777
        if os.geteuid() == 0:
            owner = (st.st_uid, st.st_gid)
    except FileNotFoundError:
        keep = new_mode
    mode = keep if mode is None else mode
    if private:
        mode &= 0o600
    write_durable(path, text.encode("utf-8"), mode, owner=owner)


def _toml_line(key: str, value: Any) -> str:
    return tomli_w.dumps({key: value}).strip()


def edit_table(text: str, table: str, values: dict[str, Any]) -> str:
    """``text`` with ``key = value`` lines of ``[table]`` set (replaced in place or added after the header)."""
    lines = text.splitlines()
    section = ""
    header_at: int | None = None
    found: dict[str, int] = {}
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("["):
            section = s.split("#", 1)[0].strip()
            if section == f"[{table}]":
                header_at = i
            continue
        if section == f"[{table}]":
            m = re.match(r"^([A-Za-z0-9_-]+)\s*=", s)
            if m and m.group(1) in values:
                found[m.group(1)] = i
    for key, i in found.items():
        lines[i] = _toml_line(key, values[key])
    missing = [_toml_line(k, v) for k, v in values.items() if k not in found]
    if missing:
        if header_at is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines += [f"[{table}]", *missing]
        else:
            lines[header_at + 1 : header_at + 1] = missing
    return "\n".join(lines) + "\n"


def new_config_text(old: str, values: dict[str, Any], table: str) -> str:
    """The new gk.toml text: line-edited (comments kept) if that parses back right, else a tomli_w rewrite.

    The rewrite happens for forms the line editor does not handle (dotted keys, inline tables,
    multi-line strings); the values are kept, the comments are lost."""
    original = tomllib.loads(old) if old.strip() else {}
    edited = edit_table(old, table, values)
    try:
        parsed = tomllib.loads(edited)
    except tomllib.TOMLDecodeError:
        parsed = None
    want = {**original, table: {**original.get(table, {}), **values}}
    if parsed == want:
        return edited
    log.info("gk.toml: rewriting the file to set [%s] (its comments are not kept)", table)
    return tomli_w.dumps(want)


def update_config_file(data_dir: Path, table: str, values: dict[str, Any], *, private: bool = False) -> Config:
    """Set ``values`` in gk.toml's ``[table]`` and return the loaded result.

    The new text is checked with the loader first: ``ConfigError`` (the file, or the values,
    would not load) leaves the file untouched."""
    path = config_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    # read-modify-write under an exclusive flock on the data dir: two writers (the relay form and
    # the certificate form, or `gk setup` and a running server) never lose each other's keys
    dfd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(dfd, fcntl.LOCK_EX)
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = ""
        text = new_config_text(old, values, table)
        builder = base_builder(data_dir)
        builder.source = str(path)
        builder.merge(tomllib.loads(text))
        cfg = builder.build()
        write_config_text(data_dir, text, private=private)
    finally:
        os.close(dfd)  # releases the lock
    return cfg


__all__ = [
    "Config",
    "ConfigBuilder",
    "ConfigError",
    "load",
    "to_toml",
    "ensure_config_file",
    "update_config_file",
    "write_config_text",
    "default_data_dir",
]
