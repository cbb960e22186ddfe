"""The tools with side effects: ``mail_send``, ``mail_reply``, ``mail_move``, ``mail_flag``,
``mail_delete`` and ``chat_post``. None of them acts when called: each checks its arguments,
builds the full payload and stores it as a pending action (``gk.mcp.approvals``), answering
"queued for approval (id …)" with the approval page's URL (for MCP clients that know URL-mode
elicitation, an ``elicitation`` object of that shape). The owner's Approve click in the web UI
runs the matching executor below, through the same service APIs as the protocols:

- mail goes through ``gk.mail.submission.submit`` (the path of SMTP 587/465 and the webmail:
  sender ownership, local delivery, the outbound queue with DKIM) and is appended to Sent, as
  the webmail does; the message submitted is the very one stored when the tool was called and
  shown on the approval page (its Date and Message-ID included);
- move, flag and delete go through the user's ``UserMailbox`` (the mailbox's face), after
  checking each message is still the one shown (its Message-ID, the folder's UIDVALIDITY);
- ``chat_post`` through ``ChatService.post`` as the user's chat account (their local part).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.message
import email.utils
import re
from collections.abc import Callable
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from gk import localtime, pools
from gk.locale import N_
from gk.mail.mailbox import MailboxError, UserMailbox, get_store
from gk.mail.mailbox.reading import decode_words
from gk.mcp.approvals import (
    CHANGED,
    GONE,
    UNAVAILABLE,
    UNDELIVERABLE,
    ActionFailed,
    ApprovalStore,
    Executor,
    PendingAction,
)
from gk.mcp.registry import INVALID, NOT_FOUND, Tool, ToolFailed

if TYPE_CHECKING:
    from gk.accounts import User
    from gk.chat.core import ChatService
    from gk.context import AppContext
    from gk.mcp.calwrite import CalendarWrite

MAX_MESSAGE = 10 * 1024 * 1024  # a queued message, forwarded messages included
MAX_RECIPIENTS = 50
MAX_UIDS = 100
MSGID = re.compile(r"<[^<>\s]{1,250}>")
FLAGS = {"seen": "\\Seen", "flagged": "\\Flagged", "answered": "\\Answered"}
SENT_TEXT = (
    "Queued for approval (id {id}): {summary}. Nothing has happened yet: the owner must approve it in the "
    "GK web UI at {url} (expires {expires}). Do not call the tool again for the same action."
)

_FOLDER = {"type": "string", "minLength": 1, "maxLength": 500, "description": 'folder name, "/" between levels'}
_UIDS = {
    "type": "array",
    "items": {"type": "integer", "minimum": 1, "maximum": 4294967295},
    "minItems": 1,
    "maxItems": MAX_UIDS,
    "description": "the messages' uids in the folder",
}
_ADDRESS = {"type": "string", "minLength": 3, "maxLength": 320}
_QUEUED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["pending_approval"]},
        "action_id": {"type": "string"},
        "approval_url": {"type": "string", "description": "the owner approves or rejects it there"},
        "expires": {"type": "string", "description": "ISO 8601 UTC"},
        "summary": {"type": "string"},
        "elicitation": {
            "type": "object",
            "description": "URL-mode elicitation (MCP 2025-11-25) the client may show its user",
            "properties": {
                "mode": {"type": "string"},
                "elicitationId": {"type": "string"},
                "url": {"type": "string"},
                "message": {"type": "string"},
            },
            "required": ["mode", "elicitationId", "url", "message"],
        },
    },
    "required": ["status", "action_id", "approval_url", "expires", "summary", "elicitation"],
}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def request_base() -> str:
    """scheme://host of the request being served (the URL the MCP client reached), else ''."""
    import bottle

    try:
        environ = bottle.request.environ
    except RuntimeError:
        return ""
    host = environ.get("HTTP_HOST")
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}" if host else ""


