"""The web chat: rooms and direct messages in the web UI, over the chat core (``ChatService``).

Pages and fragments are rendered here (HTMX, no JS build); the live timeline is a WebSocket
(``gk.web.chatws``) that sends the same fragments as out-of-band swaps. Every write is a form
POST under the web UI's CSRF policy (send, edit, delete, react, join, leave, invite, upload);
the socket only carries the client's "resume after this message" and typing notices.

Who sees what is the core's rule, applied by going through it for every read: a room's page,
its history and its live events are served only to its members (``ChatService.resolve``), a
direct conversation only to its two people. A private room is not there for anyone else: every
answer about it to a non-member is the one a missing room gets, 404 and the same text
(``status_of``; joining it is the one refusal that cannot look like a missing room, which a
join would create). The chat account of a web user is the local part
of their address, as on IRC (``gk.chat.irc.service.IRCServer.login``).
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from dataclasses import dataclass, field

import bottle
from markupsafe import Markup, escape

from gk import localtime
from gk.accounts import User
from gk.chat.core import ChatError, ChatService
from gk.chat.files import FileStore, SharedFile
from gk.chat.store import Message, dm_target, now_ms
from gk.locale import N_
from gk.web import forms
from gk.web.app import Web

PAGE = 50  # messages per page of history
REACTIONS = ("👍", "❤️", "😂", "🎉", "😮", "😢")
URL_RE = re.compile(r"https?://[^\s<>\"']+")

# the core's refusals, as the web chat says them (ChatError.code → catalog text)
ERRORS = {
    "no_such_room": N_("There is no such room."),
    "no_such_user": N_("There is no such user."),
    "not_member": N_("You are not a member of this room."),
    "invite_only": N_("This room is private: ask a member to invite you."),
    "bad_name": N_("Room names are 1 to 50 letters a-z, digits, '_', '.' or '-'."),
    "no_such_message": N_("That message does not exist any more."),
    "not_allowed": N_("Only the sender may change a message."),
    "too_long": N_("The message is too long."),
    "bad_params": N_("Bad request"),
}


# -- helpers ------------------------------------------------------------------------------------


def chat_of(web: Web) -> ChatService:
    chat = web.ctx.services.maybe(ChatService)
    if chat is None:
        raise bottle.HTTPError(404, N_("The chat is turned off on this server."))
    return chat


def files_of(web: Web) -> FileStore | None:
    return web.ctx.services.maybe(FileStore)


SHARED_NAME = N_(
    "Your chat name is shared by several users of this server: ask the administrator to rename one of them."
)


def chat_name(web: Web, user: User) -> str | None:
    """The chat account of ``user`` (the local part of the address), or None when another user
    has the same local part: both would be one chat identity, reading each other's direct
    messages (the IRC server refuses such logins too)."""
    local = user.local
    if sum(u.local == local for u in web.ctx.accounts.list_users()) > 1:
        return None
    return local


def account_of(web: Web, user: User) -> str:
    name = chat_name(web, user)
    if name is None:
        raise bottle.HTTPError(403, SHARED_NAME)
    return name


def me(web: Web) -> str:
    """The signed-in user's chat account (403 when the name is shared)."""
    return account_of(web, web.signed_in())


_connected: set[str] = set()  # accounts whose first use was recorded by this process


def connected(chat: ChatService, account: str) -> None:
    """The account's first use of the chat joins it to the default rooms (``ChatService.connected``);
    recorded once per process, not at every page view (each is a write)."""
    if account not in _connected:
        chat.connected(account)
        _connected.add(account)


def status_of(exc: ChatError, other: int = 403) -> int:
    """The HTTP status of a refusal: 404 for a room that is missing or not the user's to see
    (the core words a hidden private room as a missing one), ``other`` for the rest."""
    return 404 if exc.code == "no_such_room" else other


def refusal(web: Web, exc: ChatError) -> str:
    return refusal_of(web, exc.code)


