"""Authenticated state: commands on folders — ENABLE, NAMESPACE, SELECT/EXAMINE (with CONDSTORE
and QRESYNC), CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST/LSUB (with LIST-STATUS), STATUS and
APPEND."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from gk.mail.delivery import quota
from gk.mail.imap import utf7
from gk.mail.imap.connection import AUTH, SELECTED
from gk.mail.imap.listing import Listed, list_lines
from gk.mail.imap.parser import Parser
from gk.mail.imap.protocol import BadCommand, NoCommand, SeqSet, in_ranges, merge
from gk.mail.imap.response import string
from gk.mail.imap.view import Selected, SelectedView
from gk.mail.mailbox import MailboxError, UserMailbox

STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "DELETED-STORAGE")
MAX_MATCH_PAIRS = 100_000  # QRESYNC sequence match data checked at most


@dataclass(frozen=True, slots=True)
class Resync:
    """SELECT's ``(QRESYNC (uidvalidity modseq [known-uids] [(known-seqs known-uids)]))``."""

    uidvalidity: int
    modseq: int
    known: SeqSet | None
    match: tuple[SeqSet, SeqSet] | None

    @staticmethod
    def parse(p: Parser) -> Resync:
        def uid_set() -> SeqSet:
            s = p.seq_set()
            if s.contains_star():
                raise BadCommand("'*' is not allowed in QRESYNC UID sets")
            return s

        p.open_list()
        uidvalidity = p.number("a UIDVALIDITY", nz=True)
        p.sp()
        modseq = p.mod_sequence()
        known = match = None
        if p.try_(b" ") and p.peek() != ord("("):
            known = uid_set()
            p.try_(b" ")
        if p.peek() == ord("("):
            p.open_list()
            seqs = uid_set()
            p.sp()
            uids = uid_set()
            p.expect(b")")
            p.depth -= 1
            match = (seqs, uids)
        p.expect(b")")
        p.depth -= 1
        return Resync(uidvalidity, modseq, known, match)


def _pairs(seqs: SeqSet, uids: SeqSet) -> Iterator[tuple[int, int]]:
    """The (sequence number, UID) pairs of QRESYNC's sequence match data, in order (at most
    ``MAX_MATCH_PAIRS``)."""

    def each(s: SeqSet) -> Iterator[int]:
        for lo, hi in s.ranges:
            assert lo is not None and hi is not None
            step = 1 if hi >= lo else -1
            yield from range(lo, hi + step, step)

    return itertools.islice(zip(each(seqs), each(uids), strict=False), MAX_MATCH_PAIRS)


