"""The delivery workers: greenlets that take due recipients from the queue and deliver them.

One scheduler greenlet wakes when mail is enqueued, when a worker finishes, at the next
due time, and at least every ``POLL_SECONDS`` (so ``gk queue retry``/``inject`` from
another process are seen). It starts a worker per destination — the recipient domain, or
the smarthost for everything — up to ``queue.per_domain_connections`` per destination and
``queue.max_deliveries`` in all. A worker opens one SMTP session and sends every due message
for its destination through it (connection reuse), one message at a time.

Results per recipient: ``2xx`` → sent; ``5xx`` (or NXDOMAIN / null MX) → bounced at once with
a DSN to the sender; anything else (``4xx``, timeouts, refused connections, a dropped
connection, a garbled reply, no DNS answer) → deferred after the next step of
``queue.retry_minutes`` (the last step repeats), with the reason stored and logged; a delay
DSN once the message is ``queue.delay_warning_hours`` old; a failure DSN when it reaches
``queue.expire_hours``. When the destination cannot be reached at all, every due message for
it is deferred with that reason without a new connection each.

Exactly-once: a recipient is marked sent (SQLite commit, ``synchronous=FULL``) right after
the peer's ``250`` to DATA. A crash between that ``250`` and the commit makes the message
be sent once more after restart: at most one duplicate per message in flight, never a loss.
Cost: one greenlet per active destination (~10 KB each) plus its SMTP session; the scheduler
is one indexed SQLite query per wake-up.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import gevent.pool

from gk.mail.mailbox import get_writer
from gk.mail.outbound import mx
from gk.mail.outbound.mtasts import MTASTSCache
from gk.mail.queue import dsn
from gk.mail.queue.store import Attempt, QueueStore

if TYPE_CHECKING:
    from gk.context import AppContext
    from gk.mail.outbound.client import Session

log = logging.getLogger("gk.mail.queue")

POLL_SECONDS = 2.0


@dataclass
class Destination:
    key: str
    domain: str  # the recipient domain ('' for the smarthost)


class QueueRunner:
    def __init__(self, ctx: AppContext, store: QueueStore, resolver: Any):
        self.ctx = ctx
        self.cfg = ctx.config.queue
        self.store = store
        self.resolver = resolver
        self.mtasts = MTASTSCache(
            resolver, port=self.cfg.mta_sts_port, ca_file=self.cfg.ca_file, timeout=self.cfg.connect_timeout
        )
        self.wake = gevent.event.Event()
        self.workers = gevent.pool.Group()
        self.active: dict[str, int] = defaultdict(int)
        self.claimed: set[int] = set()
        self.stopping = False
        self.scheduler: gevent.Greenlet | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.scheduler = gevent.spawn(self._schedule_loop)

    def stop(self, grace: float) -> None:
        self.stopping = True
        self.wake.set()
        if self.scheduler:
            self.scheduler.kill(block=True, timeout=2)
        self.workers.join(timeout=grace)
        self.workers.kill(block=True, timeout=2)

    # -- scheduling ----------------------------------------------------------------------
    def _dest_of(self, domain: str) -> Destination:
        if self.cfg.smarthost:
            return Destination(f"smarthost:{self.cfg.smarthost}", "")
        return Destination(domain, domain)

    def _schedule_loop(self) -> None:
        while not self.stopping:
            self.wake.clear()
            try:
                blocked = self._dispatch()
            except Exception:
                log.exception("queue scheduler failed; retrying in %.0fs", POLL_SECONDS)
                blocked = True
            timeout = POLL_SECONDS
            if not blocked:
                nxt = self.store.next_due_time()
                if nxt is not None:
                    timeout = min(POLL_SECONDS, max(0.05, nxt - time.time()))
            self.wake.wait(timeout)

    def _dispatch(self) -> bool:
        """Start workers for due destinations; True while due work exists (workers wake us when done)."""
        rows = self.store.due(time.time())
        messages: dict[str, set[int]] = defaultdict(set)
        for r in rows:
            if r["id"] not in self.claimed:
                messages[self._dest_of(r["domain"]).key].add(r["message_id"])
        blocked = bool(rows)  # running workers take what is due for their destination; no polling for it
        for key, msgs in messages.items():
            dest = self._dest_of(key) if not key.startswith("smarthost:") else Destination(key, "")
            want = min(len(msgs), self.cfg.per_domain_connections) - self.active[key]
            for _ in range(max(0, want)):
                if len(self.workers) >= self.cfg.max_deliveries:
                    break
                self.active[key] += 1
                self.workers.spawn(self._worker, dest)
        return blocked

    def _route_current(self, dest: Destination) -> bool:
        """False once the smarthost setting changed so that ``dest`` is no longer the route."""
        if dest.domain:
            return not self.cfg.smarthost
        return bool(self.cfg.smarthost) and dest.key == f"smarthost:{self.cfg.smarthost}"

    def _claim(self, dest: Destination) -> list[dict[str, Any]]:
        if not self._route_current(dest):
            return []
        domains = None if not dest.domain else {dest.domain}
        rows = self.store.due_for(domains, time.time(), self.claimed)
        if not rows:
            return []
        msg_id = rows[0]["message_id"]
        batch = [r for r in rows if r["message_id"] == msg_id]
        self.claimed.update(r["id"] for r in batch)
        return batch

    # -- one destination -----------------------------------------------------------------
    def _worker(self, dest: Destination) -> None:
        # the SMTP client (smtplib, email.generator: ~0.25 MB) on the first mail sent, not at start
        from gk.mail.outbound.client import TemporaryFailure

        session: Session | None = None
        unreachable = ""
        try:
            while not self.stopping:
                batch = self._claim(dest)
                if not batch:
                    break
                try:
                    if unreachable:
                        self._defer_all(batch, unreachable, "")
                        continue
                    if session is None or session.broken:
                        if session:
                            session.close()
                        session = None
                        try:
                            session = self._open(dest)
                        except TemporaryFailure as exc:
                            unreachable = str(exc)
                            self._defer_all(batch, unreachable, "")
                            continue
                    self._send(session, batch)
                except mx.DNSPermanentError as exc:
                    self._finish(batch, [(r, "perm", str(exc), "") for r in batch], status=exc.status)
                except Exception as exc:  # never lose a message to a bug: defer it with the reason
                    log.exception("queue worker for %s failed", dest.key)
                    self._defer_all(batch, f"internal error: {exc}", "")
                finally:
                    self.claimed.difference_update(r["id"] for r in batch)
        finally:
            if session:
                session.close()
            self.active[dest.key] -= 1
            if self.active[dest.key] <= 0:
                self.active.pop(dest.key, None)
            self.wake.set()

    def _open(self, dest: Destination) -> Session:
        from gk.mail.outbound import client
        from gk.mail.outbound.client import Auth, Target, TemporaryFailure, TLSPolicy

        cfg = self.cfg
        ehlo = self.ctx.hostname
        timeouts = dict(connect_timeout=cfg.connect_timeout, command_timeout=cfg.command_timeout)
        if not dest.domain:
            host = cfg.smarthost
            try:
                addresses = _literal(host) or mx.host_addresses(self.resolver, host)
            except mx.DNSTemporaryError as exc:
                raise TemporaryFailure(str(exc)) from exc
            if not addresses:
                raise TemporaryFailure(f"smarthost {host} has no address")
            auth = Auth(cfg.smarthost_username, cfg.smarthost_password) if cfg.smarthost_username else None
            policy = TLSPolicy(cfg.ca_file, require_verified=bool(auth), reason="smarthost AUTH")
            errors = []
            for addr in addresses:
                try:
                    session = client.connect(
                        Target(host, addr, cfg.smarthost_port),
                        ehlo,
                        policy,
                        tls_mode=cfg.smarthost_tls,
                        auth=auth,
                        **timeouts,
                    )
                except TemporaryFailure as exc:
                    errors.append(f"{host}[{addr}]: {exc}")
                    log.info("outbound smarthost %s[%s]:%d failed: %s", host, addr, cfg.smarthost_port, exc)
                    continue
                self._log_connected(session)
                return session
            raise TemporaryFailure("smarthost unreachable: " + "; ".join(errors))
        try:
            hosts = mx.resolve_mx(self.resolver, dest.domain)
        except mx.DNSTemporaryError as exc:
            raise TemporaryFailure(str(exc)) from exc
        policy = TLSPolicy(cfg.ca_file)
        try:
            sts = self.mtasts.policy(dest.domain)
        except Exception as exc:
            log.warning("MTA-STS lookup for %s failed: %s", dest.domain, exc)
            sts = None
        if sts and sts.enforce:
            policy = TLSPolicy(cfg.ca_file, require_verified=True, require_tls=True, reason="MTA-STS enforce")
            allowed = [h for h in hosts if sts.matches(h.name)]
            for h in hosts:
                if h not in allowed:
                    log.warning("outbound %s: MX %s not allowed by the MTA-STS policy; skipped", dest.domain, h.name)
            hosts = allowed
            if not hosts:
                raise TemporaryFailure(f"no MX host of {dest.domain} matches its MTA-STS policy")
        errors = []
        for mx_host in hosts:
            if not mx_host.addresses:
                errors.append(mx_host.error or f"{mx_host.name}: no address")
                continue
            for addr in mx_host.addresses:
                try:
                    target = Target(mx_host.name, addr, cfg.remote_smtp_port)
                    session = client.connect(
                        target, ehlo, policy, connect_timeout=cfg.connect_timeout, command_timeout=cfg.command_timeout
                    )
                except TemporaryFailure as exc:
                    errors.append(f"{mx_host.name}[{addr}]: {exc}")
                    log.info("outbound %s[%s]:%d failed: %s", mx_host.name, addr, cfg.remote_smtp_port, exc)
                    continue
                self._log_connected(session)
                return session
        raise TemporaryFailure(f"no MX host of {dest.domain} reachable: " + "; ".join(errors))

    def _log_connected(self, session: Session) -> None:
        detail = session.tls_detail.strip()
        log.info("outbound connected to %s tls=%s%s", session.label, session.tls, f" {detail}" if detail else "")

    def _send(self, session: Session, batch: list[dict[str, Any]]) -> None:
        from gk.mail.outbound.client import TemporaryFailure

        first = batch[0]
        spool = self.store.spool_path(first["spool"])
        if not spool.exists():  # deleted by `gk queue delete` meanwhile
            return
        try:
            results = session.send(first["mail_from"], [r["rcpt"] for r in batch], spool, first["size"])
        except TemporaryFailure as exc:
            self._defer_all(batch, str(exc), session.label)
            return
        by_rcpt = {res.rcpt: res for res in results}
        outcomes = []
        for r in batch:
            res = by_rcpt[r["rcpt"]]
            outcomes.append((r, res.outcome, res.text, session.label))
        self._finish(batch, outcomes)

    # -- recording results ---------------------------------------------------------------
    def _defer_all(self, batch: list[dict[str, Any]], reason: str, host: str) -> None:
        self._finish(batch, [(r, "temp", reason, host) for r in batch])

    def _finish(self, batch: list[dict[str, Any]], outcomes: list[tuple], status: str = "") -> None:  # type: ignore[type-arg]
        """Record one transaction's results. DSNs are written before the commit that ends a
        recipient, so a crash in between repeats a DSN rather than losing it."""
        cfg = self.cfg
        now = time.time()
        failed: list[dsn.Failure] = []
        delayed: list[dsn.Failure] = []
        records: list[Attempt] = []
        lines: list[str] = []
        for r, outcome, reply, host in outcomes:
            msg = f"msg={r['message_id']} rcpt={r['rcpt']}"
            if outcome == "sent":
                records.append(Attempt(r["id"], host, "sent", reply))
                lines.append(f"queue {msg} sent via {host}: {reply}")
            elif outcome == "perm":
                records.append(Attempt(r["id"], host, "bounced", reply))
                lines.append(f"queue {msg} bounced (permanent) via {host or '-'}: {reply}")
                failed.append(dsn.Failure(r["rcpt"], (f"{status} " if status else "") + reply, host))
            else:
                attempts = r["attempts"] + 1
                age = now - r["created"]
                expire_at = r["created"] + cfg.expire_hours * 3600
                if now >= expire_at:
                    why = f"gave up after {age / 3600:.2f} hours and {attempts} attempts; last error: {reply}"
                    records.append(Attempt(r["id"], host, "bounced", why))
                    lines.append(f"queue {msg} expired via {host or '-'}: {why}")
                    failed.append(dsn.Failure(r["rcpt"], why, host, permanent=True, fixed_status="5.4.7"))
                    continue
                steps = cfg.retry_minutes or [32.0]
                delay = steps[min(attempts - 1, len(steps) - 1)] * 60
                next_attempt = min(now + delay, expire_at)
                warn = bool(
                    cfg.delay_warning_hours > 0 and age >= cfg.delay_warning_hours * 3600 and not r["delay_warned"]
                )
                records.append(Attempt(r["id"], host, "deferred", reply, next_attempt, True if warn else None))
                lines.append(
                    f"queue {msg} deferred via {host or '-'} (attempt {attempts}), "
                    f"retry in {next_attempt - now:.1f}s: {reply}"
                )
                if warn:
                    delayed.append(dsn.Failure(r["rcpt"], reply, host, permanent=False))
        first = batch[0]
        if failed:
            self._notify_sender(first, "failed", failed)
        if delayed:
            self._notify_sender(first, "delayed", delayed)
        self.store.record_attempts(records)
        for line in lines:
            log.info("%s", line)
        self.store.finish_message_if_done(first["message_id"])

    def _notify_sender(self, row: dict[str, Any], kind: str, failures: list[dsn.Failure]) -> None:
        if not row["mail_from"]:
            log.info("queue msg=%d: no %s DSN for a message from the null sender", row["message_id"], kind)
            return
        owner = self.ctx.accounts.get_user(row["user"]) or self.ctx.accounts.resolve_recipient(row["mail_from"])
        if owner is None:
            log.warning(
                "queue msg=%d: sender %s has no mailbox here; %s DSN dropped", row["message_id"], row["user"], kind
            )
            return
        original = dsn.original_headers(self.store.spool_path(row["spool"]))
        retry_until = row["created"] + self.cfg.expire_hours * 3600
        body = dsn.build(
            kind=kind,
            hostname=self.ctx.hostname,
            to=row["mail_from"],
            failures=failures,
            original=original,
            arrival=row["created"],
            retry_until=retry_until,
        )
        try:
            dsn.deliver_to_user(get_writer(self.ctx), owner.address, body)
        except OSError as exc:
            log.error("queue msg=%d: %s DSN to %s not delivered: %s", row["message_id"], kind, owner.address, exc)
            return
        log.info("queue msg=%d: %s DSN delivered to %s", row["message_id"], kind, owner.address)


def _literal(host: str) -> list[str]:
    import ipaddress

    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        return []