def refusal_of(web: Web, code: str) -> str:
    text = ERRORS.get(code, N_("Bad request"))
    return web.gettext(text)


def to_of(target: str, account: str) -> str:
    """What a stored target is called by ``account``: '#room', or the other person's name."""
    if target.startswith("#"):
        return target
    a, _, b = target.partition("\n")
    return b if a == account else a


def url_of(to: str) -> str:
    return "/chat/r/" + urllib.parse.quote(to[1:]) if to.startswith("#") else "/chat/dm/" + urllib.parse.quote(to)


@dataclass
class Conv:
    """One entry of the room list."""

    to: str  # '#room' or the other person's account
    target: str  # the stored target
    url: str
    unread: int = 0
    private: bool = False

    @property
    def title(self) -> str:
        return self.to

    @property
    def dom_id(self) -> str:
        return "c-" + re.sub(r"[^A-Za-z0-9_-]", "_", self.target.replace("\n", "--"))


def conversations(chat: ChatService, account: str) -> tuple[list[Conv], list[Conv]]:
    """(rooms, direct conversations) of ``account`` with their unread counts."""
    unread = chat.unread_counts(account)
    rooms = [
        Conv("#" + r.name, "#" + r.name.lower(), url_of("#" + r.name), unread.get("#" + r.name.lower(), 0), r.private)
        for r in chat.rooms_of(account)
    ]
    dms = []
    for t in chat.store.dm_targets_of(account):
        other = to_of(t, account)
        dms.append(Conv(other, t, url_of(other), unread.get(t, 0)))
    return sorted(rooms, key=lambda c: c.to), sorted(dms, key=lambda c: c.to)


@dataclass
class MessageView:
    """A message as the timeline shows it to one viewer."""

    m: Message
    html: Markup
    when: str
    stamp: str
    mine: bool
    mention: bool
    reactions: list[tuple[str, int, bool]] = field(default_factory=list)  # (emoji, count, mine)
    reply: Message | None = None
    files: list[SharedFile] = field(default_factory=list)
    to: str = ""


IRC_CONTROL_RE = re.compile(r"\x03\d{0,2}(?:,\d{1,2})?|[\x00-\x09\x0b-\x1f\x7f]")  # IRC colours, bold…


def render_text(text: str, files: FileStore | None) -> Markup:
    """Escaped text with its links made clickable (http/https only) and its line breaks kept;
    IRC formatting codes dropped, a CTCP ACTION (``/me waves``) shown as the action."""
    if text.startswith("\x01ACTION "):
        text = "* " + text[8:].rstrip("\x01")
    text = IRC_CONTROL_RE.sub("", text)
    out: list[str] = []
    pos = 0
    for m in URL_RE.finditer(text):
        out.append(str(escape(text[pos : m.start()])))
        url = m.group(0).rstrip(".,;:!?)")
        out.append(f'<a href="{escape(url)}" rel="noopener noreferrer" target="_blank">{escape(url)}</a>')
        pos = m.start() + len(url)
    out.append(str(escape(text[pos:])))
    return Markup("".join(out).replace("\n", "<br>"))


def mentions(text: str, account: str) -> bool:
    return re.search(rf"(?<![\w@.-])@?{re.escape(account)}\b", text, re.IGNORECASE) is not None


def views(web: Web, chat: ChatService, account: str, msgs: list[Message]) -> list[MessageView]:
    files = files_of(web)
    zone = localtime.zone(web.data_dir)
    out = []
    for m in msgs:
        when = dt.datetime.fromtimestamp(m.time / 1000, zone)
        counts: dict[str, list[str]] = {}
        for who, r in chat.store.reactions(m.msgid):
            counts.setdefault(r, []).append(who)
        reply = chat.store.message(m.reply_to) if m.reply_to else None
        if reply is not None and (reply.target != m.target or reply.redacted):
            reply = None
        out.append(
            MessageView(
                m,
                render_text(m.text, files),
                when.strftime("%H:%M"),
                when.isoformat(timespec="seconds"),
                m.sender == account,
                m.sender != account and mentions(m.text, account),
                [(r, len(who), account in who) for r, who in counts.items()],
                reply,
                list(files.files_in(m.text)) if files is not None and "/chat/files/" in m.text else [],
                to_of(m.target, account),
            )
        )
    return out


