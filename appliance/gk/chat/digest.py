"""Mail digests of what people missed in the chat: a mention or a direct message still unread
``[chat] digest_after`` seconds after it was posted is mailed, with the others of that round,
as ONE message into the user's own INBOX through the mailbox face (``MaildirWriter.deliver``:
durable, announced to IMAP sessions like any delivery; nothing goes out over SMTP, no push
service outside the box). In the user's language (their account setting), opt-out per user
(``set_wanted``; the account page's switch).

What "unread" means: the user's read marker on that conversation (IRCv3 ``draft/read-marker``
or the web chat) is older than the message. A mention: the user's account name as a word of
the text (``alice``, ``@alice``, ``alice:``) in a room they are a member of.

Never twice: each round examines the messages after a durable mark (the last message seq
examined) up to the cutoff, records ``(account, msgid)`` in ``digest_sent`` and moves the mark
in ONE transaction, and only then writes the mail. A crash between the two loses that round's
digest rather than sending it again (a digest is a reminder; a duplicate is noise). On a box
whose chat already has history, the first round starts after the newest message: old
conversations are never mailed.

Cost: one greenlet waking every ``interval`` (at most a minute), one indexed scan of the new
messages per round (bounded by ``BATCH``), the read markers of the few recipients, one small
write per round that mails anything; nothing held in memory between rounds. The same round
enrolls the box's new users in the default rooms (``ChatService.enroll``).

State lives in ``chat.sqlite3`` beside the chat (tables ``digest_state``, ``digest_sent``,
``digest_prefs``, created here with ``IF NOT EXISTS``), written through the store's group writer.
"""

from __future__ import annotations

import email.utils
import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING

import gevent

from gk.chat.store import ChatStore, Message, now_ms

if TYPE_CHECKING:
    from gk.accounts import User
    from gk.chat.core import ChatService
    from gk.context import AppContext

log = logging.getLogger("gk.chat.digest")

BATCH = 2000  # messages examined per round at most (the next round takes the rest)
MAX_LISTED = 30  # messages quoted in one digest (the rest are counted)
MAX_QUOTE = 400  # characters of one quoted message
WORD_RE = re.compile(r"[\w.-]+")

TABLES = (
    "CREATE TABLE IF NOT EXISTS digest_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS digest_sent (account TEXT NOT NULL, msgid TEXT NOT NULL,"
    " time INTEGER NOT NULL, PRIMARY KEY (account, msgid)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS digest_prefs (account TEXT PRIMARY KEY, wanted INTEGER NOT NULL) WITHOUT ROWID",
)


def ensure_tables(store: ChatStore) -> None:
    """Create the digest's tables, and its mark at the newest message (a first start)."""

    def fn(c: sqlite3.Connection) -> None:
        for sql in TABLES:
            c.execute(sql)
        last = c.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()[0]
        c.execute("INSERT OR IGNORE INTO digest_state(key, value) VALUES ('mark', ?)", (int(last),))

    store.writer.submit(fn)


def wanted(store: ChatStore, account: str) -> bool:
    """Whether ``account`` gets digests (the default: yes)."""
    try:
        row = store.reader.one("SELECT wanted FROM digest_prefs WHERE account = ?", (account,))
    except sqlite3.OperationalError:  # the tables are made when the chat starts
        return True
    return row is None or bool(row[0])


def set_wanted(store: ChatStore, account: str, on: bool) -> None:
    ensure_tables(store)
    store.writer.submit(
        lambda c: c.execute(
            "INSERT INTO digest_prefs(account, wanted) VALUES (?, ?)"
            " ON CONFLICT(account) DO UPDATE SET wanted = excluded.wanted",
            (account, int(on)),
        )
    )


def mark(store: ChatStore) -> int:
    row = store.reader.one("SELECT value FROM digest_state WHERE key = 'mark'")
    return int(row[0]) if row else 0


