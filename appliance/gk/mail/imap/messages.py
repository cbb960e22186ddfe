"""Selected state: commands on messages — CLOSE, UNSELECT, EXPUNGE, SEARCH (ESEARCH, SEARCHRES),
FETCH (CONDSTORE/QRESYNC modifiers, BINARY), STORE (UNCHANGEDSINCE), COPY and MOVE, each also as UID."""

from __future__ import annotations

import contextlib
import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import gevent

from gk.mail.imap import fetch as fetchmod
from gk.mail.imap import quota
from gk.mail.imap.connection import AUTH
from gk.mail.imap.parser import Parser
from gk.mail.imap.protocol import BadCommand, NoCommand, runs, seq_text
from gk.mail.imap.response import flag_list, internal_date, pack
from gk.mail.imap.search import SearchParser, esearch_line, picked, resolve_recent, return_options
from gk.mail.imap.view import Selected, SelectedView
from gk.mail.mailbox import MailboxError, UserMailbox, body_structure

# a FETCH over many messages lets the other sessions (SMTP, web, other IMAP clients) run after
# this many: ~1-3 ms of packing on this machine, instead of the whole 1:* at once
YIELD_EVERY = 50
# the FETCH items ``_fetch_flags`` answers alone (a mail client's resync: ``UID FETCH 1:* (UID
# FLAGS)``, with CONDSTORE ``(FLAGS) (CHANGEDSINCE n)``), and its lines made between two yields
FLAG_ITEMS = frozenset({"UID", "FLAGS", "MODSEQ"})
FLAG_LINES_FIRST = 200
FLAG_LINES_EVERY = 1000
# a FETCH of BODYSTRUCTUREs reads its messages in chunks of these sizes, then of 200, each chunk's
# lines sent before the next is read: a never-parsed message's structure is read from its file,
# and the client parses the first lines while the next chunk is read (100 cold messages: ~2.5 ms
# of reading; Dovecot's answer streams the same way)
WIRE_CHUNKS = (25, 75)