def refuse(status: int) -> None:
    """A refused form, answered with the send box and its error. htmx swaps only 2xx answers,
    so a request from htmx gets 200 (the error shows in the box); other clients get ``status``."""
    bottle.response.status = 200 if bottle.request.get_header("HX-Request") == "true" else status


def back_unless_htmx(to: str) -> None:
    """A form the browser sent itself (no script, or pressed before htmx had bound it) is
    answered with the conversation, not with a fragment: a 303 back to it."""
    if bottle.request.get_header("HX-Request") != "true":
        raise bottle.redirect(url_of(to) if to else "/chat", 303)


def _query(name: str) -> str:
    return (bottle.request.query.getunicode(name, default="") or "").strip()


def _conv(web: Web, chat: ChatService, account: str, to: str) -> str:
    """The stored target of ``to`` for ``account``; 404 when it may not read it."""
    try:
        return chat.resolve(account, to)
    except ChatError as exc:
        raise bottle.HTTPError(404, ERRORS.get(exc.code, N_("Not found"))) from None


# -- pages --------------------------------------------------------------------------------------


def index(web: Web) -> None:
    chat = chat_of(web)
    account = me(web)
    connected(chat, account)
    rooms = chat.rooms_of(account)
    first = next((r.name for r in rooms if r.name in chat.default_rooms), rooms[0].name if rooms else "")
    raise bottle.redirect(url_of("#" + first) if first else "/chat/rooms")


def room_page(web: Web, name: str) -> str:
    chat = chat_of(web)
    account = me(web)
    connected(chat, account)
    room = chat.visible_room(name, account)
    if room is None:
        raise bottle.HTTPError(404, N_("There is no such room."))
    if not chat.is_member(name, account):
        return _page(web, chat, account, "#" + room.name, joinable=True)
    return _page(web, chat, account, "#" + room.name)


def dm_page(web: Web, name: str) -> str:
    chat = chat_of(web)
    account = me(web)
    name = name.lower()
    if name == account or not chat.user_exists(name):
        raise bottle.HTTPError(404, N_("There is no such user."))
    return _page(web, chat, account, name)


def _page(web: Web, chat: ChatService, account: str, to: str, joinable: bool = False) -> str:
    since = now_ms()  # before the read: a change after it is redrawn by the socket's resume
    rooms, dms = conversations(chat, account)
    msgs: list[Message] = []
    more = False
    target = ""
    around = ""
    if not joinable:
        target = _conv(web, chat, account, to)
        around = _query("around")
        if around:  # a search result in its context: no live tail (a link back to the latest)
            try:
                msgs = chat.history(account, to, "around", PAGE, around)
            except ChatError:
                msgs = []
            if not msgs:
                around = ""
        if not msgs:
            msgs = chat.history(account, to, "latest", PAGE)
        more = len(msgs) >= PAGE // 2 and bool(msgs) and bool(chat.history(account, to, "before", 1, msgs[0].msgid))
        if msgs and not around:
            chat.mark_read(account, to, msgs[-1].time)
            for c in rooms + dms:
                if c.target == target:
                    c.unread = 0
    room = chat.room(to[1:]) if to.startswith("#") else None
    return web.render(
        "chat/room.html",
        rooms=rooms,
        dms=dms,
        to=to,
        target=target,
        room=room,
        joinable=joinable,
        around=around,
        url=url_of(to),
        members=sorted(chat.members(to[1:])) if room else [],
        messages=views(web, chat, account, msgs),
        more=more,
        last=msgs[-1].msgid if msgs else "",
        since=since,
        account=account,
        reactions=REACTIONS,
        reply=None,
        error="",
        text="",
        users=_other_users(web, account),
        uploads=files_of(web) is not None,
        max_upload_mb=web.ctx.config.chat.max_upload_bytes // (1024 * 1024),
    )


