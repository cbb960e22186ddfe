"""The selected folder as one session sees it (``Selected``) and how other sessions' changes reach it.

Consistency between sessions: every session keeps its own view (the UID list it announced and
the HIGHESTMODSEQ it has reported). Changes reach it as typed events of ``gk.events`` (issue 11):
``MessagesAdded``, ``FlagsChanged`` and ``Expunged`` of its selected folder are queued by
``_on_event`` (which also wakes IDLE), and at the points RFC 3501 §7.4.1 allows (NOOP, IDLE, after
commands other than FETCH/STORE/SEARCH, and as late as possible before the tagged reply)
``_updates`` folds the queued events into deltas and sends them as the full diff did: ``EXPUNGE``
(highest first, so each number is valid when sent) or ``VANISHED``, ``EXISTS``, ``FLAGS`` for new
keywords, then ``FETCH (FLAGS …)`` for messages the client knew. No re-listing of the folder: the
cost is that of the changes, not of the folder. Where EXPUNGE is not allowed, a pending expunge
holds back all updates until the next allowed point.

The check: every event carries the folder's HIGHESTMODSEQ after it, so a session that applied all
of its folder's events has reached the index's HIGHESTMODSEQ. When it has not (a change made
without an event, an index rebuilt, more than ``MAX_PENDING`` events queued), ``_full_diff`` diffs
the whole view against the index, as every update did before.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable

from gk import events
from gk.mail.imap.connection import Connection, Selected
from gk.mail.imap.parser import Parser
from gk.mail.imap.protocol import BadCommand, SeqSet, merge, missing, ranges_text, runs
from gk.mail.imap.response import flag_list
from gk.mail.imap.search import seq_ranges_to_uids
from gk.mail.mailbox import MailboxError, UserMailbox

PERMANENT = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"
MAX_PENDING = 2000  # events queued for one session before it drops them and resynchronizes in full

FolderEvent = events.MessagesAdded | events.FlagsChanged | events.Expunged


class SelectedView(Connection):
    """Updates of the selected folder and the helpers every command on it shares."""

    def close(self) -> None:
        if self.user:
            events.unsubscribe(self.user, self._on_event)
        super().close()

    # -- updates ----------------------------------------------------------------------------
    def _on_event(self, ev: events.Event) -> None:
        """A bus subscriber (runs in the publisher's greenlet): queue, wake, never block."""
        sel = self.sel
        if sel is None or ev.folder != sel.name:
            return
        if isinstance(ev, events.MessagesAdded | events.FlagsChanged | events.Expunged):
            if len(self.pending) >= MAX_PENDING:
                self.pending.clear()
                self.overflow = True
            elif not self.overflow:
                self.pending.append(ev)
        self.changed.set()

    def _updates(self, expunge_ok: bool = True) -> None:
        sel, mb = self.sel, self.mb
        if sel is None or mb is None:
            return
        try:  # files delivered or changed behind the index: their events queue here
            top = mb.sync_modseq(sel.name)  # no other greenlet runs before ``top`` is used below
        except MailboxError:
            return
        if self.overflow:
            self.overflow = False
            self.pending.clear()
            self._full_diff(sel, mb, expunge_ok)
            return
        if self.pending:
            # The queued events, folded into what the client must learn (as the full diff would
            # tell it): expunges of messages it knows, additions, the last flags of the others.
            expunged: set[int] = set()
            added: set[int] = set()
            flags: dict[int, tuple[tuple[str, ...], int]] = {}
            for ev in self.pending:
                if isinstance(ev, events.Expunged):
                    expunged.update(ev.uids)
                elif isinstance(ev, events.MessagesAdded):
                    added.update(ev.uids)
                else:
                    for u, fl, ms in ev.changes:
                        flags[u] = (fl, ms)
            gone = sorted(u for u in expunged if sel.seq_of(u))
            if gone and not expunge_ok:
                return  # held back, with every other update, until EXPUNGE is allowed
            modseq = max(ev.modseq for ev in self.pending)
            self.pending.clear()
            known = {u: None for u in flags if sel.seq_of(u) and u not in expunged}
            new = sorted(u for u in added - expunged if not sel.seq_of(u))
            if gone:
                self._expunge_lines(sel, gone)
            if new:
                if not sel.uids or new[0] > sel.uids[-1]:
                    sel.uids.extend(new)
                else:  # UIDs below the top (adopted from file names after an index rebuild)
                    sel.uids = array("I", sorted({*sel.uids, *new}))
            if gone or new:
                sel.claim_recent(mb)
                self.write(f"* {len(sel.uids)} EXISTS\r\n* {sel.recent_count()} RECENT\r\n".encode())
            keywords = [f for u in known for f in flags[u][0]]
            if new:
                keywords += [f for i in mb.infos(sel.name, new).values() for f in i.flags]
            self._announce_keywords(keywords)
            for u in sorted(known):
                fl, ms = flags[u]
                self._flags_line(sel.seq_of(u), u, fl, ms, True)
            sel.modseq = max(sel.modseq, modseq)
        if top != sel.modseq:  # a change without its event (or an index rebuilt): diff in full
            self._full_diff(sel, mb, expunge_ok)

    def _expunge_lines(self, sel: Selected, gone: list[int]) -> None:
        """EXPUNGE (highest first) or VANISHED for ``gone`` (UIDs in the view, ascending); they leave it."""
        if self.qresync:
            self.write(f"* VANISHED {ranges_text(runs(gone))}\r\n".encode())
        else:
            for u in reversed(gone):
                self.write(f"* {sel.seq_of(u)} EXPUNGE\r\n".encode())
        drop = set(gone)
        sel.uids = array("I", (u for u in sel.uids if u not in drop))
        if sel.saved:  # RFC 5182 2.1: expunged messages leave $
            sel.saved = [u for u in sel.saved if u not in drop]

    def _own_flags(self, sel: Selected, changed: list[tuple[int, tuple[str, ...], int]], caught_up: bool) -> None:
        """After this session changed flags (STORE, FETCH's implicit \\Seen) and answered for them
        itself: its own ``FlagsChanged`` (published in the call) is not reported again. When the
        session was caught up before, the event goes and the view's HIGHESTMODSEQ follows it."""
        own = {(u, m) for u, _, m in changed}
        if not own:
            return
        for i, ev in enumerate(self.pending):
            if isinstance(ev, events.FlagsChanged) and any((u, m) in own for u, _, m in ev.changes):
                rest = tuple(c for c in ev.changes if (c[0], c[2]) not in own)
                if caught_up and i == 0 and not rest:
                    self.pending.pop(0)
                    sel.modseq = max(sel.modseq, ev.modseq)
                else:
                    self.pending[i] = events.FlagsChanged(ev.user, ev.folder, rest, ev.modseq)
                return

    def _full_diff(self, sel: Selected, mb: UserMailbox, expunge_ok: bool) -> None:
        """The full diff of the view against the index (the fallback; see the module docstring)."""
        try:
            top = mb.highestmodseq(sel.name)
        except MailboxError:
            return
        if top == sel.modseq:
            return
        self.full_diffs += 1
        current = mb.uids(sel.name)
        cur_set = set(current)
        gone = [i for i, u in enumerate(sel.uids) if u not in cur_set]
        if gone and not expunge_ok:
            self.overflow = True  # try again at the next point where EXPUNGE is allowed
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
