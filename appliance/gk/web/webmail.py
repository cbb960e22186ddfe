"""Webmail on the mailbox store (``gk.mail.mailbox``, the same store IMAP serves) and the one
submission path (``gk.mail.submission.submit``, the same policy as SMTP 587/465).

Every handler opens the mailbox of the logged-in user only (``store.user(user.address)``),
so one user can never name another's folder or message. Folders are passed as a query
parameter (names may contain "/"). Sent mail is appended to Sent with ``\\Seen``.

Memory: a message list page holds 50 index rows; a reader page reads at most 2 MB of body
text; attachments stream. Composing builds the message in memory (bounded by
``MAX_COMPOSE`` = 25 MB of uploads; bottle spools request bodies above 256 KiB to a temp file).
"""

from __future__ import annotations

import datetime
import email.policy
import email.utils
import functools
import mimetypes
import time
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

import bottle

from gk import localtime
from gk.mail.mailbox import FolderNotFound, MailboxError, get_store
from gk.mail.mailbox.mime import find_part
from gk.mail.mailbox.textindex import decode_words
from gk.web import forms, mailrender
from gk.web.app import Web
from gk.web.i18n import translator

PAGE = 50
MAX_PAGE = 1_000_000  # 50 million messages: beyond any folder, within SQLite's OFFSET
MAX_UID = 2**32 - 1
# the banner of the message list: a known key from the query, never text from the URL itself
NOTICES = {"sent": "Message sent."}
MAX_COMPOSE = 25 * 1024 * 1024
FLAGS = {"seen": "\\Seen", "flagged": "\\Flagged"}
BODY_CSP = (
    "default-src 'none'; img-src data:{extra}; style-src 'unsafe-inline'; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
)


