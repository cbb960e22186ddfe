"""GK's SMTP policy — who may send what to whom — kept apart from the protocol mechanics.

Testable without a socket (tests/unit/test_smtp_policy.py). The session asks:

- ``mail_from``: on port 25 anyone may send (null sender included); on submission ports the
  user must be authenticated and own the address (``gk.mail.submission.owns_address``);
- ``rcpt_to``: on port 25 only addresses in local domains (``550 5.7.1`` relaying denied) that
  exist (``550 5.1.1``); on submission ports local addresses must exist and remote ones need the
  outbound queue (``550 5.3.3`` until it runs); at most ``max_recipients`` (``452 4.5.3``).

And how much a client may take of the box:

- ``ConnectionSlots``: port 25 (MX) and submission (587 and 465) each have a budget of sessions
  and a per-client-IP cap inside it (an IPv6 client counts per /64, what one host is given), so
  strangers filling port 25 never take the slots the household needs to send mail;
- ``ErrorBudget``: after ``soft_error_limit`` errors in a session each error reply waits longer
  (``error_sleep_time``, then twice that, ...), and the session is closed after
  ``hard_error_limit`` errors (Postfix's smtpd_soft_error_limit, smtpd_hard_error_limit,
  smtpd_error_sleep_time), so RCPT probing for valid addresses goes at a crawl instead of
  2,000 addresses a second. A delivered message forgives the errors before it.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gk.accounts import User, normalize_address
from gk.mail import submission
from gk.mail.delivery import quota
from gk.mail.smtp import forward, srs

if TYPE_CHECKING:
    from gk.context import AppContext


class ListenerKind(enum.Enum):
    INBOUND = "smtp"  # port 25: MX, no AUTH
    SUBMISSION = "submission"  # port 587: STARTTLS then AUTH
    SUBMISSIONS = "submissions"  # port 465: implicit TLS, AUTH

    @property
    def is_submission(self) -> bool:
        return self is not ListenerKind.INBOUND


@dataclass(frozen=True)
class RcptDecision:
    reply: str
    local_user: str | None = None  # the user the address delivers to (local recipients)
    user: User | None = None  # that user's record when it was read (port 25): DATA reuses it

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("2")


class SMTPPolicy:
    def __init__(self, ctx: AppContext, max_recipients: int):
        self.ctx = ctx
        self.max_recipients = max_recipients

    def mail_from(self, kind: ListenerKind, user: User | None, address: str) -> str | None:
        """None to accept, else the reply refusing the sender."""
        if not kind.is_submission:
            return None
        if user is None:
            return "530 5.7.0 Authentication required"
        if not submission.owns_address(self.ctx.accounts, user, address):
            return f"553 5.7.1 <{address}>: sender address not owned by user {user.address}"
        return None

    def rcpt_to(self, kind: ListenerKind, user: User | None, address: str, count: int) -> RcptDecision:
        if count >= self.max_recipients:
            return RcptDecision(f"452 4.5.3 Too many recipients (at most {self.max_recipients} per message)")
        addr = normalize_address(address)
        local, _, domain = addr.rpartition("@")
        if (not local or not domain) and addr != "postmaster":  # "<Postmaster>" alone: RFC 5321 §4.5.1
            return RcptDecision(f"553 5.1.3 <{address}>: a recipient needs a domain")
        if kind.is_submission:
            if user is None:
                return RcptDecision("530 5.7.0 Authentication required")
            owner, problem = submission.classify_recipient(self.ctx, address)
            if problem:
                return RcptDecision(problem)
            if owner is None and not submission.remote_outbound_available(self.ctx):
                return RcptDecision(submission.NO_OUTBOUND)
            if owner is not None and quota.exceeded(self.ctx, owner):
                return RcptDecision(quota.FULL_RCPT.format(address=address))
            return RcptDecision("250 2.1.5 OK", owner)
        # a user or alias makes its domain local: resolve first (the common case, two indexed
        # lookups) and look at the whole list of local domains only to word a refusal
        if srs.is_srs(addr) and self.ctx.accounts.is_local_domain(domain):  # a bounce of a forward
            try:
                forward.bounce_address(self.ctx, address)
            except srs.SRSError as exc:
                return RcptDecision(f"550 5.1.1 <{address}>: {exc}")
            if not submission.remote_outbound_available(self.ctx):
                return RcptDecision(submission.NO_OUTBOUND)
            return RcptDecision("250 2.1.5 OK")  # no local user: sent back (forward.send_back)
        owner_user = self.ctx.accounts.resolve_recipient(addr)
        if owner_user is not None:
            if quota.exceeded(self.ctx, owner_user.address, quota_mb=owner_user.quota_mb):
                return RcptDecision(quota.FULL_RCPT.format(address=address))
            return RcptDecision("250 2.1.5 OK", owner_user.address, owner_user)
        if not self.ctx.accounts.is_local_domain(domain):
            return RcptDecision(f"550 5.7.1 <{address}>: relaying denied")
        return RcptDecision(f"550 5.1.1 <{address}>: no such user here")


def client_key(ip: str) -> str:
    """The unit a per-client cap counts: the IPv4 address (IPv4-mapped IPv6 included), or the
    /64 of an IPv6 address; anything unparsable counts as itself."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class ConnectionSlots:
    """Session budgets: one for MX (port 25), one for submission (587 and 465), each with a
    total and a per-client cap. ``acquire`` answers None (admitted; ``release`` it when the
    session ends) or the ``421`` reply refusing the connection."""

    def __init__(self, mx_total: int, mx_per_ip: int, submission_total: int, submission_per_ip: int):
        self.limits = {False: (mx_total, mx_per_ip), True: (submission_total, submission_per_ip)}
        self.totals: Counter[bool] = Counter()
        self.per_client: Counter[tuple[bool, str]] = Counter()

    @classmethod
    def from_config(cls, cfg: Any) -> ConnectionSlots:
        return cls(
            cfg.max_connections,
            cfg.max_connections_per_ip,
            cfg.max_submission_connections,
            cfg.max_submission_connections_per_ip,
        )

    def acquire(self, kind: ListenerKind, ip: str) -> str | None:
        budget = kind.is_submission
        total, per_ip = self.limits[budget]
        key = (budget, client_key(ip))
        if self.totals[budget] >= total:
            return "421 4.7.0 Too many connections; try again later"
        if self.per_client[key] >= per_ip:
            return "421 4.7.0 Too many connections from your address; try again later"
        self.totals[budget] += 1
        self.per_client[key] += 1
        return None

    def release(self, kind: ListenerKind, ip: str) -> None:
        budget = kind.is_submission
        key = (budget, client_key(ip))
        self.totals[budget] -= 1
        self.per_client[key] -= 1
        if self.per_client[key] <= 0:
            del self.per_client[key]  # the counter must not keep one entry per client ever seen

    def in_use(self, kind: ListenerKind) -> int:
        return self.totals[kind.is_submission]