def _other_users(web: Web, account: str) -> list[str]:
    return sorted({u.local for u in web.ctx.accounts.list_users()} - {account})


def rooms_page(web: Web) -> str:
    """Rooms to join (public ones), create a room, start a direct conversation."""
    chat = chat_of(web)
    account = me(web)
    connected(chat, account)
    rooms, dms = conversations(chat, account)
    public = [r for r in chat.rooms(account) if not chat.is_member(r.name, account)]
    return web.render(
        "chat/rooms.html",
        rooms=rooms,
        dms=dms,
        public=public,
        to="",
        users=_other_users(web, account),
        error=_query("error"),
    )


def search_page(web: Web) -> str:
    chat = chat_of(web)
    account = me(web)
    q = _query("q")[:200]
    rooms, dms = conversations(chat, account)
    found = views(web, chat, account, chat.search(account, q, 50)) if q else []
    return web.render("chat/search.html", rooms=rooms, dms=dms, to="", q=q, found=found, url_of=url_of)


# -- fragments ----------------------------------------------------------------------------------


def older(web: Web) -> str:
    chat = chat_of(web)
    account = me(web)
    to, before = _query("to"), _query("before")
    _conv(web, chat, account, to)
    try:
        msgs = chat.history(account, to, "before", PAGE, before)
    except ChatError:
        msgs = []
    return web.render(
        "chat/older.html",
        messages=views(web, chat, account, msgs),
        more=len(msgs) >= PAGE,
        to=to,
        account=account,
        reactions=REACTIONS,
    )


def compose(web: Web) -> str:
    """The send box, replying to ``reply`` when given (the Reply button of a message)."""
    chat = chat_of(web)
    account = me(web)
    to = _query("to")
    _conv(web, chat, account, to)
    reply = _reply_of(chat, account, to, _query("reply"))
    return _compose(web, to, reply)


def _reply_of(chat: ChatService, account: str, to: str, msgid: str) -> Message | None:
    if not msgid:
        return None
    m = chat.store.message(msgid)
    if m is None or m.redacted or m.target != chat.resolve(account, to):
        return None
    return m


def _compose(web: Web, to: str, reply: Message | None = None, error: str = "", text: str = "") -> str:
    return web.render(
        "chat/compose.html",
        to=to,
        reply=reply,
        error=error,
        text=text,
        uploads=files_of(web) is not None,
        max_upload_mb=web.ctx.config.chat.max_upload_bytes // (1024 * 1024),
    )


def send(web: Web) -> str:
    chat = chat_of(web)
    account = me(web)
    to = forms.text("to")
    text = forms.raw("text").strip("\r\n")
    reply_to = forms.text("reply_to")
    try:
        reply = _reply_of(chat, account, to, reply_to)
        if text.strip():
            chat.post(account, to, text, reply_to=reply.msgid if reply else None)
    except ChatError as exc:
        refuse(422 if exc.code == "too_long" else status_of(exc))
        return _compose(web, to, None, refusal(web, exc), text)
    back_unless_htmx(to)
    return _compose(web, to)


def _own_view(web: Web, chat: ChatService, account: str, msgid: str) -> tuple[MessageView, str]:
    m = chat.store.message(msgid)
    if m is None or account not in chat.audience(m.target):
        raise bottle.HTTPError(404, N_("That message does not exist any more."))
    return views(web, chat, account, [m])[0], to_of(m.target, account)


def _message_fragment(web: Web, view: MessageView, account: str) -> str:
    return web.render("chat/message_one.html", v=view, account=account, reactions=REACTIONS)


