"""The queue as a ``gk serve`` feature: ``ctx.services.maybe(QueueService)``.

``enqueue(mail_from, recipients, message_path, *, user) -> int`` signs the message with the
sender domain's DKIM key, copies it into the spool (fsynced) and commits the recipients
(``synchronous=FULL``) before it returns, so the caller may answer ``250`` and delete its own
file. File work runs in gevent's threadpool; the commit is a short SQLite transaction.
``snapshot()`` lists pending recipients for the dashboard and ``/api/mail/queue``.
At start: messages whose recipients all finished just before a crash are removed, DKIM keys are created for every local domain that lacks them, spool files left
by a crash before their commit are removed, and the delivery workers start (see runner.py).
The queue opens no listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gk import pools, settings
from gk.context import AppContext
from gk.mail.dkim import ensure_keys
from gk.mail.dnsresolver import make_resolver
from gk.mail.queue import spooling
from gk.mail.queue.runner import QueueRunner
from gk.mail.queue.store import QueueStore

log = logging.getLogger("gk.mail.queue")


class QueueError(Exception):
    """The message could not be queued (the caller answers 4xx/5xx with this text)."""


class QueueService:
    name = "queue"

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.cfg = ctx.config.queue
        self.store = QueueStore(ctx.data_dir)
        self.runner = QueueRunner(ctx, self.store, make_resolver(ctx.config.dns))
        self.listeners: list[tuple[str, str, int]] = []
        self._unsubscribe: Callable[[], None] = lambda: None

    def start(self) -> QueueService:
        finished = self.store.finish_done_messages()
        if finished:
            log.info("removed %d finished message(s) a crash left in the queue", finished)
        removed = self.store.clean_orphans()
        if removed:
            log.info("removed %d spool file(s) a crash left without a queue entry", removed)
        for domain in sorted(self.ctx.accounts.local_domains()):
            self._ensure_keys(domain)
        self.runner.start()
        self._unsubscribe = settings.of(self.ctx.data_dir).subscribe(self._relay_changed, settings.RELAY_KEYS)
        pending = len(self.store.due(float("inf"), limit=100000))
        how = f"smarthost {self.cfg.smarthost}:{self.cfg.smarthost_port}" if self.cfg.smarthost else "MX"
        log.info("queue started: %d recipient(s) pending, delivering by %s", pending, how)
        return self

    def _relay_changed(self, change: settings.Change) -> None:
        """Settings callback: take the new ``[queue]`` section (gk.settings replaced it on the
        running config after the durable write); mail waiting for a retry takes the new route now."""
        self.cfg = self.runner.cfg = self.ctx.config.queue
        self.retry(None)

    def _ensure_keys(self, domain: str) -> None:
        try:
            pools.run_cpu(
                ensure_keys, self.ctx.data_dir, domain, self.cfg.dkim_selector, self.cfg.dkim_ed25519_selector
            )
        except (OSError, ValueError) as exc:
            log.warning("DKIM key for %s not created: %s", domain, exc)

    def enqueue(self, mail_from: str, recipients: list[str], message_path: Path, *, user: str) -> int:
        if not recipients:
            raise QueueError("no recipients")
        for rcpt in recipients:
            if "@" not in rcpt or any(c in rcpt for c in "\r\n<> "):
                raise QueueError(f"bad recipient address {rcpt!r}")
        if any(c in mail_from for c in "\r\n<> ") or (mail_from and "@" not in mail_from):
            raise QueueError(f"bad sender address {mail_from!r}")
        message_path = Path(message_path)
        header_from, _, _ = spooling.header_fields(spooling.read_header_block(message_path))
        domain = spooling.signing_domain(header_from, mail_from, self.ctx.accounts.is_local_domain)
        try:
            prepared: spooling.Prepared = pools.run_io(
                spooling.prepare, self.store, self.cfg, self.ctx.data_dir, message_path, domain
            )
        except OSError as exc:
            raise QueueError(f"could not spool the message: {exc}") from exc
        msg_id = self.store.add(
            mail_from,
            list(recipients),
            prepared.spool,
            prepared.size,
            user=user,
            header_from=prepared.header_from,
            subject=prepared.subject,
            message_id=prepared.message_id,
        )
        log.info(
            "queue msg=%d from=<%s> user=%s rcpts=%d size=%d dkim=%s",
            msg_id,
            mail_from,
            user,
            len(recipients),
            prepared.size,
            prepared.dkim_domain or "-",
        )
        self.runner.wake.set()
        return msg_id

    def snapshot(self) -> list[dict[str, Any]]:
        return self.store.snapshot()

    def retry(self, msg_id: int | None = None) -> int:
        """Make a message (or every waiting one, for None) due now; returns recipients affected."""
        n = self.store.retry(msg_id)
        self.runner.wake.set()
        return n

    def delete(self, msg_id: int) -> bool:
        """Drop a message from the queue without a bounce; False when it is not queued."""
        ok = self.store.delete(msg_id)
        self.runner.wake.set()
        return bool(ok)

    def stop(self, grace: float) -> None:
        self._unsubscribe()
        self.runner.stop(grace)
        self.store.close()


def start(ctx: AppContext) -> QueueService:
    svc = QueueService(ctx)
    return svc.start()