class FolderCommands(SelectedView):
    def cmd_enable(self, tag: str, p: Parser) -> None:
        enabled = []
        if p.at_end():
            raise BadCommand("ENABLE needs at least one capability")
        while p.try_(b" "):
            cap = p.atom("a capability").upper()
            if cap == "CONDSTORE" and not self.condstore:
                self.condstore = True
                enabled.append(cap)
            elif cap == "QRESYNC" and not self.qresync:  # implies CONDSTORE (RFC 7162 3.2.3)
                self.qresync = self.condstore = True
                enabled.append(cap)
        p.end()
        self.write(("* ENABLED" + "".join(" " + c for c in enabled) + "\r\n").encode())
        self.ok(tag, "ENABLE completed")

    def cmd_namespace(self, tag: str, p: Parser) -> None:
        p.end()
        self.write(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
        self.ok(tag, "NAMESPACE completed")

    def _select(self, tag: str, p: Parser, readonly: bool) -> None:
        p.sp()
        try:
            name = self._folder_arg(p)
        except NoCommand:  # a SELECT that fails leaves no folder selected (RFC 3501 6.3.1)
            if self.sel is not None:
                self.write(b"* OK [CLOSED] previous folder closed\r\n")
            self.sel = None
            self.state = AUTH
            raise
        resync: Resync | None = None
        if p.try_(b" "):
            p.open_list()
            while not p.close_list():
                opt = p.atom("a select option").upper()
                if opt == "CONDSTORE":
                    self.condstore = True
                elif opt == "QRESYNC":
                    if not self.qresync:
                        raise BadCommand("QRESYNC is not enabled; send ENABLE QRESYNC first")
                    p.sp()
                    resync = Resync.parse(p)
                else:
                    raise BadCommand(f"unknown SELECT option {opt}")
                p.try_(b" ")
        p.end()
        mb = self.mb
        assert mb is not None
        if self.sel is not None:  # RFC 7162 3.2.11: ends the old folder's responses
            self.write(b"* OK [CLOSED] previous folder closed\r\n")
        self.sel = None
        self.state = AUTH
        info = mb.folder(name)
        uids = mb.uids(info.name)
        self.sel = Selected(info.name, readonly, uids, info.highestmodseq, info.uidvalidity)
        self.sel.claim_recent(mb)
        self.state = SELECTED
        self.changed.clear()
        self.pending.clear()  # the view above is newer than any event queued before
        self.overflow = False
        for k in mb.keywords(info.name):
            self.sel.keywords.setdefault(k.lower(), k)
        self._send_flags(self.sel)
        self.write(f"* {len(uids)} EXISTS\r\n* {self.sel.recent_count()} RECENT\r\n".encode())
        unseen = mb.first_unseen(info.name)
        if unseen:
            self.write(f"* OK [UNSEEN {self.sel.seq_of(unseen)}] first unseen\r\n".encode())
        self.write(f"* OK [UIDVALIDITY {info.uidvalidity}] UIDs valid\r\n".encode())
        self.write(f"* OK [UIDNEXT {info.uidnext}] predicted next UID\r\n".encode())
        self.write(f"* OK [HIGHESTMODSEQ {info.highestmodseq}] highest\r\n".encode())
        if resync is not None and resync.uidvalidity == info.uidvalidity:
            self._resync(self.sel, mb, resync, info.uidnext)
        self.ok(tag, f"[{'READ-ONLY' if readonly else 'READ-WRITE'}] {'EXAMINE' if readonly else 'SELECT'} completed")

    def _resync(self, sel: Selected, mb: UserMailbox, r: Resync, uidnext: int) -> None:
        """SELECT's QRESYNC answer (RFC 7162 3.2.5.1): ``VANISHED (EARLIER)`` for what was expunged
        since the client's MODSEQ, then FETCH (UID FLAGS MODSEQ) for what changed since, both
        limited to the client's known UIDs when it sent them."""
        known = merge(r.known.resolve(0)) if r.known is not None else None
        floor = 0
        if r.match is not None:  # the highest UID whose sequence number is the same for us both:
            seqs, uids = r.match  # nothing at or below it was expunged (3.2.5.2)
            for seq, u in _pairs(seqs, uids):
                if sel.seq_of(u) == seq:
                    floor = max(floor, u)
        self._vanished_earlier(sel, mb, r.modseq, known or [(1, uidnext - 1)], uidnext, floor)
        for u, flags, modseq in mb.changes_since(sel.name, r.modseq):
            seq = sel.seq_of(u)
            if seq and (known is None or in_ranges(known, u)):
                self._flags_line(seq, u, flags, modseq, True)

    def cmd_select(self, tag: str, p: Parser) -> None:
        self._select(tag, p, False)

    def cmd_examine(self, tag: str, p: Parser) -> None:
        self._select(tag, p, True)

    def cmd_create(self, tag: str, p: Parser) -> None:
        p.sp()
        name = self._folder_arg(p).rstrip("/")
        p.end()
        assert self.mb is not None
        self.mb.create_folder(name)
        self.ok(tag, "CREATE completed")

    def cmd_delete(self, tag: str, p: Parser) -> None:
        p.sp()
        name = self._folder_arg(p)
        p.end()
        assert self.mb is not None
        if self.sel and self.sel.name == name:
            raise NoCommand("cannot delete the selected folder", "INUSE")
        self.mb.delete_folder(name)
        self.ok(tag, "DELETE completed")

    def cmd_rename(self, tag: str, p: Parser) -> None:
        p.sp()
        old = self._folder_arg(p)
        p.sp()
        new = self._folder_arg(p)
        p.end()
        assert self.mb is not None
        self.mb.rename_folder(old, new)
        self.ok(tag, "RENAME completed")

    def cmd_subscribe(self, tag: str, p: Parser, on: bool = True) -> None:
        p.sp()
        name = self._folder_arg(p)
        p.end()
        assert self.mb is not None
        self.mb.subscribe(name, on)
        self.ok(tag, ("SUBSCRIBE" if on else "UNSUBSCRIBE") + " completed")

    def cmd_unsubscribe(self, tag: str, p: Parser) -> None:
        self.cmd_subscribe(tag, p, False)

    def _listed(self) -> list[Listed]:
        """Every folder, and every subscribed name without a folder (LSUB and LIST (SUBSCRIBED)
        show those too), INBOX first, then by name (the mailbox's ``list_folders``)."""
        assert self.mb is not None
        return [Listed(f.name, f.special_use, f.subscribed, f.exists) for f in self.mb.list_folders()]

    def cmd_list(self, tag: str, p: Parser, command: str = "LIST") -> None:
        p.sp()
        sel_sub = sel_special = ret_sub = False
        if command == "LIST" and p.peek() == ord("("):
            p.open_list()
            while not p.close_list():
                opt = p.atom("a selection option").upper()
                if opt == "SUBSCRIBED":
                    sel_sub = True
                elif opt == "SPECIAL-USE":
                    sel_special = True
                elif opt not in ("RECURSIVEMATCH", "REMOTE"):
                    raise BadCommand(f"unknown LIST selection option {opt}")
                p.try_(b" ")
            p.sp()
        ref = p.list_mailbox() if p.peek() != ord('"') or p.line[p.pos : p.pos + 2] != b'""' else (p.quoted().decode())
        p.sp()
        patterns: list[str] = []
        if command == "LIST" and p.peek() == ord("("):
            p.open_list()
            while not p.close_list():
                patterns.append(p.list_mailbox())
                p.try_(b" ")
        else:
            patterns.append(p.list_mailbox())
        status: list[str] | None = None
        if command == "LIST" and p.try_(b" RETURN "):
            p.open_list()
            while not p.close_list():
                opt = p.atom("a return option").upper()
                if opt == "SUBSCRIBED":
                    ret_sub = True
                elif opt == "STATUS":  # LIST-STATUS (RFC 5819)
                    p.sp()
                    status = self._status_items(p)
                elif opt not in ("CHILDREN", "SPECIAL-USE"):
                    raise BadCommand(f"unknown LIST return option {opt}")
                p.try_(b" ")
        p.end()
        if patterns == [""]:
            self.write(b"* " + command.encode() + b' (\\Noselect) "/" ""\r\n')
        else:
            for name, line in list_lines(self._listed(), ref, patterns, command, sel_sub, sel_special, ret_sub):
                self.write(line)
                if status:
                    try:
                        self.write(self._status_line(name, status))
                    except MailboxError:  # deleted meanwhile: listed, but no STATUS
                        pass
        self.ok(tag, f"{command} completed")

    def cmd_lsub(self, tag: str, p: Parser) -> None:
        self.cmd_list(tag, p, "LSUB")

    def _status_items(self, p: Parser) -> list[str]:
        p.open_list()
        items = []
        while not p.close_list():
            item = p.atom("a status item").upper()
            if item not in STATUS_ITEMS:
                raise BadCommand(f"unknown STATUS item {item}")
            items.append(item)
            p.try_(b" ")
        return items

    def cmd_status(self, tag: str, p: Parser) -> None:
        p.sp()
        name = self._folder_arg(p)
        p.sp()
        items = self._status_items(p)
        p.end()
        if "HIGHESTMODSEQ" in items:
            self._condstore_on()
        self.write(self._status_line(name, items))
        self._updates(True)
        self.ok(tag, "STATUS completed")

    def _status_line(self, name: str, items: list[str]) -> bytes:
        assert self.mb is not None
        info = self.mb.folder(name)
        recent = 0
        if "RECENT" in items:  # unclaimed ones (recent for whoever selects next), plus our own
            recent = self.mb.count_above(info.name, self.mb.recent_uid(info.name))
            if self.sel is not None and self.sel.name == info.name and not self.sel.readonly:
                recent += self.sel.recent_count()
        values = {
            "MESSAGES": info.exists,
            "RECENT": recent,
            "UIDNEXT": info.uidnext,
            "UIDVALIDITY": info.uidvalidity,
            "UNSEEN": info.unseen,
            "HIGHESTMODSEQ": info.highestmodseq,
            "SIZE": info.size,
            "DELETED-STORAGE": -(-self.mb.deleted_size(info.name) // 1024) if "DELETED-STORAGE" in items else 0,
        }
        out = " ".join(f"{it} {values[it]}" for it in items)
        wire = info.name if info.name == "INBOX" else utf7.encode(info.name)
        return b"* STATUS " + string(wire) + f" ({out})\r\n".encode()

    def cmd_append(self, tag: str, p: Parser) -> None:
        p.sp()
        name = self._folder_arg(p)
        p.sp()
        flags: list[str] = []
        when: float | None = None
        zone: int | None = None
        if p.peek() == ord("("):
            flags = [f for f in p.flag_list() if f != "\\Recent"]
            p.sp()
        if p.peek() == ord('"'):
            when, zone = p.date_time()
            p.sp()
        binary = p.try_(b"~")  # a literal8 (RFC 3516 4.4)
        lit = p.literal()
        p.end()
        assert self.mb is not None
        try:
            self.mb.folder(name)
        except MailboxError as exc:
            raise NoCommand(f"no folder {name}", "TRYCREATE") from exc
        if binary and lit.has_nul():
            # a Maildir message is served as IMAP literals, which cannot carry NUL (RFC 3501 4.3):
            # binary content is refused as RFC 3516 4.4 says a server that does not store it must
            raise NoCommand("messages with NUL bytes are not stored here; encode the part (base64)", "UNKNOWN-CTE")
        if lit.size == 0:
            raise NoCommand("an empty message cannot be appended")
        if quota.exceeded(self.ctx, self.user, lit.size):
            raise NoCommand("the mailbox is over its quota", "OVERQUOTA")
        source = lit.bytes() if lit.in_memory else lit.stream()
        uidvalidity, uid = self.mb.append(name, source, flags, when, zone)
        self._updates(True)
        self.ok(tag, f"[APPENDUID {uidvalidity} {uid}] APPEND completed")