def edit_form(web: Web, msgid: str) -> str:
    chat = chat_of(web)
    account = me(web)
    v, to = _own_view(web, chat, account, msgid)
    if not v.mine or v.m.redacted:
        raise bottle.HTTPError(403, N_("Only the sender may change a message."))
    return web.render("chat/edit.html", v=v, to=to)


def edit(web: Web, msgid: str) -> str:
    chat = chat_of(web)
    account = me(web)
    text = forms.raw("text").strip("\r\n")
    if text.strip():
        try:
            chat.edit(account, msgid, text)
        except ChatError as exc:
            raise bottle.HTTPError(403, ERRORS.get(exc.code, N_("Bad request"))) from None
    v, to = _own_view(web, chat, account, msgid)
    back_unless_htmx(to)
    return _message_fragment(web, v, account)


def delete(web: Web, msgid: str) -> str:
    chat = chat_of(web)
    account = me(web)
    try:
        chat.redact(account, msgid)
    except ChatError as exc:
        raise bottle.HTTPError(403, ERRORS.get(exc.code, N_("Bad request"))) from None
    v, _ = _own_view(web, chat, account, msgid)
    return _message_fragment(web, v, account)


def react(web: Web, msgid: str) -> str:
    chat = chat_of(web)
    account = me(web)
    reaction = forms.text("reaction")[:64]
    if not reaction:
        raise bottle.HTTPError(400, N_("Bad request"))
    mine = any(who == account and r == reaction for who, r in chat.store.reactions(msgid))
    try:
        chat.react(account, msgid, reaction, add=not mine)
    except ChatError as exc:
        raise bottle.HTTPError(404, ERRORS.get(exc.code, N_("Bad request"))) from None
    v, to = _own_view(web, chat, account, msgid)
    back_unless_htmx(to)
    return _message_fragment(web, v, account)


# -- rooms --------------------------------------------------------------------------------------


def create_or_join(web: Web) -> None:
    chat = chat_of(web)
    account = me(web)
    name = forms.text("name").lstrip("#").lower()
    try:
        if forms.text("private") and chat.room(name) is None:
            chat.create_room(name, account, private=True)
        else:
            chat.join(name, account)
    except (ChatError, ValueError) as exc:
        msg = refusal(web, exc) if isinstance(exc, ChatError) else refusal_of(web, "bad_name")
        raise bottle.redirect("/chat/rooms?error=" + urllib.parse.quote(msg)) from None
    raise bottle.redirect(url_of("#" + name))


def leave(web: Web, name: str) -> None:
    chat = chat_of(web)
    account = me(web)
    try:
        chat.part(name, account)
    except ChatError:
        pass
    raise bottle.redirect("/chat/rooms")


def invite(web: Web, name: str) -> None:
    chat = chat_of(web)
    account = me(web)
    who = forms.text("user").lower()
    try:
        # the web chat's "invite" adds the person (a family's or a team's room): the invitation
        # lets them through a private room's door, and the join puts the room in their list
        chat.invite(name, who, account)
        chat.join(name, who, create=False)
    except ChatError as exc:
        raise bottle.HTTPError(status_of(exc), ERRORS.get(exc.code, N_("Bad request"))) from None
    raise bottle.redirect(url_of("#" + name))


def set_topic(web: Web, name: str) -> None:
    chat = chat_of(web)
    account = me(web)
    try:
        chat.set_topic(name, forms.text("topic"), account)
    except ChatError as exc:
        raise bottle.HTTPError(status_of(exc), ERRORS.get(exc.code, N_("Bad request"))) from None
    raise bottle.redirect(url_of("#" + name))


def start_dm(web: Web) -> None:
    chat = chat_of(web)
    account = me(web)
    who = forms.text("user").lower().partition("@")[0]
    if not who or who == account or not chat.user_exists(who):
        msg = refusal_of(web, "no_such_user")
        raise bottle.redirect("/chat/rooms?error=" + urllib.parse.quote(msg))
    raise bottle.redirect(url_of(who))


__all__ = ["conversations", "views", "url_of", "to_of", "dm_target"]