# Replies that are not the client's fault: closing anyway, a local error, storage or too many
# recipients (RFC 5321 §4.5.3.1.10: the client sends the rest in another transaction)
_NOT_CLIENT_ERRORS = frozenset({"421", "451", "452"})


@dataclass(frozen=True)
class ErrorVerdict:
    delay: float = 0.0  # seconds to wait before the reply
    disconnect: bool = False  # after the reply, say 421 and close


class ErrorBudget:
    """The errors of one session: ``record(reply)`` before each reply goes out."""

    TOO_MANY = "421 4.7.0 Too many errors; closing the connection"

    def __init__(self, soft_limit: int, hard_limit: int, sleep_time: float):
        self.soft_limit = soft_limit
        self.hard_limit = hard_limit
        self.sleep_time = sleep_time
        self.errors = 0

    @classmethod
    def from_config(cls, cfg: Any) -> ErrorBudget:
        return cls(cfg.soft_error_limit, cfg.hard_error_limit, cfg.error_sleep_time)

    @staticmethod
    def is_error(reply: str | bytes) -> bool:
        code = reply[:3].decode("ascii", "replace") if isinstance(reply, bytes) else reply[:3]
        return code[:1] in ("4", "5") and code not in _NOT_CLIENT_ERRORS

    def record(self, reply: str | bytes) -> ErrorVerdict:
        if not self.is_error(reply):
            return ErrorVerdict()
        return self.count()

    def count(self) -> ErrorVerdict:
        """One more error (a failed reply, or a junk command past its limit)."""
        self.errors += 1
        over = self.errors - self.soft_limit
        delay = self.sleep_time * over if over > 0 else 0.0
        return ErrorVerdict(delay, self.errors >= self.hard_limit)

    def delivered(self) -> None:
        self.errors = 0