def mentioned(text: str, members: set[str]) -> set[str]:
    """Members named in ``text`` as a word (``alice``, ``@alice``, ``alice:``, ``alice.``)."""
    words = {w.strip(".-").lower() for w in WORD_RE.findall(text)}
    return words & members


def recipients(chat: ChatService, m: Message) -> set[str]:
    """Who should hear about ``m`` when they miss it: the other side of a direct message, the
    members a room message mentions; never the sender."""
    if m.redacted or m.kind != "PRIVMSG":
        return set()
    if m.room is None:
        people = set(m.target.split("\n"))
    else:
        people = mentioned(m.text, chat.members(m.room))
    people.discard(m.sender)
    return people


@dataclass(frozen=True)
class Round:
    """What one round found: per account, its unread messages, and the new mark."""

    pending: dict[str, list[Message]]
    mark: int


def collect(chat: ChatService, cutoff: int, unwanted: Callable[[str], bool]) -> Round:
    """The messages posted after the mark and before ``cutoff`` (ms) that someone has not read."""
    store = chat.store
    start = mark(store)
    # stop at the first message too recent: the next round takes it (seq order is time order)
    examined: list[Message] = []
    for m in store.messages_after(None, start, BATCH):
        if m.time > cutoff:
            break
        examined.append(m)
    pending: dict[str, list[Message]] = {}
    markers: dict[tuple[str, str], int | None] = {}
    for m in examined:
        for account in recipients(chat, m):
            if unwanted(account):
                continue
            key = (account, m.target)
            if key not in markers:
                markers[key] = store.read_marker(account, m.target)
            seen = markers[key]
            if seen is not None and seen >= m.time:
                continue
            pending.setdefault(account, []).append(m)
    return Round(pending, examined[-1].seq if examined else start)


def commit(store: ChatStore, rnd: Round) -> dict[str, list[Message]]:
    """Record what will be mailed and move the mark, in one transaction; returns, per account,
    the messages never mailed before (those recorded now)."""

    def fn(c: sqlite3.Connection) -> dict[str, list[Message]]:
        fresh: dict[str, list[Message]] = {}
        t = now_ms()
        for account, msgs in rnd.pending.items():
            for m in msgs:
                cur = c.execute(
                    "INSERT OR IGNORE INTO digest_sent(account, msgid, time) VALUES (?, ?, ?)", (account, m.msgid, t)
                )
                if cur.rowcount:
                    fresh.setdefault(account, []).append(m)
        c.execute("UPDATE digest_state SET value = max(value, ?) WHERE key = 'mark'", (rnd.mark,))
        return fresh

    result: dict[str, list[Message]] = store.writer.submit(fn)
    return result


# -- the mail ---------------------------------------------------------------------------------


def _tr(lang: str) -> Callable[..., str]:
    from gk.locale import catalog

    cat = catalog(lang if lang in ("en", "fr") else "en")

    def gettext(text: str, **kw: object) -> str:
        out = cat.gettext(text)
        return out.format(**kw) if kw else out

    return gettext