def clean_address(value: str) -> str:
    """One bare address from a tool argument (``Name <a@b>`` accepted), else ToolFailed."""
    if any(ch in value for ch in "\r\n\0"):
        raise ToolFailed(f"not an address: {value[:80]!r}", INVALID)
    _name, addr = email.utils.parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or "." not in domain or any(ch.isspace() for ch in addr):
        raise ToolFailed(f"not an address: {value[:80]!r}", INVALID)
    return addr


def message_id(mb: UserMailbox, folder: str, uid: int) -> str:
    info = mb.info(folder, uid)
    raw = info.envelope[9] if len(info.envelope) > 9 else None
    found = MSGID.findall(str(raw or ""))
    return found[0] if found else ""


class WriteTools:
    """The side-effect tools of one running box: queue with ``queue_*``, execute with ``run_*``."""

    def __init__(self, ctx: AppContext, approvals: ApprovalStore, base_url: Callable[[], str] = request_base):
        self.ctx = ctx
        self.approvals = approvals
        self.base_url = base_url

    # -- helpers --------------------------------------------------------------------------------
    def _user(self, address: str) -> User:
        user = self.ctx.accounts.get_user(address)
        if user is None:
            raise ActionFailed(f"no user {address}", UNAVAILABLE)
        return user

    def _mailbox(self, address: str) -> UserMailbox:
        return get_store(self.ctx).user(address)

    def _queued(self, owner: str, tool: str, summary: str, payload: dict[str, Any], message: bytes | None = None) -> dict[str, Any]:  # fmt: skip
        action = self.approvals.queue(owner, tool, summary, payload, message)
        base = self.base_url() or f"https://{self.ctx.hostname}"
        url = f"{base}/approvals/{action.id}"
        return {
            "status": "pending_approval",
            "action_id": action.id,
            "approval_url": url,
            "expires": _iso(action.expires),
            "summary": action.summary,
            "elicitation": {
                "mode": "url",
                "elicitationId": action.id,
                "url": url,
                "message": f"Approve or reject on your GK box: {action.summary}",
            },
        }

    def _snapshot(self, mb: UserMailbox, folder: str, uids: list[int]) -> list[dict[str, Any]]:
        """What the owner is shown and what is checked again before acting: each message's
        sender, subject and Message-ID."""
        try:
            infos = mb.infos(folder, uids)
        except MailboxError as exc:
            raise ToolFailed(str(exc)) from exc
        missing = [u for u in uids if u not in infos]
        if missing:
            raise ToolFailed(f"no message {missing[0]} in {folder!r}", NOT_FOUND)
        return [
            {"uid": u, "from": infos[u].sender, "subject": infos[u].subject, "message_id": message_id(mb, folder, u)}
            for u in uids
        ]

    def _folder(self, mb: UserMailbox, folder: str) -> int:
        try:
            return mb.folder(folder).uidvalidity
        except MailboxError as exc:
            raise ToolFailed(str(exc)) from exc

    def _check_same(self, mb: UserMailbox, payload: dict[str, Any]) -> list[int]:
        """The uids of the payload, if the folder and every message are still those shown."""
        folder = payload["folder"]
        try:
            if mb.folder(folder).uidvalidity != payload["uidvalidity"]:
                raise ActionFailed(f"the folder {folder} was re-created since: nothing done", CHANGED)
            uids = [m["uid"] for m in payload["messages"]]
            infos = mb.infos(folder, uids)
            for m in payload["messages"]:
                if m["uid"] not in infos or message_id(mb, folder, m["uid"]) != m["message_id"]:
                    raise ActionFailed(f"message {m['uid']} is no longer in {folder}: nothing done", GONE)
        except MailboxError as exc:
            raise ActionFailed(str(exc)) from exc
        return uids

    def _new_message(self, user: User, to: list[str], cc: list[str], subject: str, body: str) -> EmailMessage:
        from email.policy import SMTP  # on first use: email.policy costs an idle box ~0.5 MB

        msg = EmailMessage(policy=SMTP)
        msg["From"] = email.utils.formataddr((user.display_name, user.address)) if user.display_name else user.address
        msg["To"] = ", ".join(to)
        if cc:
            msg["Cc"] = ", ".join(cc)
        msg["Subject"] = subject
        msg["Date"] = email.utils.format_datetime(localtime.now(self.ctx.data_dir))  # the owner's zone
        msg["Message-ID"] = email.utils.make_msgid(domain=user.domain)
        msg["User-Agent"] = "GK assistant tools (approved by the owner)"
        msg.set_content(body)
        return msg

    def _recipients(self, values: list[str]) -> list[str]:
        from gk.mail.submission import classify_recipient

        out = []
        for value in values:
            addr = clean_address(value)
            _local, problem = classify_recipient(self.ctx, addr)
            if problem:
                raise ToolFailed(problem, INVALID)
            out.append(addr)
        return out

    # -- mail_send ------------------------------------------------------------------------------
    def queue_send(self, address: str, args: dict[str, Any]) -> dict[str, Any]:
        user = self._user_or_fail(address)
        to, cc = self._recipients(args["to"]), self._recipients(args.get("cc", []))
        if len(to) + len(cc) > MAX_RECIPIENTS:
            raise ToolFailed(f"at most {MAX_RECIPIENTS} recipients", INVALID)
        msg = self._new_message(user, to, cc, args["subject"], args["body"])
        total = 0
        for att in args.get("attachments", []):
            try:
                data = base64.b64decode(att["content_base64"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ToolFailed(f"attachment {att['filename']!r}: not base64", INVALID) from exc
            total += len(data)
            ctype = att.get("content_type", "application/octet-stream")
            maintype, _, subtype = ctype.partition("/")
            if not maintype or not subtype or maintype == "multipart":
                raise ToolFailed(f"attachment {att['filename']!r}: bad content_type {ctype!r}", INVALID)
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=att["filename"])
        mb = self._mailbox(address) if args.get("forward") else None
        for ref in args.get("forward", []):
            assert mb is not None
            try:
                original = mb.message_bytes(ref["folder"], ref["uid"])
            except (MailboxError, KeyError, LookupError) as exc:
                raise ToolFailed(f"no message {ref['uid']} in {ref['folder']!r}", NOT_FOUND) from exc
            total += len(original)
            if total > MAX_MESSAGE:
                break
            # the message itself as the part's body (RFC 2046 5.2.1: message/rfc822 is 7bit or 8bit, never base64)
            inner = email.message_from_bytes(original)  # compat32, its default
            cte = "7bit" if original.isascii() else "8bit"
            msg.add_attachment(inner, filename="forwarded.eml", cte=cte)
        if total > MAX_MESSAGE:
            raise ToolFailed(f"the message would be over {MAX_MESSAGE // (1024 * 1024)} MB", INVALID)
        data = pools.run_cpu(msg.as_bytes)  # up to 10 MB of forwarded mail: not on the hub
        if len(data) > MAX_MESSAGE:
            raise ToolFailed(f"the message would be over {MAX_MESSAGE // (1024 * 1024)} MB", INVALID)
        summary = f"send mail to {', '.join(to + cc)[:150]}: {args['subject'][:100]!r}"
        return self._queued(address, "mail_send", summary, {"rcpts": to + cc, "subject": args["subject"]}, data)

    def queue(self, owner: str, tool: str, summary: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Store a pending action of another family of tools (``gk.mcp.calwrite``)."""
        return self._queued(owner, tool, summary, payload)

    def _user_or_fail(self, address: str) -> User:
        user = self.ctx.accounts.get_user(address)
        if user is None:
            raise ToolFailed("the account is gone")
        return user

    def run_send(self, owner: str, action: PendingAction) -> str:
        from gk.mail.submission import SubmissionError, submit

        user = self._user(owner)
        data = action.message or b""
        try:
            result = submit(self.ctx, user, data, list(action.payload["rcpts"]))
        except SubmissionError as exc:
            raise ActionFailed(exc.reply, UNDELIVERABLE) from exc
        mb = self._mailbox(owner)
        try:
            mb.append("Sent", data, flags=("\\Seen",))
        except MailboxError:
            pass
        reply = action.payload.get("reply_to")
        if reply:
            try:  # the original is marked answered, as IMAP clients and the webmail do
                if message_id(mb, reply["folder"], reply["uid"]) == reply["message_id"]:
                    mb.set_flags(reply["folder"], [reply["uid"]], ["\\Answered"], mode="add")
            except (MailboxError, LookupError, KeyError):
                pass
        return f"delivered to {len(result.delivered)}, queued for {len(result.queued)} recipient(s)"

    # -- mail_reply -----------------------------------------------------------------------------
    def queue_reply(self, address: str, args: dict[str, Any]) -> dict[str, Any]:
        from gk.mail.submission import owns_address

        user = self._user_or_fail(address)
        folder, uid = args["folder"], args["uid"]
        mb = self._mailbox(address)
        try:
            hdr = mb.headers(folder, uid)
        except (MailboxError, KeyError, LookupError) as exc:
            raise ToolFailed(f"no message {uid} in {folder!r}", NOT_FOUND) from exc
        reply_to = [a for _n, a in email.utils.getaddresses([str(hdr.get("Reply-To") or hdr.get("From") or "")]) if a]
        if not reply_to:
            raise ToolFailed("the message has no sender to reply to", INVALID)
        cc: list[str] = []
        if args.get("reply_all"):
            others = email.utils.getaddresses([str(hdr.get("To") or ""), str(hdr.get("Cc") or "")])
            cc = [a for _n, a in others if a and a not in reply_to and not owns_address(self.ctx.accounts, user, a)]
        to = self._recipients(reply_to)
        cc = self._recipients(list(dict.fromkeys(cc)))[:MAX_RECIPIENTS]
        subject = decode_words(str(hdr.get("Subject") or ""))
        subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        msg = self._new_message(user, to, cc, subject, args["body"])
        own = MSGID.findall(str(hdr.get("Message-ID") or ""))[:1]
        refs = MSGID.findall(str(hdr.get("References") or "")) or MSGID.findall(str(hdr.get("In-Reply-To") or ""))[:1]
        refs = [r for r in refs if r not in own][-29:] + own
        if own:
            msg["In-Reply-To"] = own[0]
        if refs:
            msg["References"] = " ".join(refs)
        data = msg.as_bytes()
        summary = f"reply to {', '.join(to + cc)[:150]}: {subject[:100]!r}"
        payload = {
            "rcpts": to + cc,
            "subject": subject,
            "reply_to": {"folder": folder, "uid": uid, "message_id": own[0] if own else ""},
        }
        return self._queued(address, "mail_reply", summary, payload, data)

    # -- mail_move / mail_flag / mail_delete ----------------------------------------------------
    def queue_move(self, address: str, args: dict[str, Any]) -> dict[str, Any]:
        mb = self._mailbox(address)
        folder, dest, uids = args["folder"], args["dest"], sorted(set(args["uids"]))
        validity = self._folder(mb, folder)
        self._folder(mb, dest)
        if dest == folder:
            raise ToolFailed("the destination is the folder itself", INVALID)
        messages = self._snapshot(mb, folder, uids)
        summary = f"move {len(uids)} message(s) from {folder} to {dest}"
        payload = {"folder": folder, "uidvalidity": validity, "dest": dest, "messages": messages}
        return self._queued(address, "mail_move", summary, payload)

    def run_move(self, owner: str, action: PendingAction) -> str:
        mb = self._mailbox(owner)
        uids = self._check_same(mb, action.payload)
        try:
            mb.move(action.payload["folder"], uids, action.payload["dest"])
        except MailboxError as exc:
            raise ActionFailed(str(exc)) from exc
        return f"moved {len(uids)} message(s) to {action.payload['dest']}"

    def queue_flag(self, address: str, args: dict[str, Any]) -> dict[str, Any]:
        mb = self._mailbox(address)
        folder, uids, on = args["folder"], sorted(set(args["uids"])), args.get("on", True)
        validity = self._folder(mb, folder)
        messages = self._snapshot(mb, folder, uids)
        verb = "set" if on else "clear"
        summary = f"{verb} {args['flag']} on {len(uids)} message(s) in {folder}"
        payload = {"folder": folder, "uidvalidity": validity, "flag": args["flag"], "on": on, "messages": messages}
        return self._queued(address, "mail_flag", summary, payload)

    def run_flag(self, owner: str, action: PendingAction) -> str:
        mb = self._mailbox(owner)
        uids = self._check_same(mb, action.payload)
        p = action.payload
        try:
            mb.set_flags(p["folder"], uids, [FLAGS[p["flag"]]], mode="add" if p["on"] else "remove")
        except MailboxError as exc:
            raise ActionFailed(str(exc)) from exc
        return f"{'set' if p['on'] else 'cleared'} {p['flag']} on {len(uids)} message(s)"

    def queue_delete(self, address: str, args: dict[str, Any]) -> dict[str, Any]:
        mb = self._mailbox(address)
        folder, uids = args["folder"], sorted(set(args["uids"]))
        validity = self._folder(mb, folder)
        messages = self._snapshot(mb, folder, uids)
        for_good = (mb.folder(folder).special_use or "") == "\\Trash"
        how = "delete for good" if for_good else "move to Trash"
        summary = f"{how} {len(uids)} message(s) from {folder}"
        payload = {"folder": folder, "uidvalidity": validity, "for_good": for_good, "messages": messages}
        return self._queued(address, "mail_delete", summary, payload)

    def run_delete(self, owner: str, action: PendingAction) -> str:
        mb = self._mailbox(owner)
        uids = self._check_same(mb, action.payload)
        try:
            mb.delete_messages(action.payload["folder"], uids)
        except MailboxError as exc:
            raise ActionFailed(str(exc)) from exc
        return f"deleted {len(uids)} message(s)"

    # -- chat_post ------------------------------------------------------------------------------
    def _chat(self) -> ChatService:
        from gk.chat.core import ChatService

        chat = self.ctx.services.maybe(ChatService)
        if chat is None:
            raise ActionFailed("the chat is off", UNAVAILABLE)
        return chat

    def queue_post(self, address: str, args: dict[str, Any]) -> dict[str, Any]:
        from gk.chat.core import MAX_TEXT, ChatError
        from gk.mcp.chattools import chat_kind

        user = self._user_or_fail(address)
        try:
            chat = self._chat()
            chat.resolve(user.local, args["to"])
        except ChatError as exc:
            raise ToolFailed(str(exc), chat_kind(exc)) from exc
        except ActionFailed as exc:
            raise ToolFailed(str(exc)) from exc
        if len(args["text"]) > MAX_TEXT:
            raise ToolFailed(f"messages are limited to {MAX_TEXT} characters", INVALID)
        summary = f"post in chat to {args['to']}: {args['text'][:80]!r}"
        return self._queued(address, "chat_post", summary, {"to": args["to"], "text": args["text"]})

    def run_post(self, owner: str, action: PendingAction) -> str:
        from gk.chat.core import ChatError

        user = self._user(owner)
        try:
            msg = self._chat().post(user.local, action.payload["to"], action.payload["text"])
        except ChatError as exc:
            raise ActionFailed(str(exc)) from exc
        return f"posted to {action.payload['to']} (message {msg.msgid})"

    # -- the tables -----------------------------------------------------------------------------
    def executors(self) -> dict[str, Executor]:
        return {
            "mail_send": self.run_send,
            "mail_reply": self.run_send,
            "mail_move": self.run_move,
            "mail_flag": self.run_flag,
            "mail_delete": self.run_delete,
            "chat_post": self.run_post,
            **self._calendar().executors(),  # they fail when calendars are off
        }

    def _calendar(self) -> CalendarWrite:
        from gk.mcp.calwrite import CalendarWrite

        return CalendarWrite(self)

    def tools(self) -> list[Tool]:
        out = mail_tools(self)
        from gk.chat.core import ChatService

        if self.ctx.services.maybe(ChatService) is not None:
            out.append(chat_tool(self))
        from gk.dav.service import DAVService

        if self.ctx.services.maybe(DAVService) is not None:
            out += self._calendar().tools()
        return out


def _queued_text(out: dict[str, Any]) -> str:
    return SENT_TEXT.format(
        id=out["action_id"], summary=out["summary"], url=out["approval_url"], expires=out["expires"]
    )


def write_tool(name: str, title: str, description: str, schema: dict[str, Any], run: Callable[[str, dict[str, Any]], dict[str, Any]], *, destructive: bool, idempotent: bool, open_world: bool) -> Tool:  # fmt: skip
    return Tool(
        name,
        title,
        description + " Queued for the owner's approval in the GK web UI: nothing happens until they approve.",
        schema,
        _QUEUED,
        run,
        _queued_text,
        read_only=False,
        destructive=destructive,
        idempotent=idempotent,
        open_world=open_world,
    )


def mail_tools(w: WriteTools) -> list[Tool]:
    addresses = {"type": "array", "items": _ADDRESS, "maxItems": MAX_RECIPIENTS}
    return [
        write_tool(
            "mail_send",
            N_("Send mail"),
            "Send a new mail message from the user's address, optionally with small attachments (base64) "
            "or existing messages forwarded as attachments.",
            {
                "type": "object",
                "properties": {
                    "to": {**addresses, "minItems": 1, "description": "recipient addresses"},
                    "cc": {**addresses, "description": "copy recipients"},
                    "subject": {"type": "string", "maxLength": 998},
                    "body": {"type": "string", "maxLength": 100_000, "description": "plain text"},
                    "attachments": {
                        "type": "array",
                        "maxItems": 10,
                        "items": {
                            "type": "object",
                            "properties": {
                                "filename": {"type": "string", "minLength": 1, "maxLength": 200},
                                "content_type": {
                                    "type": "string",
                                    "maxLength": 100,
                                    "default": "application/octet-stream",
                                },  # fmt: skip
                                "content_base64": {"type": "string"},
                            },
                            "required": ["filename", "content_base64"],
                            "additionalProperties": False,
                        },
                    },
                    "forward": {
                        "type": "array",
                        "maxItems": 20,
                        "description": "messages of the user's mailbox attached as message/rfc822",
                        "items": {
                            "type": "object",
                            "properties": {"folder": _FOLDER, "uid": {"type": "integer", "minimum": 1}},
                            "required": ["folder", "uid"],
                            "additionalProperties": False,
                        },
                    },
                },
                "required": ["to", "subject", "body"],
                "additionalProperties": False,
            },
            w.queue_send,
            destructive=False,
            idempotent=False,
            open_world=True,
        ),
        write_tool(
            "mail_reply",
            N_("Reply to a mail message"),
            "Reply to a message of the user's mailbox (to its sender, or to everyone with reply_all); "
            "threads with In-Reply-To and References.",
            {
                "type": "object",
                "properties": {
                    "folder": _FOLDER,
                    "uid": {"type": "integer", "minimum": 1},
                    "body": {"type": "string", "maxLength": 100_000, "description": "plain text"},
                    "reply_all": {"type": "boolean", "default": False},
                },
                "required": ["folder", "uid", "body"],
                "additionalProperties": False,
            },
            w.queue_reply,
            destructive=False,
            idempotent=False,
            open_world=True,
        ),
        write_tool(
            "mail_move",
            N_("Move mail messages"),
            "Move messages from one folder of the user's mailbox to another.",
            {
                "type": "object",
                "properties": {"folder": _FOLDER, "uids": _UIDS, "dest": _FOLDER},
                "required": ["folder", "uids", "dest"],
                "additionalProperties": False,
            },
            w.queue_move,
            destructive=False,
            idempotent=True,
            open_world=False,
        ),
        write_tool(
            "mail_flag",
            N_("Flag mail messages"),
            "Set or clear a flag (seen, flagged, answered) on messages of a folder.",
            {
                "type": "object",
                "properties": {
                    "folder": _FOLDER,
                    "uids": _UIDS,
                    "flag": {"type": "string", "enum": sorted(FLAGS)},
                    "on": {"type": "boolean", "default": True, "description": "false clears the flag"},
                },
                "required": ["folder", "uids", "flag"],
                "additionalProperties": False,
            },
            w.queue_flag,
            destructive=False,
            idempotent=True,
            open_world=False,
        ),
        write_tool(
            "mail_delete",
            N_("Delete mail messages"),
            "Delete messages: moved to Trash, or removed for good when they already are in Trash.",
            {
                "type": "object",
                "properties": {"folder": _FOLDER, "uids": _UIDS},
                "required": ["folder", "uids"],
                "additionalProperties": False,
            },
            w.queue_delete,
            destructive=True,
            idempotent=True,
            open_world=False,
        ),
    ]


def chat_tool(w: WriteTools) -> Tool:
    return write_tool(
        "chat_post",
        N_("Post a chat message"),
        "Post a message in a chat room the user is in (#name) or to another user of the box (their name).",
        {
            "type": "object",
            "properties": {
                "to": {"type": "string", "minLength": 1, "maxLength": 100, "description": "#room or a user name"},
                "text": {"type": "string", "minLength": 1, "maxLength": 16_000},
            },
            "required": ["to", "text"],
            "additionalProperties": False,
        },
        w.queue_post,
        destructive=False,
        idempotent=False,
        open_world=True,
    )


def rendered(action: PendingAction) -> dict[str, Any]:
    """What the approval page shows of an action: for mail, the stored message parsed back
    (headers, the text body, every attachment with its name, type and size) and the envelope
    recipients; for the others, the payload's fields."""
    out: dict[str, Any] = {"tool": action.tool, "payload": action.payload}
    if action.message is not None:
        import email as email_pkg
        from email.policy import default  # on first use: email.policy costs an idle box ~0.5 MB

        msg = email_pkg.message_from_bytes(action.message, policy=default)
        out["headers"] = [(k, str(msg.get(k, ""))) for k in ("From", "To", "Cc", "Subject", "Date") if msg.get(k)]
        body = msg.get_body(preferencelist=("plain",)) if isinstance(msg, EmailMessage) else None
        out["body"] = body.get_content() if body is not None else ""
        atts = []
        for part in msg.iter_attachments() if isinstance(msg, EmailMessage) else ():
            payload = part.get_payload(decode=True)
            size = len(payload) if isinstance(payload, bytes) else len(str(part.get_payload()))
            label = part.get_filename() or ""
            if part.get_content_type() == "message/rfc822":
                inner = part.get_payload()
                first = inner[0] if isinstance(inner, list) and inner else None
                if isinstance(first, email.message.Message):
                    label = f"{label} — {first.get('From', '')}: {first.get('Subject', '')}"
                    size = len(first.as_bytes())
            atts.append({"name": label, "type": part.get_content_type(), "size": size})
        out["attachments"] = atts
        out["rcpts"] = action.payload.get("rcpts", [])
        out["size"] = len(action.message)
    return out


__all__ = ["WriteTools", "clean_address", "rendered", "request_base", "write_tool"]
