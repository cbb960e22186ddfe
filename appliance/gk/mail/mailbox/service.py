"""The mailbox store as a ``gk serve`` feature: started before every protocol on it, stopped
after them (``gk.features``).

``start`` removes what a crash left in the Maildirs' ``tmp/`` (never acknowledged to anyone)
and makes the one ``MailboxStore`` of the process; ``MailboxStore.stop`` closes every open
index, which removes its ``index.open`` marker: the next start skips ``quick_check``.
"""

from __future__ import annotations

import datetime
import logging

from gk.context import AppContext
from gk.mail.mailbox.store import MailboxStore

log = logging.getLogger("gk.mailbox")


def start(ctx: AppContext) -> MailboxStore:
    data_dir = ctx.data_dir

    def zone() -> datetime.tzinfo:
        # imported by the first message stored, not at start: zoneinfo reads its search path
        # from sysconfig, whose build data (~1 MB of Python objects) an idle server need not hold
        from gk import localtime

        return localtime.zone(data_dir)

    # mail that comes without a zone of its own (SMTP, webmail, files found in the Maildir)
    # gets the owner's time zone as its internal date's zone
    store = MailboxStore(ctx.mail_root, zone=zone)
    removed = store.clean_tmp()
    if removed:
        log.info("removed %d unacknowledged file(s) left in Maildir tmp/ by a crash", removed)
    return store
