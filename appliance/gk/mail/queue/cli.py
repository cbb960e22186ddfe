"""``gk queue list|show|retry|delete|inject``: look at and act on the outbound queue.

Works on ``DATA_DIR/queue.sqlite3`` directly, also while ``gk serve`` runs (SQLite WAL);
the server's scheduler polls every few seconds and picks up retries and injected mail.
``inject`` queues a message read from stdin, like ``sendmail``: for scripts and tests.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

from gk import clikit


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="queue_cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    ls = sub.add_parser("list", parents=[common], help="pending messages and recipients")
    ls.add_argument("--json", action="store_true", help="one JSON list of recipient rows, for scripts and tests")
    s = sub.add_parser("show", parents=[common], help="one message: recipients, attempts, replies")
    s.add_argument("id", type=int)
    s.add_argument(
        "--json", action="store_true", help="one JSON object: the message, its recipients and their attempts"
    )
    r = sub.add_parser("retry", parents=[common], help="try a message (or --all) again now")
    r.add_argument("id", type=int, nargs="?")
    r.add_argument("--all", action="store_true")
    d = sub.add_parser("delete", parents=[common], help="remove a message from the queue (no bounce)")
    d.add_argument("id", type=int)
    i = sub.add_parser("inject", parents=[common], help="queue a message from stdin (like sendmail)")
    i.add_argument("--from", dest="mail_from", required=True, help="envelope sender ('' for <>)")
    i.add_argument("--user", default="", help="local user who gets DSNs (default: the sender)")
    i.add_argument("recipients", nargs="+")


def handle(args: argparse.Namespace) -> int:
    from gk.mail.queue.store import QueueStore

    store = QueueStore(args.data_dir)
    try:
        if args.queue_cmd == "list":
            rows = store.snapshot(limit=100000)
            if args.json:
                print(json.dumps(rows))
                return 0
            if not rows:
                print("queue is empty")
            for r in rows:
                print(
                    f"{r['id']}\t{_when(r['created'])}\t<{r['mail_from']}>\t{r['rcpt']}\t{r['state']}"
                    f"\tattempts={r['attempts']}\tnext={_when(r['next_attempt'])}\t{r['last_error']}"
                )
        elif args.queue_cmd == "show":
            msg = store.message(args.id)
            if not msg:
                return clikit.fail(f"no queued message {args.id}")
            if args.json:
                rcpts = [{**r, "attempts": store.attempts_of(r["id"])} for r in store.recipients_of(args.id)]
                print(json.dumps({**msg, "recipients": rcpts}))
                return 0
            for key in ("id", "mail_from", "user", "header_from", "subject", "message_id", "size", "spool"):
                print(f"{key}: {msg[key]}")
            print(f"created: {_when(msg['created'])}")
            for r in store.recipients_of(args.id):
                print(
                    f"recipient {r['rcpt']}: {r['state']}, {r['attempts']} attempt(s), next {_when(r['next_attempt'])}"
                )
                for a in store.attempts_of(r["id"]):
                    print(f"  {_when(a['ts'])} {a['outcome']} via {a['host'] or '-'}: {a['reply']}")
        elif args.queue_cmd == "retry":
            if args.id is None and not args.all:
                return clikit.fail("give a message id or --all", 2)
            n = store.retry(None if args.all else args.id)
            print(f"{n} recipient(s) will be tried again now")
        elif args.queue_cmd == "delete":
            if not store.delete(args.id):
                return clikit.fail(f"no queued message {args.id}")
            print(f"deleted message {args.id}")
        elif args.queue_cmd == "inject":
            return _inject(args, store)
    finally:
        store.close()
    return 0


def _inject(args: argparse.Namespace, store) -> int:  # type: ignore[no-untyped-def]
    from gk.context import open_accounts
    from gk.mail.queue import spooling

    cfg = clikit.load(args)
    accounts = open_accounts(cfg, args.data_dir)
    fd, name = tempfile.mkstemp(prefix="inject-", dir=store.spool_dir.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            while chunk := sys.stdin.buffer.read(256 * 1024):
                f.write(chunk)
        header_from, _, _ = spooling.header_fields(spooling.read_header_block(tmp))
        domain = spooling.signing_domain(header_from, args.mail_from, accounts.is_local_domain)
        prepared = spooling.prepare(store, cfg.queue, args.data_dir, tmp, domain)
        msg_id = store.add(
            args.mail_from,
            args.recipients,
            prepared.spool,
            prepared.size,
            user=args.user or args.mail_from.lower(),
            header_from=prepared.header_from,
            subject=prepared.subject,
            message_id=prepared.message_id,
        )
    finally:
        tmp.unlink(missing_ok=True)
    print(msg_id)
    return 0
