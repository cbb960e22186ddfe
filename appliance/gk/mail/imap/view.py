"""The selected folder as one session sees it (``Selected``) and how other sessions' changes reach it.

Consistency between sessions: every session keeps its own view (the UID list it announced and
the HIGHESTMODSEQ it has reported). At the points RFC 3501 §7.4.1 allows (NOOP, IDLE, after
commands other than FETCH/STORE/SEARCH, and as late as possible before the tagged reply),
``_updates`` diffs that view against the index and sends ``EXPUNGE`` (highest first, so each
number is valid when sent), ``EXISTS`` and ``FETCH (FLAGS …)``. Where EXPUNGE is not allowed,
pending expunges hold back all updates until the next allowed point.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from gk.mail.imap.connection import Connection, Selected
from gk.mail.imap.parser import Parser
from gk.mail.imap.protocol import BadCommand, SeqSet, merge, missing, ranges_text, runs
from gk.mail.imap.response import flag_list
from gk.mail.imap.search import seq_ranges_to_uids
from gk.mail.mailbox import MailboxError, UserMailbox, notify

PERMANENT = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"


class SelectedView(Connection):
    """Updates of the selected folder and the helpers every command on it shares."""

    def close(self) -> None:
        if self.user:
            notify.unsubscribe(self.user, self._on_change)
        super().close()

    # -- updates ----------------------------------------------------------------------------
    def _on_change(self, address: str, folder: str, kind: str) -> None:
        if self.sel is not None and folder == self.sel.name:
            self.changed.set()

    def _updates(self, expunge_ok: bool = True) -> None:
        sel, mb = self.sel, self.mb
        if sel is None or mb is None:
            return
        try:
            mb.sync(sel.name)
            top = mb.highestmodseq(sel.name)
        except MailboxError:
            return
        if top == sel.modseq:
            return
        current = mb.uids(sel.name)
        cur_set = set(current)
        gone = [i for i, u in enumerate(sel.uids) if u not in cur_set]
        if gone and not expunge_ok:
            return
        old = sel.uids
        if gone and self.qresync:
            self.write(f"* VANISHED {ranges_text(runs([old[i] for i in gone]))}\r\n".encode())
        else:
            for i in reversed(gone):
                self.write(f"* {i + 1} EXPUNGE\r\n".encode())
        if gone and sel.saved:  # RFC 5182 2.1: expunged messages leave $
            sel.saved = [u for u in sel.saved if u in cur_set]
        known = set(old) - {old[i] for i in gone}
        sel.uids = current
        sel.claim_recent(mb)
        if len(current) != len(old) - len(gone) or gone:
            self.write(f"* {len(current)} EXISTS\r\n* {sel.recent_count()} RECENT\r\n".encode())
        changes = mb.changes_since(sel.name, sel.modseq)
        self._announce_keywords(f for _, flags, _ in changes for f in flags)  # new messages' too
        for u, flags, modseq in changes:
            if u in known:
                self._flags_line(sel.seq_of(u), u, flags, modseq, True)
        sel.modseq = top

    def _flags_line(self, seq: int, uid: int, flags: tuple[str, ...], modseq: int, with_uid: bool) -> None:
        self._announce_keywords(flags)
        items = b"FLAGS " + flag_list(self._with_recent(uid, flags))
        if with_uid or self.qresync:  # with QRESYNC every FETCH names its UID (as Dovecot and James do)
            items += b" UID %d" % uid
        if self.condstore:
            items += b" MODSEQ (%d)" % modseq
        self.write(b"* %d FETCH (" % seq + items + b")\r\n")

    def _send_flags(self, sel: Selected) -> None:
        """``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` with the keywords this session knows of."""
        flags = PERMANENT + "".join(" " + k for k in sorted(sel.keywords.values()))
        self.write(f"* FLAGS ({flags})\r\n".encode())
        perm = "" if sel.readonly else flags + " \\*"
        self.write(f"* OK [PERMANENTFLAGS ({perm})] flags permitted\r\n".encode())

    def _announce_keywords(self, flags: Iterable[str]) -> None:
        """Send FLAGS again when ``flags`` hold a keyword this session has not announced (a STORE
        or APPEND of this or another session made it): RFC 3501 7.2.6 wants it before any FETCH
        that shows the keyword, and clients that check (imaptest) flag it otherwise. The list only
        grows while the folder is selected, as Dovecot's does."""
        sel = self.sel
        if sel is None:
            return
        new = False
        for f in flags:
            if not f.startswith("\\") and f.lower() not in sel.keywords:
                sel.keywords[f.lower()] = f
                new = True
        if new:
            self._send_flags(sel)

    # -- helpers ----------------------------------------------------------------------------
    def _condstore_on(self) -> None:
        """A CONDSTORE-enabling command (RFC 7162 3.1: FETCH MODSEQ or CHANGEDSINCE, STORE
        UNCHANGEDSINCE, SEARCH MODSEQ, STATUS HIGHESTMODSEQ). The first one issued while a folder
        is selected also reports that folder's HIGHESTMODSEQ (as far as this session has seen)."""
        if self.condstore:
            return
        self.condstore = True
        if self.sel is not None:
            self.write(f"* OK [HIGHESTMODSEQ {self.sel.modseq}] highest\r\n".encode())

    def _with_recent(self, uid: int, flags: tuple[str, ...]) -> tuple[str, ...]:
        """The flags to show: the stored ones, plus \\Recent where this session has it."""
        if self.sel is not None and self.sel.is_recent(uid):
            return (*flags, "\\Recent")
        return flags

    def _need_sel(self) -> tuple[Selected, UserMailbox]:
        assert self.sel is not None and self.mb is not None
        return self.sel, self.mb

    def _uid_ranges(self, s: SeqSet) -> list[tuple[int, int]]:
        sel, _ = self._need_sel()
        if s.saved:
            return runs(sel.saved)
        largest = sel.uids[-1] if sel.uids else 0
        return s.resolve(largest)

    def _seq_ranges(self, s: SeqSet, strict: bool = True) -> list[tuple[int, int]]:
        """UID ranges of the messages a sequence set (or ``$``) names.

        A number past the mailbox's size is BAD (RFC 9051 §9) except in SEARCH (``strict``
        False), where it simply matches nothing, as Dovecot and Cyrus answer.
        """
        sel, _ = self._need_sel()
        if s.saved:
            return runs(sel.saved)
        ranges = s.resolve(len(sel.uids))
        if strict and not s.contains_star():
            for _lo, hi in ranges:
                if hi > len(sel.uids):
                    raise BadCommand("message sequence number out of range")
        return seq_ranges_to_uids(ranges, sel.uids)

    def _target_uids(self, s: SeqSet, uid: bool) -> list[int]:
        """The UIDs (in our view) a sequence set names."""
        sel, _ = self._need_sel()
        ranges = self._uid_ranges(s) if uid else self._seq_ranges(s)
        out: list[int] = []
        for lo, hi in ranges:
            i = bisect.bisect_left(sel.uids, lo)
            j = bisect.bisect_right(sel.uids, hi)
            out.extend(sel.uids[i:j])
        return sorted(set(out))

    def _folder_arg(self, p: Parser) -> str:
        return p.mailbox()

    def _vanished_earlier(
        self, sel: Selected, mb: UserMailbox, since: int, scope: list[tuple[int, int]], uidnext: int, floor: int = 0
    ) -> None:
        """``* VANISHED (EARLIER)`` with the UIDs in ``scope`` expunged after MODSEQ ``since``; when
        tombstones that old were pruned, every UID in scope (above ``floor``, below UIDNEXT) that
        no longer exists: a superset RFC 7162 3.6 allows."""
        scope = [(max(lo, floor + 1), min(hi, uidnext - 1)) for lo, hi in merge(scope)]
        scope = [(lo, hi) for lo, hi in scope if lo <= hi]
        if not scope:
            return
        gone = mb.vanished(sel.name, since, scope)
        if gone is None:
            ranges = missing(scope, sel.uids)
        else:
            ranges = runs([u for u in gone if not sel.seq_of(u)])
        if ranges:
            self.write(f"* VANISHED (EARLIER) {ranges_text(ranges)}\r\n".encode())
