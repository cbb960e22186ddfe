"""The mail routes of ``/api/v1``: the caller's own mailbox through the mailbox's face
(``gk.mail.mailbox``) and the submission path the webmail uses (``gk.mail.submission``).

A message id is ``<folder, base64url>.<uidvalidity>.<uid>.<tag>``: stable while the message
stays in its folder (a move gives a new id, returned by the move), and bound to its user by
``tag`` (a digest of the address with the rest), so another user's id — even naming a folder
and UID that exist in the caller's own mailbox — is a 404, as is a forged or stale one. Every
lookup happens in the caller's own ``UserMailbox``: nothing here can name another's.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import hashlib
import mimetypes
import re
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import bottle

from gk.api.app import APIError, Caller, read_json
from gk.mail.mailbox import FolderInfo, FolderNotFound, MailboxError, MessageInfo, UserMailbox, get_store, reading

if TYPE_CHECKING:
    from gk.context import AppContext

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_ATTACHMENTS = 25 * 1024 * 1024  # decoded bytes per message, as the webmail's compose form
MAX_RECIPIENTS = 100
FLAG_RE = re.compile(r"^(\\(Seen|Flagged|Answered|Draft|Deleted)|[!#$&'+\-.0-9A-Z^_`a-z|~]{1,64})$")
MSGID = re.compile(r"<[^<>\s]{1,250}>")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def _tag(address: str, folder: str, uidvalidity: int, uid: int) -> str:
    return hashlib.sha256(f"{address}\0{folder}\0{uidvalidity}\0{uid}".encode()).hexdigest()[:10]


def message_id(address: str, folder: str, uidvalidity: int, uid: int) -> str:
    return f"{_b64(folder)}.{uidvalidity}.{uid}.{_tag(address, folder, uidvalidity, uid)}"


def _date(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _addresses(field: Any) -> list[dict[str, str]]:
    out = []
    for item in field or ():
        name, _route, local, host = item
        if local:
            out.append({"name": reading.decode_words(name), "address": f"{local}@{host}" if host else str(local)})
    return out


def _int_query(name: str, default: int, lo: int, hi: int) -> int:
    raw = bottle.request.query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
        raise APIError(400, "bad_parameter", f"{name} must be an integer from {lo} to {hi}")
    return int(raw)


def _string_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise APIError(400, "bad_parameter", f"{key} must be a string or a list of strings")
    return value


class MailAPI:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.store = get_store(ctx)

    # -- lookups, always in the caller's own mailbox ------------------------------------------
    def _mailbox(self, caller: Caller) -> UserMailbox:
        return self.store.user(caller.address)

    def _folder(self, mb: UserMailbox, name: str) -> FolderInfo:
        try:
            return mb.folder(name)
        except (FolderNotFound, MailboxError, ValueError):
            raise APIError(404, "not_found", f"no folder {name!r}") from None

    def _message(self, caller: Caller, mid: str) -> tuple[UserMailbox, str, MessageInfo, FolderInfo]:
        """The caller's message ``mid``: 404 for anything else (malformed, stale, another's)."""
        not_found = APIError(404, "not_found", "no such message")
        try:
            enc, validity, uid_text, tag = mid.split(".")
            folder = _unb64(enc)
            uidvalidity, uid = int(validity), int(uid_text)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise not_found from None
        if tag != _tag(caller.address, folder, uidvalidity, uid) or uid <= 0:
            raise not_found
        mb = self._mailbox(caller)
        try:
            info = mb.folder(folder)
            if info.uidvalidity != uidvalidity:
                raise not_found
            return mb, folder, mb.info(folder, uid), info
        except (FolderNotFound, MailboxError, ValueError, KeyError):
            raise not_found from None

    def _summary(self, caller: Caller, mb: UserMailbox, folder: FolderInfo, m: MessageInfo) -> dict[str, Any]:
        try:
            snippet = reading.message_preview(mb, folder.name, m.uid)
        except (MailboxError, LookupError, OSError):
            snippet = ""
        env = m.envelope
        return {
            "id": message_id(caller.address, folder.name, folder.uidvalidity, m.uid),
            "folder": folder.name,
            "uid": m.uid,
            "from": _addresses(env[2] if len(env) > 2 else None),
            "to": _addresses(env[5] if len(env) > 5 else None),
            "subject": m.subject,
            "date": _date(m.internaldate),
            "size": m.size,
            "flags": list(m.flags),
            "seen": m.seen,
            "flagged": "\\Flagged" in m.flags,
            "snippet": snippet,
        }

    # -- routes --------------------------------------------------------------------------------
    def me(self, caller: Caller) -> dict[str, Any]:
        return {"address": caller.address, "admin": caller.user.is_admin, "scopes": sorted(caller.scopes)}

    def folders(self, caller: Caller) -> dict[str, Any]:
        out = []
        for f in self._mailbox(caller).folders():
            out.append(
                {
                    "name": f.name,
                    "special_use": f.special_use,
                    "messages": f.exists,
                    "unread": f.unseen,
                    "size": f.size,
                }
            )
        return {"folders": out}

    def messages(self, caller: Caller) -> dict[str, Any]:
        q = bottle.request.query
        name = q.getunicode("folder", default="INBOX") or "INBOX"
        offset = _int_query("offset", 0, 0, 10_000_000)
        limit = _int_query("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        text = (q.getunicode("q", default="") or "").strip()
        unread = q.get("unread", "")
        if unread not in ("", "true", "false"):
            raise APIError(400, "bad_parameter", "unread must be true or false")
        if len(text) > 500:
            raise APIError(400, "bad_parameter", "q is limited to 500 characters")
        mb = self._mailbox(caller)
        folder = self._folder(mb, name)
        try:
            if text or unread == "true":
                uids = set(mb.search_text(name, text)) if text else None
                if unread == "true":
                    unseen = set(mb.search(name, ("noflag", "\\Seen")))
                    uids = unseen if uids is None else uids & unseen
                assert uids is not None
                total = len(uids)
                page = sorted(uids, reverse=True)[offset : offset + limit]
                found = mb.infos(name, page)
                infos = [found[u] for u in page if u in found]
            else:
                total = folder.exists
                infos = mb.messages(name, offset, limit, newest_first=True)
        except MailboxError as exc:
            raise APIError(400, "bad_request", str(exc)) from None
        return {
            "folder": name,
            "total": total,
            "offset": offset,
            "limit": limit,
            "messages": [self._summary(caller, mb, folder, m) for m in infos],
        }

    def message(self, caller: Caller, mid: str) -> dict[str, Any]:
        mb, name, info, folder = self._message(caller, mid)
        out = self._summary(caller, mb, folder, info)
        hdr = mb.headers(name, info.uid)
        env = info.envelope
        out["cc"] = _addresses(env[6] if len(env) > 6 else None)
        out["reply_to"] = _addresses(env[4] if len(env) > 4 else None)
        out["message_id"] = str(hdr.get("Message-ID", "") or "").strip()
        out["headers"] = [{"name": k, "value": reading.decode_words(str(v))} for k, v in hdr.items()][:200]
        out["text"] = reading.body_text(mb, name, info.uid)
        out["html"] = reading.body_html(mb, name, info.uid)
        out["attachments"] = [
            {"part": a.path, "name": a.name, "type": a.type, "size": a.size}
            for a in reading.message_attachments(mb, name, info.uid)
        ]
        return out

    def attachment(self, caller: Caller, mid: str, part: str) -> bottle.HTTPResponse:
        mb, name, info, _f = self._message(caller, mid)
        if not re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,4}){0,19}", part):
            raise APIError(404, "not_found", "no such attachment")
        found = reading.attachment(mb, name, info.uid, part)
        if found is None:
            raise APIError(404, "not_found", "no such attachment")
        att, chunks = found
        filename = att.name or "attachment"
        quoted = "".join(c if c.isascii() and c.isalnum() or c in "._-" else "_" for c in filename)
        disposition = f"attachment; filename=\"{quoted}\"; filename*=UTF-8''{bottle.urlquote(filename)}"
        resp = bottle.HTTPResponse(
            body=chunks,
            status=200,
            headers={
                "Content-Type": att.type if "/" in att.type else "application/octet-stream",
                "Content-Disposition": disposition,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )
        return resp

    def raw(self, caller: Caller, mid: str) -> bottle.HTTPResponse:
        mb, name, info, _f = self._message(caller, mid)
        data = mb.message_bytes(name, info.uid)
        return bottle.HTTPResponse(
            body=data, status=200, headers={"Content-Type": "message/rfc822", "Cache-Control": "no-store"}
        )

    def flags(self, caller: Caller, mid: str) -> dict[str, Any]:
        body = read_json(64 * 1024)
        add, remove = _string_list(body, "add"), _string_list(body, "remove")
        extra = set(body) - {"add", "remove"}
        if extra:
            raise APIError(400, "bad_parameter", f"unknown field {sorted(extra)[0]!r}")
        if not add and not remove:
            raise APIError(400, "bad_parameter", "give flags to add or remove")
        for flag in add + remove:
            if not FLAG_RE.match(flag):
                raise APIError(400, "bad_parameter", f"not a flag: {flag!r} (\\Seen, \\Flagged… or a keyword)")
        mb, name, info, folder = self._message(caller, mid)
        try:
            if add:
                mb.set_flags(name, [info.uid], add, mode="add")
            if remove:
                mb.set_flags(name, [info.uid], remove, mode="remove")
            now = mb.info(name, info.uid)
        except MailboxError as exc:
            raise APIError(400, "bad_request", str(exc)) from None
        return {"id": mid, "flags": list(now.flags), "seen": now.seen, "flagged": "\\Flagged" in now.flags}

    def move(self, caller: Caller, mid: str) -> dict[str, Any]:
        body = read_json(64 * 1024)
        dest = body.get("folder")
        if not isinstance(dest, str) or not dest:
            raise APIError(400, "bad_parameter", "folder: the destination folder's name is required")
        mb, name, info, _f = self._message(caller, mid)
        target = self._folder(mb, dest)
        if dest == name:
            raise APIError(400, "bad_parameter", "the message is already in that folder")
        try:
            validity, mapping = mb.move(name, [info.uid], dest)
        except MailboxError as exc:
            raise APIError(400, "bad_request", str(exc)) from None
        if not mapping:
            raise APIError(404, "not_found", "no such message")
        new_uid = mapping[0][1]
        return {"id": message_id(caller.address, target.name, validity, new_uid), "folder": target.name, "uid": new_uid}

    def delete(self, caller: Caller, mid: str) -> dict[str, Any]:
        mb, name, info, folder = self._message(caller, mid)
        permanent = folder.special_use == "\\Trash"
        try:
            mb.delete_messages(name, [info.uid])
        except MailboxError as exc:
            raise APIError(400, "bad_request", str(exc)) from None
        return {"deleted": True, "permanent": permanent}

    # -- sending -------------------------------------------------------------------------------
    def send(self, caller: Caller) -> bottle.HTTPResponse:
        from gk.api.app import json_response
        from gk.mail.submission import SubmissionError, submit

        body = read_json()
        known = {"to", "cc", "bcc", "subject", "text", "html", "in_reply_to", "attachments"}
        extra = set(body) - known
        if extra:
            raise APIError(400, "bad_parameter", f"unknown field {sorted(extra)[0]!r}")
        to, cc, bcc = (_string_list(body, k) for k in ("to", "cc", "bcc"))
        rcpts = [a for _n, a in email.utils.getaddresses(to + cc + bcc) if a]
        if not rcpts or any("@" not in a for a in rcpts) or len(rcpts) > MAX_RECIPIENTS:
            raise APIError(400, "bad_parameter", f"give 1 to {MAX_RECIPIENTS} recipient addresses in to, cc or bcc")
        subject, text, html = body.get("subject", ""), body.get("text", ""), body.get("html")
        if not isinstance(subject, str) or not isinstance(text, str) or not isinstance(html, str | None):
            raise APIError(400, "bad_parameter", "subject, text and html are strings")
        if any(c in subject for c in "\r\n"):
            raise APIError(400, "bad_parameter", "subject: one line")
        user = caller.user
        from email.policy import SMTP  # on first use: email.policy costs an idle box ~0.5 MB

        msg = EmailMessage(policy=SMTP)
        msg["From"] = email.utils.formataddr((user.display_name, user.address)) if user.display_name else user.address
        try:
            if to:
                msg["To"] = ", ".join(to)
            if cc:
                msg["Cc"] = ", ".join(cc)
        except (ValueError, IndexError) as exc:
            raise APIError(400, "bad_parameter", f"bad address: {exc}") from None
        msg["Subject"] = subject
        msg["Date"] = email.utils.format_datetime(dt.datetime.now(dt.UTC))
        msg["Message-ID"] = email.utils.make_msgid(domain=user.domain)
        mb = self._mailbox(caller)
        original: tuple[str, int] | None = None
        reply_to = body.get("in_reply_to")
        if reply_to is not None:
            if not isinstance(reply_to, str):
                raise APIError(400, "bad_parameter", "in_reply_to: a message id of this API")
            _mb, oname, oinfo, _f = self._message(caller, reply_to)
            hdr = mb.headers(oname, oinfo.uid)
            own = MSGID.findall(str(hdr.get("Message-ID", "") or ""))[:1]
            refs = (
                MSGID.findall(str(hdr.get("References", "") or ""))
                or MSGID.findall(str(hdr.get("In-Reply-To", "") or ""))[:1]
            )
            if own:
                msg["In-Reply-To"] = own[0]
                msg["References"] = " ".join((refs + own)[-30:])
            original = (oname, oinfo.uid)
        msg["User-Agent"] = "GK API"
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        self._attach(msg, body.get("attachments", []))
        data = msg.as_bytes()
        try:
            result = submit(self.ctx, user, data, rcpts)
        except SubmissionError as exc:
            raise APIError(422 if exc.code >= 500 else 503, "refused", str(exc)) from None
        sent_id = None
        try:
            validity, uid = mb.append("Sent", data, flags=("\\Seen",))
            sent_id = message_id(caller.address, "Sent", validity, uid)
        except MailboxError:
            pass
        if original is not None:
            try:
                mb.set_flags(original[0], [original[1]], ["\\Answered"], mode="add")
            except MailboxError:
                pass
        out = {
            "message_id": str(msg["Message-ID"]),
            "delivered": result.delivered,
            "queued": result.queued,
            "queue_id": result.queue_id,
            "sent_id": sent_id,
        }
        return json_response(out, 202 if result.queued else 200)

    @staticmethod
    def _attach(msg: EmailMessage, items: Any) -> None:
        if not isinstance(items, list):
            raise APIError(400, "bad_parameter", "attachments: a list of {filename, content_type, content_base64}")
        total = 0
        for i, item in enumerate(items):
            where = f"attachments[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("filename"), str):
                raise APIError(400, "bad_parameter", f"{where}: filename and content_base64 are required")
            name = "".join("_" if c in "/\\" or ord(c) < 32 or ord(c) == 127 else c for c in item["filename"])
            name = name[:200] or "attachment"
            ctype = item.get("content_type") or mimetypes.guess_type(name)[0] or "application/octet-stream"
            if not isinstance(ctype, str) or not re.fullmatch(r"[\w.+-]{1,64}/[\w.+-]{1,64}", ctype):
                raise APIError(400, "bad_parameter", f"{where}.content_type: a MIME type such as text/plain")
            try:
                data = base64.b64decode(str(item.get("content_base64", "")), validate=True)
            except (binascii.Error, ValueError):
                raise APIError(400, "bad_parameter", f"{where}.content_base64: not base64") from None
            total += len(data)
            if total > MAX_ATTACHMENTS:
                raise APIError(413, "too_large", f"attachments are limited to {MAX_ATTACHMENTS} bytes in all")
            maintype, _s, subtype = ctype.partition("/")
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)

    # -- the queue, for admins -----------------------------------------------------------------
    def queue(self, caller: Caller) -> dict[str, Any]:
        from gk.mail.queue.service import QueueService

        if not caller.user.is_admin:
            raise APIError(403, "forbidden", "the queue is shown to administrators only")
        svc = self.ctx.services.maybe(QueueService)
        if svc is None:
            return {"enabled": False, "messages": []}
        messages: dict[int, dict[str, Any]] = {}
        for row in svc.snapshot():
            m = messages.setdefault(
                row["id"],
                {
                    "id": row["id"],
                    "from": row["mail_from"],
                    "user": row["user"],
                    "size": row["size"],
                    "created": _date(int(row["created"])),
                    "subject": row["subject"],
                    "recipients": [],
                },
            )
            m["recipients"].append(
                {
                    "address": row["rcpt"],
                    "state": row["state"],
                    "attempts": row["attempts"],
                    "next_attempt": _date(int(row["next_attempt"])) if row["next_attempt"] else None,
                    "last_attempt": _date(int(row["last_attempt"])) if row["last_attempt"] else None,
                    "last_error": row["last_error"],
                    "last_host": row["last_host"],
                }
            )
        return {"enabled": True, "messages": list(messages.values())}
