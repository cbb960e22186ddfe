"""GK's SMTP policy — who may send what to whom — kept apart from the protocol mechanics.

Testable without a socket (tests/unit/test_smtp_policy.py). The session asks:

- ``mail_from``: on port 25 anyone may send (null sender included); on submission ports the
  user must be authenticated and own the address (``gk.mail.submission.owns_address``);
- ``rcpt_to``: on port 25 only addresses in local domains (``550 5.7.1`` relaying denied) that
  exist (``550 5.1.1``); on submission ports local addresses must exist and remote ones need the
  outbound queue (``550 5.3.3`` until it runs); at most ``max_recipients`` (``452 4.5.3``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from gk.accounts import User, normalize_address
from gk.mail import submission


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

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("2")


class SMTPPolicy:
    def __init__(self, ctx: Any, max_recipients: int):
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
            return RcptDecision("250 2.1.5 OK", owner)
        # a user or alias makes its domain local: resolve first (the common case, two indexed
        # lookups) and look at the whole list of local domains only to word a refusal
        owner_user = self.ctx.accounts.resolve_recipient(addr)
        if owner_user is not None:
            return RcptDecision("250 2.1.5 OK", owner_user.address)
        if not self.ctx.accounts.is_local_domain(domain):
            return RcptDecision(f"550 5.7.1 <{address}>: relaying denied")
        return RcptDecision(f"550 5.1.1 <{address}>: no such user here")