class MessageCommands(SelectedView):
    def cmd_close(self, tag: str, p: Parser) -> None:
        p.end()
        sel, mb = self._need_sel()
        if not sel.readonly:
            mb.expunge(sel.name)
        self.sel = None
        self.state = AUTH
        self.ok(tag, "CLOSE completed")

    def cmd_unselect(self, tag: str, p: Parser) -> None:
        p.end()
        self.sel = None
        self.state = AUTH
        self.ok(tag, "UNSELECT completed")

    def cmd_expunge(self, tag: str, p: Parser, uid: bool = False) -> None:
        sel, mb = self._need_sel()
        uids: list[int] | None = None
        if uid:
            p.sp()
            uids = self._target_uids(p.seq_set_or_saved(), True)
        p.end()
        if sel.readonly:
            raise NoCommand("folder is read-only", "READ-ONLY")
        mb.expunge(sel.name, uids)
        self._updates(True)
        self.ok(tag, "EXPUNGE completed")

    def cmd_search(self, tag: str, p: Parser, uid: bool = False) -> None:
        sel, mb = self._need_sel()
        p.sp()
        options: set[str] | None = None
        if p.try_(b"RETURN "):  # ESEARCH (RFC 4731)
            options = return_options(p)
            p.sp()
        sp = SearchParser(p, lambda s: self._seq_ranges(s, strict=False), self._uid_ranges)
        try:
            criteria = sp.program()  # a $ in it is resolved here, before this search saves its own
            p.end()
        except (BadCommand, NoCommand):
            if options is not None and "SAVE" in options:  # RFC 5182 2.1: a failed SEARCH empties $
                sel.saved = []
            raise
        if sp.uses_modseq:
            self._condstore_on()
        self._updates(uid)
        criteria = resolve_recent(criteria, sel.recent)
        found = [u for u in mb.search(sel.name, criteria) if sel.seq_of(u)]
        nums = found if uid else [sel.seq_of(u) for u in found]
        if options is not None:
            if "SAVE" in options:  # SEARCHRES (RFC 5182): $ for the commands that follow
                sel.saved = picked(options, found)
            shown = options - {"SAVE"}
            if shown:
                modseq = None
                if sp.uses_modseq and found:
                    modseq = max(i.modseq for i in mb.infos(sel.name, picked(shown, found)).values())
                self.write(esearch_line(tag, uid, shown, nums, modseq))
            self.ok(tag, ("UID " if uid else "") + "SEARCH completed")
            return
        line = "* SEARCH" + "".join(f" {n}" for n in nums)
        if sp.uses_modseq and found:
            best = max(i.modseq for i in mb.infos(sel.name, found).values())
            line += f" (MODSEQ {best})"
        self.write((line + "\r\n").encode())
        self.ok(tag, ("UID " if uid else "") + "SEARCH completed")

    def cmd_fetch(self, tag: str, p: Parser, uid: bool = False) -> None:
        sel, mb = self._need_sel()
        p.sp()
        seqset = p.seq_set_or_saved()
        p.sp()
        atts = fetchmod.parse_atts(p)
        changed_since: int | None = None
        vanished = False
        if p.try_(b" "):
            p.open_list()
            while not p.close_list():
                mod = p.atom("a FETCH modifier").upper()
                if mod == "CHANGEDSINCE":
                    p.sp()
                    changed_since = p.mod_sequence()
                elif mod == "VANISHED":  # RFC 7162 3.2.6
                    vanished = True
                else:
                    raise BadCommand(f"unknown FETCH modifier {mod}")
                p.try_(b" ")
        p.end()
        if vanished and not (uid and self.qresync and changed_since is not None):
            raise BadCommand("VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC")
        if changed_since is not None or any(a.name == "MODSEQ" for a in atts):
            self._condstore_on()  # once the command is known to be good
        self._updates(uid)
        if vanished:
            assert changed_since is not None
            uidnext = mb.uidnext(sel.name)
            scope = runs(sel.saved) if seqset.saved else seqset.resolve(max(uidnext - 1, 1))
            self._vanished_earlier(sel, mb, changed_since, scope, uidnext)
        names = {a.name for a in atts}
        if uid or self.qresync:
            names.add("UID")
        if changed_since is not None or (self.condstore and "FLAGS" in names):
            names.add("MODSEQ")
        targets = self._target_uids(seqset, uid)
        if names <= FLAG_ITEMS:
            self._fetch_flags(sel, mb, targets, names, changed_since)
            self.ok(tag, ("UID " if uid else "") + "FETCH completed")
            return
        want_seen = not sel.readonly and any((a.is_section or a.name == "BINARY") and not a.peek for a in atts)
        # BODYSTRUCTURE comes in its wire form with the infos (made once, when the message is parsed)
        trees = "BODY" in names or any(a.needs_tree for a in atts)
        wires = "BODYSTRUCTURE" in names
        # what every message of this FETCH needs, worked out once (not per message: ~3 us each)
        plan = _Plan(trees=trees, sections=[a for a in atts if a.is_section or a.is_binary])
        done = 0
        unknown_cte = ""
        # the wire forms made for this FETCH are stored once, after its last chunk
        with mb.keeping_wires() if wires else contextlib.nullcontext():
            for chunk in _chunks(targets, WIRE_CHUNKS if wires and not trees else ()):
                if trees and len(chunk) > 1:
                    mb.fill_structures(sel.name, chunk)  # the lazily indexed ones parsed in one pass
                infos = mb.infos(sel.name, chunk, envelopes="ENVELOPE" in names, bodystructures=wires)
                if want_seen:
                    unseen = [u for u in chunk if u in infos and "\\Seen" not in infos[u].flags]
                    if unseen:
                        caught_up = not self.pending and mb.highestmodseq(sel.name) == sel.modseq
                        seen, _ = mb.set_flags(sel.name, unseen, ["\\Seen"], "add")
                        self._own_flags(sel, seen, caught_up)  # shown below: not again as an update
                        infos = mb.infos(sel.name, chunk, envelopes="ENVELOPE" in names, bodystructures=wires)
                for u in chunk:
                    info = infos.get(u)
                    if info is None:
                        continue  # expunged by another session; reported at the next allowed point
                    if changed_since is not None and info.modseq <= changed_since:
                        continue
                    try:
                        self._fetch_one(sel, mb, u, info, plan, names, want_seen)
                    except fetchmod.UnknownCTE as exc:
                        unknown_cte = str(exc)  # this message is left out; the others are answered
                    done += 1
                    if done % YIELD_EVERY == 0:
                        gevent.sleep(0)  # other greenlets get their turn (a message expunged meanwhile is skipped)
                if len(chunk) < 200 and chunk[-1] != targets[-1]:
                    self.flush()  # the client parses these while the next chunk is read
        if unknown_cte:  # RFC 3516 4.3: the request fails
            raise NoCommand(f"cannot decode the Content-Transfer-Encoding {unknown_cte!r}", "UNKNOWN-CTE")
        self.ok(tag, ("UID " if uid else "") + "FETCH completed")

    def _fetch_flags(
        self, sel: Selected, mb: UserMailbox, targets: list[int], names: set[str], changed_since: int | None
    ) -> None:
        """FETCH of UID / FLAGS / MODSEQ alone: the lines ``_fetch_one`` makes, from one read of
        (uid, flags, modseq) for the whole set (``flag_rows``, answered from memory during a
        folder's first build), each distinct flags text rendered once. The rows are read at one
        point in time; a change after it reaches the session as an update, as with any FETCH."""
        rows = mb.flag_rows(sel.name, targets)
        if changed_since is not None:
            rows = [r for r in rows if r[2] > changed_since]
        with_flags = "FLAGS" in names
        if with_flags:  # every keyword shown is announced before the first line
            self._announce_keywords(f for text in {r[1] for r in rows} for f in text.split())
        picks = [0] + [i for i, n in ((1, "UID"), (2, "FLAGS"), (3, "MODSEQ")) if n in names]
        fmt = (
            b"* %d FETCH (" + b" ".join([b"", b"UID %d", b"FLAGS %s", b"MODSEQ (%d)"][i] for i in picks[1:]) + b")\r\n"
        )
        pick = itemgetter(*picks)  # two indexes at least: a tuple
        if not rows:
            return
        uids, texts, modseqs = zip(*rows, strict=True)
        view = sel.uids
        seqs: Sequence[int]
        if len(uids) == len(view) and uids[0] == view[0] and uids[-1] == view[-1]:
            seqs = range(1, len(view) + 1)  # the whole view (rows ⊆ targets ⊆ view, ascending)
        else:
            seqs = [bisect_left(view, u) + 1 for u in uids]
        flags: Sequence[bytes] = ()
        if with_flags:
            distinct = set(texts)
            shown = {t: flag_list(t.split()) for t in distinct}
            recent = bytearray(len(uids))  # 1 where this session has \Recent
            for lo, hi in sel.recent:
                first, last = bisect_left(uids, lo), bisect_right(uids, hi)
                recent[first:last] = b"\x01" * (last - first)
            if any(recent):
                marked = {t: flag_list((*t.split(), "\\Recent")) for t in distinct}
                flags = [marked[t] if r else shown[t] for t, r in zip(texts, recent, strict=True)]
            else:
                flags = list(map(shown.__getitem__, texts))
        else:
            flags = [b""] * len(uids)
        # formatted in C (zip, itemgetter, bytes %): no Python frame per message. A small first
        # chunk goes out at once, so the client parses it while the rest is made
        i, n = 0, FLAG_LINES_FIRST
        while i < len(uids):
            j = i + n
            self.write(
                b"".join(map(fmt.__mod__, map(pick, zip(seqs[i:j], uids[i:j], flags[i:j], modseqs[i:j], strict=True))))
            )
            if i == 0:
                self.flush()
            i, n = j, FLAG_LINES_EVERY
            if i < len(uids):
                gevent.sleep(0)  # other greenlets get their turn

    def _fetch_one(
        self, sel: Selected, mb: UserMailbox, u: int, info: Any, plan: _Plan, names: set[str], seen: bool
    ) -> None:
        items: list[bytes] = []
        if "UID" in names:
            items.append(b"UID %d" % u)
        if "FLAGS" in names or seen:
            flags = self._with_recent(u, info.flags)
            shown = plan.flag_lists.get(flags)
            if shown is None:  # first seen in this FETCH: a keyword in it is announced before it shows
                self._announce_keywords(info.flags)
                shown = plan.flag_lists[flags] = flag_list(flags)
            items.append(b"FLAGS " + shown)
        if "MODSEQ" in names:
            items.append(b"MODSEQ (%d)" % info.modseq)
        if "INTERNALDATE" in names:
            items.append(b"INTERNALDATE " + internal_date(info.internaldate, info.tzoffset))
        if "RFC822.SIZE" in names:
            items.append(b"RFC822.SIZE %d" % info.size)
        if "ENVELOPE" in names:
            # kept in the index in its wire form (a message under one UID never changes, RFC 3501
            # 2.3.1.1); none only for a message whose file vanished before it was read
            items.append(b"ENVELOPE " + (info.envelope_wire or pack(info.envelope)))
        top = None
        # BODY[] / RFC822 is the file as it is, BODY[HEADER…] its top header block: no MIME tree
        # needed (for a message indexed lazily it would mean a whole parse first, ~1 ms, to learn
        # the size the index has or where the header block ends)
        wired = info.bodystructure_wire
        if plan.trees or ("BODYSTRUCTURE" in names and wired is None):
            try:
                top = mb.structure(sel.name, u)
            except MailboxError:  # expunged by another session since the infos were read
                return
        if "BODYSTRUCTURE" in names:
            if wired is None:  # a message whose file vanished before its wire form was made
                assert top is not None
                wired = pack(body_structure(top, True))
            items.append(b"BODYSTRUCTURE " + wired)
        if "BODY" in names:
            assert top is not None
            items.append(b"BODY " + pack(body_structure(top, False)))
        sections = plan.sections
        for att in sections:
            if att.is_binary:
                fetchmod.binary_check(top, att)  # NO [UNKNOWN-CTE] before a byte of this message is sent
        fh = None
        if sections:
            try:  # open before writing anything: a file removed behind our back skips the message
                fh = mb.open_message(sel.name, u, info.file)
            except MailboxError:
                return
        self.write(b"* %d FETCH (" % sel.seq_of(u) + b" ".join(items))
        if fh is not None:
            with fh:
                for i, att in enumerate(sections):
                    sep = b" " if items or i else b""
                    if att.is_binary:
                        data, start, length = fetchmod.binary_data(fh, top, att, info.size)
                        if att.name == "BINARY.SIZE":
                            self.write(sep + att.label.encode() + b" %d" % (length if data is None else len(data)))
                            continue
                        if data is not None and b"\0" in data:  # RFC 3516 4.3: NUL only in a literal8
                            self.write(sep + att.label.encode() + b" ~{%d}\r\n" % len(data) + data)
                            continue
                    else:
                        data, start, length = fetchmod.section_data(fh, top, att, info.size)
                    if data is not None:
                        self.write(sep + att.label.encode() + b" {%d}\r\n" % len(data) + data)
                    else:
                        self.write(sep + att.label.encode() + b" {%d}\r\n" % length)
                        self.stream(fh, start, length)
        self.write(b")\r\n")

    def cmd_store(self, tag: str, p: Parser, uid: bool = False) -> None:
        sel, mb = self._need_sel()
        p.sp()
        seqset = p.seq_set_or_saved()
        p.sp()
        unchanged: int | None = None
        if p.peek() == ord("("):
            p.open_list()
            mod = p.atom("a STORE modifier").upper()
            if mod != "UNCHANGEDSINCE":
                raise BadCommand(f"unknown STORE modifier {mod}")
            p.sp()
            unchanged = p.mod_sequence()
            if not p.close_list():
                raise BadCommand("expected ')'")
            p.sp()
        item = p.atom("+FLAGS, -FLAGS or FLAGS").upper() if p.peek() not in (ord("+"), ord("-")) else None
        if item is None:
            sign = chr(p.line[p.pos])
            p.pos += 1
            item = sign + p.atom("FLAGS").upper()
        if item.lstrip("+-") not in ("FLAGS", "FLAGS.SILENT"):
            raise BadCommand(f"unknown STORE item {item}")
        p.sp()
        if p.peek() == ord("("):
            flags = p.flag_list()
        else:
            flags = [p.flag()]
            while p.try_(b" "):
                flags.append(p.flag())
        p.end()
        if sel.readonly:
            raise NoCommand("folder is read-only", "READ-ONLY")
        if any(f in ("\\Recent", "\\*") for f in flags):
            raise BadCommand("\\Recent and \\* cannot be stored")
        if unchanged is not None:
            self._condstore_on()
        mode = {"+": "add", "-": "remove"}.get(item[0], "replace")
        silent = item.endswith(".SILENT")
        self._updates(uid)
        caught_up = not self.pending and mb.highestmodseq(sel.name) == sel.modseq
        targets = self._target_uids(seqset, uid)
        changed, failed = mb.set_flags(sel.name, targets, flags, mode, unchanged)
        self._own_flags(sel, changed, caught_up)
        if changed and mode != "remove":  # announced even when .SILENT, before any FETCH
            self._announce_keywords(flags)
        report = {c[0]: c for c in changed}
        if not silent or self.condstore:
            infos = mb.infos(sel.name, [t for t in targets if t not in failed], envelopes=False) if not silent else {}
            for t in targets:
                if t in failed:
                    continue
                if t in report:
                    _, fl, ms = report[t]
                elif not silent and t in infos:
                    fl, ms = infos[t].flags, infos[t].modseq
                else:
                    continue
                self._flags_line(sel.seq_of(t), t, fl, ms, uid)
        if failed:
            nums = failed if uid else [sel.seq_of(u) for u in failed]
            self.ok(tag, f"[MODIFIED {seq_text(sorted(nums))}] conditional STORE failed for some")
        else:
            self.ok(tag, ("UID " if uid else "") + "STORE completed")

    def _copy(self, tag: str, p: Parser, uid: bool, move: bool) -> None:
        sel, mb = self._need_sel()
        p.sp()
        seqset = p.seq_set_or_saved()
        p.sp()
        dest = self._folder_arg(p)
        p.end()
        if move and sel.readonly:
            raise NoCommand("folder is read-only", "READ-ONLY")
        try:
            mb.folder(dest)
        except MailboxError as exc:
            raise NoCommand(f"no folder {dest}", "TRYCREATE") from exc
        if not uid:
            self._seq_ranges(seqset)  # validates the numbers
        targets = self._target_uids(seqset, uid)
        if not move:
            quota.check_copy(self, sel.name, targets)  # NO [OVERQUOTA] when the copies cannot fit
        op = mb.move if move else mb.copy
        uidvalidity, pairs = op(sel.name, targets, dest)
        code = ""
        if pairs:
            code = f"[COPYUID {uidvalidity} {seq_text([a for a, _ in pairs])} {seq_text([b for _, b in pairs])}] "
        if move:
            if code:
                self.write(f"* OK {code}moved\r\n".encode())
            self._updates(True)
            self.ok(tag, "MOVE completed")
        else:
            self._updates(uid)
            self.ok(tag, f"{code}COPY completed")

    def cmd_copy(self, tag: str, p: Parser, uid: bool = False) -> None:
        self._copy(tag, p, uid, False)

    def cmd_move(self, tag: str, p: Parser, uid: bool = False) -> None:
        self._copy(tag, p, uid, True)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What each message of one FETCH needs: its MIME tree (BODY, or a part of the tree), and
    the sections (BODY[…], BINARY[…]) to send, in the order asked; each distinct flag list's
    wire form, made once."""

    trees: bool
    sections: list[Any]
    flag_lists: dict[tuple[str, ...], bytes] = field(default_factory=dict)  # flags -> their wire form


def _chunks(targets: list[int], first: tuple[int, ...]) -> Iterator[list[int]]:
    """``targets`` in chunks of the sizes ``first``, then of 200."""
    start = 0
    for n in itertools.chain(first, itertools.repeat(200)):
        if start >= len(targets):
            return
        yield targets[start : start + n]
        start += n