def render(
    user: User,
    msgs: list[Message],
    *,
    host: str,
    base_url: str,
    when: Callable[[int], str],
    lang: str,
) -> bytes:
    """The digest for ``user`` (a text/plain mail, RFC 5322, UTF-8), in ``lang``."""
    _ = _tr(lang)
    account = user.local
    from email.policy import SMTP  # on first use: email.policy costs an idle box ~0.5 MB

    msg = EmailMessage(policy=SMTP)
    n = len(msgs)
    if n == 1:
        subject = _("[Chat] 1 unread message")
    else:
        subject = _("[Chat] {n} unread messages", n=n)
    msg["Subject"] = subject
    msg["From"] = email.utils.formataddr((_("GK chat"), f"chat@{host}"))
    msg["To"] = user.address
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid("chat-digest", domain=host)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: nothing should answer it
    lines = [
        _("Hello {name},", name=user.display_name or account),
        "",
        _("These messages for you in the chat are still unread:")
        if n > 1
        else _("This message for you in the chat is still unread:"),
        "",
    ]
    for m in msgs[:MAX_LISTED]:
        text = m.text if len(m.text) <= MAX_QUOTE else m.text[:MAX_QUOTE] + "…"
        if m.text.startswith("\x01ACTION ") and m.text.endswith("\x01"):
            text = f"* {m.sender} {m.text[8:-1]}"
        if m.room is None:
            head = _("{sender}, in a direct message, {time}:", sender=m.sender, time=when(m.time))
        else:
            head = _("{sender} in #{room}, {time}:", sender=m.sender, room=m.room, time=when(m.time))
        lines.append(head)
        lines.extend("    " + ln for ln in (text.splitlines() or [""]))
        lines.append("")
    if n > MAX_LISTED:
        lines += [_("…and {n} more.", n=n - MAX_LISTED), ""]
    lines += [
        _("Open the chat: {url}", url=f"{base_url}/chat"),
        _("Stop these mails on your account page: {url}", url=f"{base_url}/account"),
    ]
    msg.set_content("\n".join(lines) + "\n", charset="utf-8")
    msg["Content-Language"] = lang  # (set_content clears the Content-* headers)
    return msg.as_bytes()


# -- the periodic job ---------------------------------------------------------------------------


class DigestJob:
    """The chat feature's periodic greenlet: enroll new users, mail the digests that are due."""

    def __init__(self, ctx: AppContext, chat: ChatService, after: float):
        self.ctx = ctx
        self.chat = chat
        self.after = after  # seconds; 0: enrollment only, no digests
        self.interval = min(60.0, max(1.0, after / 2)) if after else 60.0
        self.greenlet: gevent.Greenlet[[], None] | None = None
        self.sent = 0  # digests delivered (tests and the log read it)

    def start(self) -> None:
        ensure_tables(self.chat.store)
        self.greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=True, timeout=5)
            self.greenlet = None

    def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("chat digest round failed")
            gevent.sleep(self.interval)

    def _users(self) -> dict[str, User]:
        users: dict[str, User] = {}
        for u in self.ctx.accounts.list_users():
            users.setdefault(u.local.lower(), u)
        return users

    def tick(self) -> int:
        users = self._users()
        self.chat.enroll(sorted(users))
        if not self.after:
            return 0
        store = self.chat.store
        rnd = collect(
            self.chat,
            now_ms() - int(self.after * 1000),
            lambda a: a not in users or not wanted(store, a),
        )
        if rnd.mark == mark(store):
            return 0
        fresh = commit(store, rnd)
        return sum(self._deliver(users[a], msgs) for a, msgs in fresh.items())

    def _deliver(self, user: User, msgs: list[Message]) -> int:
        from gk import localtime, settings
        from gk.mail.mailbox import NewCopy, RawMessage, get_writer

        host = settings.of(self.ctx.data_dir).hostname() or self.ctx.hostname
        http = self.ctx.config.http
        if http.https_port:
            base = f"https://{host}" + ("" if http.https_port == 443 else f":{http.https_port}")
        else:
            base = f"http://{host}" + ("" if http.port == 80 else f":{http.port}")
        data = render(
            user,
            msgs,
            host=host,
            base_url=base,
            when=lambda ms: localtime.format_ts(self.ctx.data_dir, ms / 1000, "%Y-%m-%d %H:%M"),
            lang=user.language or "en",
        )
        (result,) = get_writer(self.ctx).deliver([NewCopy(user.address, "INBOX", RawMessage(data=data))])
        if isinstance(result, BaseException):
            log.error("chat digest for %s not delivered: %s", user.address, result)
            return 0
        log.info("chat digest of %d message(s) delivered to %s", len(msgs), user.address)
        self.sent += 1
        return 1