def register(web: Web) -> None:
    app = web.app
    ctx = web.ctx

    def mailbox() -> tuple[Any, Any]:
        user = web.require_user()
        return user, get_store(ctx).user(user.address)

    def folder_param() -> str:
        return bottle.request.query.getunicode("folder", default="INBOX") or "INBOX"

    def uid_param(value: str | None = None) -> int:
        """A message UID: 1 to 2^32-1 (RFC 3501 nz-number); anything else is a 400, not an
        OverflowError from SQLite deep in the store."""
        raw = value if value is not None else bottle.request.query.get("uid", "")
        uid = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 10 else 0
        if not 0 < uid <= MAX_UID:
            raise bottle.HTTPError(400, "Bad message id: uid must be a number from 1 to 4294967295.")
        return uid

    def info_or_404(mb: Any, folder: str, uid: int) -> Any:
        try:
            return mb.info(folder, uid)
        except (FolderNotFound, MailboxError, KeyError, LookupError) as exc:
            raise bottle.HTTPError(404, "No such message") from exc

    def back_url(folder: str) -> str:
        return "/mail?" + bottle.urlencode({"folder": folder})

    @app.get("/mail")
    def mail_list() -> str:
        user, mb = mailbox()
        folder = folder_param()
        q = (bottle.request.query.getunicode("q", default="") or "").strip()
        try:
            page = min(MAX_PAGE, max(0, int(bottle.request.query.get("page", "0"))))
        except ValueError:
            page = 0
        try:
            info = mb.folder(folder)
        except (FolderNotFound, MailboxError) as exc:
            raise bottle.HTTPError(404, "No such folder") from exc
        if q:
            uids = sorted(mb.search_text(folder, q), reverse=True)
            total = len(uids)
            chunk = uids[page * PAGE : (page + 1) * PAGE]
            infos = mb.infos(folder, chunk)
            messages = [infos[u] for u in chunk if u in infos]
        else:
            total = info.exists
            messages = mb.messages(folder, offset=page * PAGE, limit=PAGE)
        return web.render(
            "mail/list.html",
            folders=mb.folders(),
            folder=folder,
            messages=messages,
            q=q,
            page=page,
            has_next=(page + 1) * PAGE < total,
            fmt_date=functools.partial(fmt_date, tz=localtime.zone(web.data_dir)),
            notice=notice_text(bottle.request.query, translator(web.lang())),
        )

    @app.get("/mail/read")
    def read() -> str:
        user, mb = mailbox()
        folder, uid = folder_param(), uid_param()
        info = info_or_404(mb, folder, uid)
        top = mb.structure(folder, uid)
        html_part, plain_part = mailrender.choose_body(top)
        text = ""
        if plain_part is not None and html_part is None:
            text = mailrender.part_text(mb.open_message(folder, uid), plain_part)
        remote_images = False
        if html_part is not None:
            remote_images = mailrender.has_remote_images(mailrender.part_text(mb.open_message(folder, uid), html_part))
        if not info.seen:
            mb.set_flags(folder, [uid], ["\\Seen"], mode="add")
        hdr = mb.headers(folder, uid)
        show = bottle.request.query.get("images") == "1"
        return web.render(
            "mail/read.html",
            folders=mb.folders(),
            folder=folder,
            uid=uid,
            info=info,
            headers={k: decode_words(hdr.get(k, "") or "") for k in ("From", "To", "Cc", "Date", "Subject")},
            text=text,
            has_html=html_part is not None,
            remote_images=remote_images,
            show_images=show,
            body_url="/mail/body?" + bottle.urlencode({"folder": folder, "uid": uid, "images": "1" if show else "0"}),
            attachments=mailrender.attachments(top),
            flagged="\\Flagged" in info.flags,
        )

    @app.get("/mail/body")
    def body() -> str:
        user, mb = mailbox()
        folder, uid = folder_param(), uid_param()
        info_or_404(mb, folder, uid)
        html_part, _ = mailrender.choose_body(mb.structure(folder, uid))
        if html_part is None:
            raise bottle.HTTPError(404, "No HTML body")
        show = bottle.request.query.get("images") == "1"
        clean = mailrender.sanitize_html(mailrender.part_text(mb.open_message(folder, uid), html_part), show)
        bottle.request.environ["gk.csp"] = BODY_CSP.format(extra=" https: http:" if show else "")
        bottle.response.content_type = "text/html; charset=utf-8"
        return '<!doctype html><meta charset="utf-8"><base target="_blank">' + clean

    @app.get("/mail/part")
    def part() -> Any:
        user, mb = mailbox()
        folder, uid = folder_param(), uid_param()
        info_or_404(mb, folder, uid)
        top = mb.structure(folder, uid)
        try:
            path = [int(x) for x in (bottle.request.query.get("part") or "").split(".")]
        except ValueError as exc:
            raise bottle.HTTPError(400, "bad part") from exc
        p = find_part(top, path)
        if p is None or p.is_multipart:
            raise bottle.HTTPError(404, "No such part")
        name = mailrender.part_filename(p)
        bottle.response.content_type = "application/octet-stream"
        bottle.response.set_header(
            "Content-Disposition", f"attachment; filename*=UTF-8''{bottle.urlquote(name.encode('utf-8'))}"
        )
        bottle.request.environ["gk.csp"] = "default-src 'none'; sandbox"
        return mailrender.stream_part(mb.open_message(folder, uid), p)

    @app.post("/mail/flag")
    def flag() -> None:
        user, mb = mailbox()
        folder, uid = forms.text("folder") or "INBOX", uid_param(forms.text("uid"))
        info_or_404(mb, folder, uid)
        flag_name = FLAGS.get(forms.text("flag"))
        if not flag_name:
            raise bottle.HTTPError(400, "unknown flag")
        mb.set_flags(folder, [uid], [flag_name], mode="add" if forms.text("on") == "1" else "remove")
        target = forms.text("back") or "read"
        if target == "list":
            raise bottle.redirect(back_url(folder))
        raise bottle.redirect("/mail/read?" + bottle.urlencode({"folder": folder, "uid": uid}))

    @app.post("/mail/move")
    def move() -> None:
        user, mb = mailbox()
        folder, uid = forms.text("folder") or "INBOX", uid_param(forms.text("uid"))
        info_or_404(mb, folder, uid)
        dest = forms.text("dest")
        try:
            mb.move(folder, [uid], dest)
        except (FolderNotFound, MailboxError) as exc:
            raise bottle.HTTPError(400, str(exc)) from exc
        raise bottle.redirect(back_url(folder))

    @app.post("/mail/delete")
    def delete() -> None:
        user, mb = mailbox()
        folder, uid = forms.text("folder") or "INBOX", uid_param(forms.text("uid"))
        info_or_404(mb, folder, uid)
        mb.delete_messages(folder, [uid])
        raise bottle.redirect(back_url(folder))

    # -- compose -------------------------------------------------------------------------
    @app.get("/mail/compose")
    def compose() -> str:
        user, mb = mailbox()
        q = bottle.request.query
        mode = q.get("mode", "")
        draft = {"to": q.getunicode("to", default="") or "", "cc": "", "subject": "", "body": "", "ref": ""}
        if mode in ("reply", "forward"):
            folder, uid = folder_param(), uid_param()
            info_or_404(mb, folder, uid)
            hdr = mb.headers(folder, uid)
            subject = decode_words(hdr.get("Subject", "") or "")
            top = mb.structure(folder, uid)
            html_part, plain_part = mailrender.choose_body(top)
            quoted = ""
            if plain_part is not None:
                quoted = mailrender.part_text(mb.open_message(folder, uid), plain_part)
            elif html_part is not None:
                quoted = mailrender.html_to_text(mailrender.part_text(mb.open_message(folder, uid), html_part))
            sender = decode_words(hdr.get("Reply-To", "") or hdr.get("From", "") or "")
            if mode == "reply":
                draft["to"] = sender
                draft["subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
                draft["body"] = f"\n\n{sender} wrote:\n" + "\n".join("> " + ln for ln in quoted[:20000].splitlines())
                draft["ref"] = (hdr.get("Message-ID", "") or "").strip()
            else:
                draft["subject"] = subject if subject.lower().startswith("fwd:") else f"Fwd: {subject}"
                draft["body"] = "\n\n(The original message is attached.)\n"
                draft["fwd_folder"], draft["fwd_uid"] = folder, str(uid)
        return web.render("mail/compose.html", draft=draft, errors={}, folders=mb.folders(), folder="")

    @app.post("/mail/send")
    def send() -> str:
        from gk.mail.submission import SubmissionError, submit

        user, mb = mailbox()
        _ = translator(web.lang())
        if bottle.request.content_length > MAX_COMPOSE:
            raise bottle.HTTPError(413, "The message is too large.")
        draft = {k: forms.raw(k) for k in ("to", "cc", "subject", "body", "ref", "fwd_folder", "fwd_uid")}
        errors: dict[str, str] = {}
        rcpts = [a for _n, a in getaddresses([draft["to"], draft["cc"]]) if a]
        if not rcpts or any("@" not in a for a in rcpts):
            errors["to"] = "Enter at least one address such as name@example.org."
        if errors:
            bottle.response.status = 400
            return web.render("mail/compose.html", draft=draft, errors=errors, folders=mb.folders(), folder="")
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = email.utils.formataddr((user.display_name, user.address)) if user.display_name else user.address
        msg["To"] = draft["to"]
        if draft["cc"].strip():
            msg["Cc"] = draft["cc"]
        msg["Subject"] = draft["subject"]
        msg["Date"] = email.utils.format_datetime(localtime.now(web.data_dir))
        msg["Message-ID"] = email.utils.make_msgid(domain=user.domain)
        if draft["ref"]:
            msg["In-Reply-To"] = draft["ref"]
            msg["References"] = draft["ref"]
        msg["User-Agent"] = "GK webmail"
        msg.set_content(draft["body"])
        for upload in bottle.request.files.getall("attachment"):
            if not upload.raw_filename:
                continue
            data = upload.file.read(MAX_COMPOSE + 1)
            ctype = upload.content_type or mimetypes.guess_type(upload.raw_filename)[0] or "application/octet-stream"
            maintype, _s, subtype = ctype.partition("/")
            name = upload.raw_filename.encode("latin-1", "replace").decode("utf-8", "replace")
            msg.add_attachment(
                data, maintype=maintype or "application", subtype=subtype or "octet-stream", filename=name
            )
        if draft["fwd_folder"] and draft["fwd_uid"]:
            uid = uid_param(draft["fwd_uid"])
            info_or_404(mb, draft["fwd_folder"], uid)
            original = mb.message_bytes(draft["fwd_folder"], uid)
            msg.add_attachment(original, maintype="message", subtype="rfc822", filename="forwarded.eml")
        data = msg.as_bytes()
        try:
            result = submit(ctx, user, data, rcpts)
        except SubmissionError as exc:
            bottle.response.status = 400
            errors["to"] = str(exc)
            return web.render("mail/compose.html", draft=draft, errors=errors, folders=mb.folders(), folder="")
        try:
            mb.append("Sent", data, flags=("\\Seen",))
        except MailboxError:
            pass
        count = len(result.delivered) + len(result.queued)
        raise bottle.redirect("/mail?" + bottle.urlencode({"folder": "INBOX", "notice": "sent", "count": count}))


def notice_text(query: Any, _: Any) -> str:
    """The success banner for ``?notice=<key>``: only keys in ``NOTICES`` show (translated), so a
    link cannot make the UI print an attacker's text; ``count`` must be a small number."""
    message = NOTICES.get(query.get("notice", ""))
    if message is None:
        return ""
    count = query.get("count", "")
    text = str(_(message))
    return f"{text} ({int(count)})" if count.isdigit() and len(count) <= 6 else text


def fmt_date(ts: int, tz: datetime.tzinfo | None = None) -> str:
    """A message date in the list: the time for the last 20 hours, else the day (owner's zone)."""
    t = datetime.datetime.fromtimestamp(ts, tz)
    return t.strftime("%H:%M") if time.time() - ts < 20 * 3600 else t.strftime("%Y-%m-%d")
