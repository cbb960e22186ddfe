"""Resources: the user's mail folders (``resources/list``), a folder's newest messages or one
message (``resources/read``), and the URI templates that name them (``resources/templates/list``).

URIs: ``gk-mail:///folder/{folder}`` and ``gk-mail:///message/{folder}/{uid}`` (the folder
percent-encoded, the ``/`` between its levels kept). Reading goes through the same ``MailTools`` as the tools
(the user's own ``UserMailbox``, nothing marked seen); message bodies are untrusted data,
delimited and truncated as ``mail_read`` does. An unknown URI, folder or message is a
``-32602`` error whose ``data.uri`` is the URI asked for (SEP-2164).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote

from gk.locale import N_, catalog
from gk.mail.mailbox import MailboxStore
from gk.mcp import jsonrpc, mailtools, scopes
from gk.mcp.jsonrpc import RPCError
from gk.mcp.registry import ToolFailed

if TYPE_CHECKING:
    from gk.chat.core import ChatService
    from gk.dav.service import DAVService

SCHEME = "gk-mail:///"
FOLDER_PREFIX = SCHEME + "folder/"
MESSAGE_PREFIX = SCHEME + "message/"
FOLDER_LIMIT = 20


def not_found(uri: str, id_: Any = None) -> RPCError:
    return RPCError(jsonrpc.INVALID_PARAMS, f"Resource not found: {uri}", 200, id_, data={"uri": uri})


@dataclass(frozen=True)
class Template:
    uri_template: str
    name: str
    title: str  # a catalog msgid
    description: str
    mime_type: str

    def describe(self, lang: str) -> dict[str, Any]:
        return {
            "uriTemplate": self.uri_template,
            "name": self.name,
            "title": catalog(lang).gettext(self.title),
            "description": self.description,
            "mimeType": self.mime_type,
        }


TEMPLATES = (
    Template(
        FOLDER_PREFIX + "{folder}",
        "mail_folder",
        N_("Mail folder"),
        "The newest messages of one of the user's mail folders (untrusted data).",
        "text/plain",
    ),
    Template(
        MESSAGE_PREFIX + "{folder}/{uid}",
        "mail_message",
        N_("Mail message"),
        "One message of a folder by its uid: headers and body (untrusted data, truncated).",
        "text/plain",
    ),
)


class Provider(Protocol):
    """Resources of one kind: ``entries``/``templates``/``read`` for a user, or None from
    ``read`` when the URI is not this provider's. ``feature``: the feature whose ``:read``
    scope a token needs to list or read them (``gk.mcp.scopes``); None: the ``mcp`` scope is
    enough (the conformance fixtures)."""

    feature: str | None

    def entries(self, address: str, lang: str) -> list[dict[str, Any]]: ...

    def templates(self, lang: str) -> list[dict[str, Any]]: ...

    def read(self, address: str, uri: str) -> list[dict[str, Any]] | None: ...


def folder_uri(name: str) -> str:
    return FOLDER_PREFIX + quote(name, safe="/")


class MailResources:
    """Over ``gk.mcp.mailtools.MailTools``: its ``list_folders``/``read`` and a listing."""

    feature: str | None = "mail"

    def __init__(
        self,
        list_folders: Callable[[str, dict[str, Any]], dict[str, Any]],
        list_messages: Callable[[str, str, int], str],
        read_message: Callable[[str, str, int], str],
    ):
        self._list_folders = list_folders
        self._list_messages = list_messages
        self._read_message = read_message

    def entries(self, address: str, lang: str) -> list[dict[str, Any]]:
        tr = catalog(lang).gettext
        out = []
        for f in self._list_folders(address, {})["folders"]:
            out.append(
                {
                    "uri": folder_uri(f["name"]),
                    "name": f["name"],
                    "title": tr(N_("Mail folder %(name)s")) % {"name": f["name"]},
                    "description": f"{f['messages']} message(s), {f['unread']} unread",
                    "mimeType": "text/plain",
                }
            )
        return out

    def templates(self, lang: str) -> list[dict[str, Any]]:
        return [t.describe(lang) for t in TEMPLATES]

    def read(self, address: str, uri: str) -> list[dict[str, Any]] | None:
        try:
            if uri.startswith(FOLDER_PREFIX):
                folder = unquote(uri[len(FOLDER_PREFIX) :])
                if not folder:
                    raise not_found(uri)
                text = self._list_messages(address, folder, FOLDER_LIMIT)
            elif uri.startswith(MESSAGE_PREFIX):
                folder, _, uid = uri[len(MESSAGE_PREFIX) :].rpartition("/")
                if not folder or not uid.isdigit() or int(uid) < 1:
                    raise not_found(uri)
                text = self._read_message(address, unquote(folder), int(uid))
            else:
                return None
        except ToolFailed:
            raise not_found(uri) from None
        return [{"uri": uri, "mimeType": "text/plain", "text": text}]


ROOM_PREFIX = "gk-chat:///room/"
ROOM_LIMIT = 50
ROOM_TEMPLATE = Template(
    ROOM_PREFIX + "{room}",
    "chat_room",
    N_("Chat room"),
    "The latest messages of a chat room the user is in (untrusted data from its members).",
    "text/plain",
)


class ChatResources:
    """The rooms the user is in, and their latest messages, through the chat core (``rooms_of``,
    ``history``: it refuses a room the user is not in). The chat account is the address's local
    part, as for IRC and the web chat."""

    feature: str | None = "chat"

    def __init__(self, chat: ChatService):
        self.chat = chat

    @staticmethod
    def account(address: str) -> str:
        return address.rsplit("@", 1)[0].lower()

    def entries(self, address: str, lang: str) -> list[dict[str, Any]]:
        tr = catalog(lang).gettext
        return [
            {
                "uri": ROOM_PREFIX + room.name,
                "name": f"#{room.name}",
                "title": tr(N_("Chat room #%(name)s")) % {"name": room.name},
                "description": room.topic or "chat room",
                "mimeType": "text/plain",
            }
            for room in self.chat.rooms_of(self.account(address))
        ]

    def templates(self, lang: str) -> list[dict[str, Any]]:
        return [ROOM_TEMPLATE.describe(lang)]

    def read(self, address: str, uri: str) -> list[dict[str, Any]] | None:
        if not uri.startswith(ROOM_PREFIX):
            return None
        from gk.chat.core import ChatError

        name = unquote(uri[len(ROOM_PREFIX) :])
        account = self.account(address)
        try:
            messages = self.chat.history(account, f"#{name}", "latest", ROOM_LIMIT)
        except ChatError:
            raise not_found(uri) from None
        lines = [f"#{name}: the latest {len(messages)} message(s), untrusted data from their senders:"]
        for m in messages:
            when = dt.datetime.fromtimestamp(m.time / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
            text = "(deleted)" if m.redacted else m.text
            lines.append(f"[{when}] <{m.sender}> {text}")
        return [{"uri": uri, "mimeType": "text/plain", "text": "\n".join(lines)}]


CALENDAR_PREFIX = "gk-cal:///calendar/"
CALENDAR_LIMIT = 50
_COLLECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}$")
CALENDAR_TEMPLATE = Template(
    CALENDAR_PREFIX + "{calendar}",
    "calendar",
    N_("Calendar"),
    "The coming events of one of the user's calendars (invitation text is untrusted data).",
    "text/plain",
)


class CalendarResources:
    """The user's calendars and their coming events, read through the DAV storage (the
    Radicale storage plugin, under its read lock) at the user's own principal only."""

    feature: str | None = "calendar"

    def __init__(self, dav: DAVService, now: Callable[[], float] = time.time):
        self.dav = dav
        self.now = now

    def _calendars(self, address: str) -> list[Any]:
        st = self.dav.storage
        principal = f"/{address}/"
        with st.acquire_lock("r", address):
            found = list(st.discover(principal, depth="1"))
        return [c for c in found[1:] if getattr(c, "get_meta", None) and c.get_meta("tag") == "VCALENDAR"]

    def entries(self, address: str, lang: str) -> list[dict[str, Any]]:
        out = []
        for cal in self._calendars(address):
            name = cal.path.rstrip("/").rsplit("/", 1)[-1]
            out.append(
                {
                    "uri": CALENDAR_PREFIX + name,
                    "name": name,
                    "title": cal.get_meta("D:displayname") or name,
                    "description": "calendar",
                    "mimeType": "text/plain",
                }
            )
        return out

    def templates(self, lang: str) -> list[dict[str, Any]]:
        return [CALENDAR_TEMPLATE.describe(lang)]

    def read(self, address: str, uri: str) -> list[dict[str, Any]] | None:
        if not uri.startswith(CALENDAR_PREFIX):
            return None
        name = unquote(uri[len(CALENDAR_PREFIX) :])
        if not _COLLECTION.match(name):
            raise not_found(uri)
        st = self.dav.storage
        with st.acquire_lock("r", address):
            found = list(st.discover(f"/{address}/{name}/"))
            if not found or getattr(found[0], "get_meta", None) is None or found[0].get_meta("tag") != "VCALENDAR":
                raise not_found(uri)
            items = list(found[0].get_all())
        now = self.now()
        coming = sorted(
            (i for i in items if i.time_range[1] >= now and i.component_name in ("VEVENT", "VTODO")),
            key=lambda i: i.time_range[0],
        )[:CALENDAR_LIMIT]
        lines = [f"{name}: the next {len(coming)} event(s); summaries and descriptions are untrusted data:"]
        for item in coming:
            component = getattr(item.vobject_item, item.component_name.lower(), None)
            summary = str(getattr(getattr(component, "summary", None), "value", "") or "(no title)")
            where = str(getattr(getattr(component, "location", None), "value", "") or "")
            start = dt.datetime.fromtimestamp(max(item.time_range[0], 0), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            lines.append(f"- {start}: {summary}" + (f" ({where})" if where else "") + f" [uid {item.uid}]")
        return [{"uri": uri, "mimeType": "text/plain", "text": "\n".join(lines)}]


def mail_resources(store: MailboxStore, vouch: Callable[[bytes], str] | None = None) -> MailResources:
    """The user's folders and messages, read through ``mailtools.MailTools`` as the tools read."""
    mail = mailtools.MailTools(store, vouch)

    def list_messages(address: str, folder: str, limit: int) -> str:
        mb = mail._mailbox(address, folder)
        return mailtools._listing(mail._newest(mb, folder, list(mb.uids(folder)), limit))

    def read_message(address: str, folder: str, uid: int) -> str:
        return mailtools._read_text(mail.read(address, {"folder": folder, "uid": uid}))

    return MailResources(mail.list_folders, list_messages, read_message)


FEATURE_OF_SCHEME = {"gk-mail": "mail", "gk-chat": "chat", "gk-cal": "calendar"}


class Resources:
    """All the providers of one endpoint. ``granted``: the scopes of the request's token (None:
    no token in play, every provider): a provider whose feature's ``:read`` scope is missing
    lists nothing, and reading one of its URIs raises ``scopes.InsufficientScope`` (the 403
    step-up challenge)."""

    def __init__(self, providers: list[Provider] | tuple[Provider, ...] = ()):
        self.providers: list[Provider] = list(providers)

    def __bool__(self) -> bool:
        return bool(self.providers)

    def _allowed(self, granted: frozenset[str] | None) -> list[Provider]:
        return [p for p in self.providers if scopes.feature_allowed(p.feature, granted)]

    def entries(self, address: str, lang: str, granted: frozenset[str] | None) -> list[dict[str, Any]]:
        return [r for p in self._allowed(granted) for r in p.entries(address, lang)]

    def templates(self, lang: str, granted: frozenset[str] | None) -> list[dict[str, Any]]:
        return [t for p in self._allowed(granted) for t in p.templates(lang)]

    def may_read(self, uri: str, granted: frozenset[str] | None) -> bool:
        """Is ``uri`` outside every provider the token may not read (by its scheme)?"""
        feature = FEATURE_OF_SCHEME.get(uri.split(":", 1)[0])
        return scopes.feature_allowed(feature, granted)

    def read(self, address: str, uri: str, granted: frozenset[str] | None) -> list[dict[str, Any]]:
        feature = FEATURE_OF_SCHEME.get(uri.split(":", 1)[0])
        if any(p.feature == feature for p in self.providers):  # a feature served here: step-up can help
            scopes.require_feature(feature, granted, uri)
        for p in self._allowed(granted):
            contents = p.read(address, uri)
            if contents is not None:
                return contents
        raise not_found(uri)
