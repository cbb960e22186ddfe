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
import email.utils
import functools
import mimetypes
import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

import bottle

from gk import localtime
from gk.accounts import User
from gk.locale import N_
from gk.mail.mailbox import FolderNotFound, MailboxError, MessageInfo, UserMailbox, get_store, reading
from gk.mail.mailbox.reading import decode_words
from gk.web import forms, mailrender
from gk.web.app import Web
from gk.web.i18n import translator

if TYPE_CHECKING:
    from gk.context import AppContext

PAGE = 50
MAX_PAGE = 1_000_000  # 50 million messages: beyond any folder, within SQLite's OFFSET
MAX_UID = 2**32 - 1
# the banner of the message list: a known key from the query, never text from the URL itself
NOTICES = {"sent": "Message sent."}
MAX_COMPOSE = 25 * 1024 * 1024
# the compose form's fields that become header values: a line break in one (a crafted post; a
# browser's one-line input strips them) is a space, not a ValueError from ``email`` (a 500)
HEADER_FIELDS = ("to", "cc", "subject")
FLAGS = {"seen": "\\Seen", "flagged": "\\Flagged"}
BULK_FLAGS = {
    "read": ("\\Seen", "add"),
    "unread": ("\\Seen", "remove"),
    "flag": ("\\Flagged", "add"),
    "unflag": ("\\Flagged", "remove"),
}
BODY_CSP = (
    "default-src 'none'; img-src data:{extra}; style-src 'unsafe-inline'; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'self'; sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox"
)


def mailbox(web: Web) -> tuple[User, UserMailbox]:
    """The logged-in user and their mailbox (never another's)."""
    user = web.require_user()
    return user, get_store(web.ctx).user(user.address)


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


def info_or_404(mb: UserMailbox, folder: str, uid: int) -> MessageInfo:
    try:
        return mb.info(folder, uid)
    except (FolderNotFound, MailboxError, KeyError, LookupError) as exc:
        raise bottle.HTTPError(404, "No such message") from exc


def back_url(folder: str) -> str:
    return "/mail?" + bottle.urlencode({"folder": folder})


def mail_list(web: Web) -> str:
    user, mb = mailbox(web)
    folder = folder_param()
    q = (bottle.request.query.getunicode("q", default="") or "").strip()
    everywhere = bottle.request.query.get("scope") == "all"
    try:
        page = min(MAX_PAGE, max(0, int(bottle.request.query.get("page", "0"))))
    except ValueError:
        page = 0
    try:
        info = mb.folder(folder)
    except (FolderNotFound, MailboxError) as exc:
        raise bottle.HTTPError(404, "No such folder") from exc
    folders = mb.folders()
    lang, tz = web.lang(), localtime.zone(web.data_dir)
    rows: list[dict[str, Any]] = []
    if q:
        hits: list[tuple[int, str, Any]] = []
        for name in [f.name for f in folders] if everywhere else [folder]:
            try:
                uids = sorted(mb.search_text(name, q), reverse=True)[: (page + 1) * PAGE + 1]
                found = mb.infos(name, uids)
            except (FolderNotFound, MailboxError):
                continue
            hits += [(found[u].internaldate, name, found[u]) for u in uids if u in found]
        hits.sort(key=lambda h: (h[0], h[2].uid), reverse=True)
        total = len(hits)
        rows = [list_row(mb, name, m, 1, tz, lang) for _t, name, m in hits[page * PAGE : (page + 1) * PAGE]]
    else:
        total = info.exists
        groups = thread_groups(mb.messages(folder, offset=page * PAGE, limit=PAGE))
        rows = [list_row(mb, folder, m, n, tz, lang) for m, n in groups]
    return web.render(
        "mail/list.html",
        folders=folders,
        folder=folder,
        rows=rows,
        q=q,
        everywhere=everywhere,
        page=page,
        has_next=(page + 1) * PAGE < total,
        recipients_view=info.special_use in ("\\Sent", "\\Drafts"),
        notice=notice_text(bottle.request.query, translator(web.lang())),
    )


def read(web: Web) -> str:
    user, mb = mailbox(web)
    folder, uid = folder_param(), uid_param()
    info = info_or_404(mb, folder, uid)
    top = mb.structure(folder, uid)
    html_part, plain_part = reading.choose_body(top)
    text = ""
    remote_images = False
    with mb.open_message(folder, uid) as fh:
        if plain_part is not None and html_part is None:
            text = reading.part_text(fh, plain_part)
        if html_part is not None:
            remote_images = mailrender.has_remote_images(reading.part_text(fh, html_part))
        attachments = reading.attachments(top, fh)
    if not info.seen:
        mb.set_flags(folder, [uid], ["\\Seen"], mode="add")
    hdr = mb.headers(folder, uid)
    show = bottle.request.query.get("images") == "1"
    lang, tz = web.lang(), localtime.zone(web.data_dir)
    from gk.dav.web import reader_invitation  # an invitation's box (None: not one, or DAV off)

    invitation = reader_invitation(web, mb, folder, uid, top)
    return web.render(
        "mail/read.html",
        invitation=invitation,
        date=fmt_header_date(hdr.get("Date", ""), info.internaldate, tz, lang),
        thread=thread_of(mb, folder, uid, hdr, tz, lang),
        fmt_size=functools.partial(fmt_size, lang=lang),
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
        attachments=attachments,
        flagged="\\Flagged" in info.flags,
    )


def body(web: Web) -> str:
    user, mb = mailbox(web)
    folder, uid = folder_param(), uid_param()
    info_or_404(mb, folder, uid)
    html = reading.body_html(mb, folder, uid)
    if html is None:
        raise bottle.HTTPError(404, "No HTML body")
    show = bottle.request.query.get("images") == "1"
    clean = mailrender.sanitize_html(html, show)
    bottle.request.environ["gk.csp"] = BODY_CSP.format(extra=" https: http:" if show else "")
    bottle.response.content_type = "text/html; charset=utf-8"
    return '<!doctype html><meta charset="utf-8"><base target="_blank">' + mailrender.BASE_STYLE + clean


def part(web: Web) -> Any:
    user, mb = mailbox(web)
    folder, uid = folder_param(), uid_param()
    info_or_404(mb, folder, uid)
    path = bottle.request.query.get("part") or ""
    try:
        [int(x) for x in path.split(".")]
    except ValueError as exc:
        raise bottle.HTTPError(400, "bad part") from exc
    found = reading.attachment(mb, folder, uid, path)
    if found is None:
        raise bottle.HTTPError(404, "No such part")
    described, chunks = found
    name = described.name
    bottle.response.content_type = "application/octet-stream"
    bottle.response.set_header(
        "Content-Disposition", f"attachment; filename*=UTF-8''{bottle.urlquote(name.encode('utf-8'))}"
    )
    bottle.request.environ["gk.csp"] = "default-src 'none'; sandbox"
    return chunks  # closes the message file when the response ends (or is cut)


def flag(web: Web) -> None:
    user, mb = mailbox(web)
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


def move(web: Web) -> None:
    user, mb = mailbox(web)
    folder, uid = forms.text("folder") or "INBOX", uid_param(forms.text("uid"))
    info_or_404(mb, folder, uid)
    dest = forms.text("dest")
    try:
        mb.move(folder, [uid], dest)
    except (FolderNotFound, MailboxError) as exc:
        raise bottle.HTTPError(400, str(exc)) from exc
    raise bottle.redirect(back_url(folder))


def delete(web: Web) -> None:
    user, mb = mailbox(web)
    folder, uid = forms.text("folder") or "INBOX", uid_param(forms.text("uid"))
    info_or_404(mb, folder, uid)
    mb.delete_messages(folder, [uid])
    raise bottle.redirect(back_url(folder))


def bulk(web: Web) -> None:
    """The list's checkboxes: mark read/unread, flag, move or delete the selected messages
    (one store call per action, however many are selected)."""
    user, mb = mailbox(web)
    folder = forms.text("folder") or "INBOX"
    uids = sorted({uid_param(raw) for raw in forms.all_of("uid")})
    action = forms.text("action")
    if uids:
        try:
            if action in BULK_FLAGS:
                flag_name, mode = BULK_FLAGS[action]
                mb.set_flags(folder, uids, [flag_name], mode=mode)
            elif action == "move":
                mb.move(folder, uids, forms.text("dest"))
            elif action == "delete":
                mb.delete_messages(folder, uids)
            else:
                raise bottle.HTTPError(400, "unknown action")
        except (FolderNotFound, MailboxError) as exc:
            raise bottle.HTTPError(400, str(exc)) from exc
    raise bottle.redirect(back_url(folder))


def folders_page(web: Web) -> str:
    user, mb = mailbox(web)
    return web.render("mail/folders.html", folders=mb.folders(), folder="", error="")


def folders_change(web: Web) -> Any:
    """Create, rename or delete a folder (special-use folders and INBOX keep their names:
    the store refuses, and the refusal is shown)."""
    user, mb = mailbox(web)
    _ = translator(web.lang())
    action, name = forms.text("action"), forms.text("name").strip()
    try:
        if action == "create":
            mb.create_folder(name)
        elif action == "rename":
            mb.rename_folder(forms.text("old"), name)
        elif action == "delete":
            if forms.text("confirm") != "1":  # the form's checkbox: deleting drops the messages
                raise MailboxError(str(_("Tick the box to confirm.")))
            mb.delete_folder(forms.text("old"))
        else:
            raise bottle.HTTPError(400, "unknown action")
    except (FolderNotFound, MailboxError, ValueError) as exc:
        bottle.response.status = 400
        error = f"{_('The folder could not be changed')}: {exc}"
        return web.render("mail/folders.html", folders=mb.folders(), folder="", error=error)
    raise bottle.redirect("/mail/folders")


# -- compose -------------------------------------------------------------------------
def compose(web: Web) -> str:
    user, mb = mailbox(web)
    q = bottle.request.query
    mode = q.get("mode", "")
    draft = {"to": q.getunicode("to", default="") or "", "cc": "", "subject": "", "body": ""}
    draft.update({"ref": "", "refs": "", "orig_folder": "", "orig_uid": "", "draft_uid": ""})
    if mode in ("reply", "replyall", "forward", "draft"):
        folder, uid = folder_param(), uid_param()
        info_or_404(mb, folder, uid)
        hdr = mb.headers(folder, uid)
        subject = decode_words(hdr.get("Subject", "") or "")
        quoted = reading.body_text(mb, folder, uid)
        if mode == "draft":
            draft.update(
                to=decode_words(hdr.get("To", "") or ""),
                cc=decode_words(hdr.get("Cc", "") or ""),
                subject=subject,
                body=quoted,
                ref=" ".join(message_ids(hdr.get("In-Reply-To", ""))),
                refs=" ".join(message_ids(hdr.get("References", ""))),
                draft_uid=str(uid),
            )
            saved = q.get("saved") == "1"
            kept = reading.message_attachments(mb, folder, uid)
            return web.render(
                "mail/compose.html",
                draft=draft,
                errors={},
                folders=mb.folders(),
                folder="Drafts",
                saved=saved,
                kept=kept,
                fmt_size=functools.partial(fmt_size, lang=web.lang()),
            )
        sender = address_list(hdr.get("Reply-To", "") or hdr.get("From", "") or "")
        own_id = message_ids(hdr.get("Message-ID", ""))
        draft["refs"] = " ".join(thread_references(hdr))
        draft["orig_folder"], draft["orig_uid"] = folder, str(uid)
        if mode in ("reply", "replyall"):
            draft["to"] = sender
            if mode == "replyall":
                draft["cc"] = reply_all_cc(hdr, sender, own_addresses(web.ctx, user))
            draft["subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
            wrote = str(translator(web.lang())(N_("{sender} wrote:"))).replace("{sender}", sender)
            draft["body"] = f"\n\n{wrote}\n" + "\n".join("> " + ln for ln in quoted[:20000].splitlines())
            draft["ref"] = own_id[0] if own_id else ""
        else:
            draft["subject"] = subject if subject.lower().startswith("fwd:") else f"Fwd: {subject}"
            draft["body"] = "\n\n" + str(translator(web.lang())(N_("(The original message is attached.)"))) + "\n"
            draft["fwd_folder"], draft["fwd_uid"] = folder, str(uid)
    return web.render("mail/compose.html", draft=draft, errors={}, folders=mb.folders(), folder="")


def send(web: Web) -> str:
    from gk.mail.submission import SubmissionError, submit

    user, mb = mailbox(web)
    _ = translator(web.lang())
    if bottle.request.content_length > MAX_COMPOSE:
        raise bottle.HTTPError(413, "The message is too large.")
    fields = ("to", "cc", "subject", "body", "ref", "refs", "fwd_folder", "fwd_uid", "orig_folder", "orig_uid")
    draft = {k: forms.raw(k) for k in (*fields, "draft_uid")}
    for key in HEADER_FIELDS:  # one line each, as a browser's text input sends them
        draft[key] = " ".join(draft[key].splitlines())
    saving = forms.text("action") == "save"
    errors: dict[str, str] = {}
    rcpts = [a for _n, a in getaddresses([draft["to"], draft["cc"]]) if a]
    if not saving and (not rcpts or any("@" not in a for a in rcpts)):
        errors["to"] = str(_("Enter at least one address such as name@example.org."))
    if errors:
        bottle.response.status = 400
        return web.render("mail/compose.html", draft=draft, errors=errors, folders=mb.folders(), folder="")
    msg = build_message(web, user, draft)
    for upload in bottle.request.files.getall("attachment"):
        if not upload.raw_filename:
            continue
        data = upload.file.read(MAX_COMPOSE + 1)
        name = upload_filename(upload.raw_filename)
        ctype = upload.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        maintype, _s, subtype = ctype.partition("/")
        # the email package writes a non-ASCII name as RFC 2231 ``filename*=utf-8''…``
        msg.add_attachment(data, maintype=maintype or "application", subtype=subtype or "octet-stream", filename=name)
    if draft["fwd_folder"] and draft["fwd_uid"]:
        uid = uid_param(draft["fwd_uid"])
        info_or_404(mb, draft["fwd_folder"], uid)
        original = mb.message_bytes(draft["fwd_folder"], uid)
        msg.add_attachment(original, maintype="message", subtype="rfc822", filename="forwarded.eml")
    old_draft = draft["draft_uid"]
    keep_draft_attachments(mb, msg, old_draft, forms.all_of("keep"))
    data = msg.as_bytes()
    if saving:
        _v, new_uid = mb.append("Drafts", data, flags=("\\Draft", "\\Seen"))
        drop_draft(mb, old_draft)
        raise bottle.redirect(
            "/mail/compose?" + bottle.urlencode({"mode": "draft", "folder": "Drafts", "uid": new_uid, "saved": "1"})
        )
    try:
        result = submit(web.ctx, user, data, rcpts)
    except SubmissionError as exc:
        bottle.response.status = 400
        errors["to"] = str(exc)
        return web.render("mail/compose.html", draft=draft, errors=errors, folders=mb.folders(), folder="")
    try:
        mb.append("Sent", data, flags=("\\Seen",))
    except MailboxError:
        pass
    drop_draft(mb, old_draft)
    if draft["orig_folder"] and draft["orig_uid"] and draft["ref"]:
        try:  # the original is marked answered, as IMAP clients do
            mb.set_flags(draft["orig_folder"], [uid_param(draft["orig_uid"])], ["\\Answered"], mode="add")
        except (MailboxError, LookupError, KeyError, bottle.HTTPError):
            pass
    count = len(result.delivered) + len(result.queued)
    raise bottle.redirect("/mail?" + bottle.urlencode({"folder": "INBOX", "notice": "sent", "count": count}))


def list_row(
    mb: UserMailbox, folder: str, m: MessageInfo, count: int, tz: datetime.tzinfo, lang: str
) -> dict[str, Any]:
    """One line of the message list: who (the recipients in Sent and Drafts), subject, date in
    the owner's zone and language, a preview line and an attachment marker. Cost per row: the
    stored MIME tree (from the index) and at most ``reading.PREVIEW_READ`` bytes of the body."""
    sent = folder in ("Sent", "Drafts")
    try:
        top = mb.structure(folder, m.uid)
        with mb.open_message(folder, m.uid) as fh:
            preview = reading.preview(fh, top)
        attached = bool(reading.attachments(top))
    except (MailboxError, LookupError, OSError):
        preview, attached = "", False
    return {
        "folder": folder,
        "uid": m.uid,
        "who": addresses_text((m.envelope[5] or []) + (m.envelope[6] or [])) if sent else m.sender,
        "sent": sent,
        "subject": m.subject,
        "date": fmt_date(m.internaldate, tz, lang),
        "seen": m.seen,
        "flagged": "\\Flagged" in m.flags,
        "answered": "\\Answered" in m.flags,
        "draft": folder == "Drafts",
        "count": count,
        "preview": preview,
        "attached": attached,
    }


def keep_draft_attachments(mb: UserMailbox, msg: EmailMessage, raw_uid: str, paths: list[str]) -> None:
    """Carry the attachments of a resumed draft (those still ticked in the form) into the new
    version or the sent message: each decoded from the old draft and attached again under its
    own name and type. Bounded by ``MAX_COMPOSE`` in all."""
    if not paths or not (raw_uid.isascii() and raw_uid.isdigit() and 0 < int(raw_uid) <= MAX_UID):
        return
    try:
        top = mb.structure("Drafts", int(raw_uid))
    except (MailboxError, LookupError, KeyError):
        return
    wanted = {a.path for a in reading.attachments(top)} & set(paths)
    total = 0
    with mb.open_message("Drafts", int(raw_uid)) as fh:
        for path, part in reading.numbered_parts(top):
            if path not in wanted:
                continue
            data = b"".join(reading.decoded_chunks(fh, part))
            total += len(data)
            if total > MAX_COMPOSE:
                raise bottle.HTTPError(413, "The message is too large.")
            name = reading.part_filename(part)
            if part.maintype == "message" and part.subtype == "rfc822":
                msg.add_attachment(data, maintype="message", subtype="rfc822", filename=name)
            else:
                msg.add_attachment(data, maintype=part.maintype, subtype=part.subtype, filename=name)


def drop_draft(mb: UserMailbox, raw_uid: str) -> None:
    """Remove the draft a sent or re-saved message replaces (for good: Drafts is not Trash)."""
    if not (raw_uid.isascii() and raw_uid.isdigit() and 0 < int(raw_uid) <= MAX_UID):
        return
    try:
        mb.set_flags("Drafts", [int(raw_uid)], ["\\Deleted"], mode="add")
        mb.expunge("Drafts", [int(raw_uid)])
    except (MailboxError, LookupError, KeyError):
        pass


def build_message(web: Web, user: User, draft: dict[str, str]) -> EmailMessage:
    """The message headers and text body from the compose form: In-Reply-To names the message
    answered, References carries the whole chain (RFC 5322 §3.6.4) so every client threads it."""
    from email.policy import SMTP  # on first use: email.policy costs an idle box ~0.5 MB

    msg = EmailMessage(policy=SMTP)
    msg["From"] = email.utils.formataddr((user.display_name, user.address)) if user.display_name else user.address
    if draft["to"].strip():
        msg["To"] = draft["to"]
    if draft["cc"].strip():
        msg["Cc"] = draft["cc"]
    msg["Subject"] = draft["subject"]
    msg["Date"] = email.utils.format_datetime(localtime.now(web.data_dir))
    msg["Message-ID"] = email.utils.make_msgid(domain=user.domain)
    reply_to = message_ids(draft["ref"])[:1]
    refs = message_ids(draft["refs"])
    for mid in reply_to:
        if mid not in refs:
            refs.append(mid)
    if reply_to:
        msg["In-Reply-To"] = reply_to[0]
    if refs:
        msg["References"] = " ".join(refs[-MAX_REFERENCES:])
    msg["User-Agent"] = "GK webmail"
    msg.set_content(draft["body"])
    return msg


MSGID = re.compile(r"<[^<>\s]{1,250}>")
MAX_REFERENCES = 30  # kept: the first (thread root) and the last 29, as RFC 5322 §3.6.4 allows trimming


def message_ids(value: Any) -> list[str]:
    """The ``<id>`` tokens of a Message-ID/In-Reply-To/References value (nothing else survives:
    the form field cannot smuggle header text)."""
    return MSGID.findall(str(value or ""))


def thread_references(hdr: Any) -> list[str]:
    """References of a reply to ``hdr``: its References (or In-Reply-To) then its Message-ID."""
    refs = message_ids(hdr.get("References", "")) or message_ids(hdr.get("In-Reply-To", ""))[:1]
    own = message_ids(hdr.get("Message-ID", ""))[:1]
    out: list[str] = []
    for mid in refs + own:
        if mid not in out:
            out.append(mid)
    if len(out) > MAX_REFERENCES:
        out = out[:1] + out[-(MAX_REFERENCES - 1) :]
    return out


def own_addresses(ctx: AppContext, user: User) -> Callable[[str], bool]:
    """A predicate: is this address the user's own (plus-address or alias included)?"""
    from gk.mail.submission import owns_address

    return lambda addr: owns_address(ctx.accounts, user, addr)


def reply_all_cc(hdr: Any, reply_to: str, is_own: Any) -> str:
    """Cc of a reply-all: the original To and Cc minus the user's own addresses and the address
    already in To (each address once)."""
    seen = {a.lower() for _n, a in getaddresses([reply_to]) if a}
    out = []
    for name, addr in getaddresses([str(hdr.get("To", "") or ""), str(hdr.get("Cc", "") or "")]):
        name = decode_words(name)
        if not addr or "@" not in addr or addr.lower() in seen or is_own(addr):
            continue
        seen.add(addr.lower())
        out.append(display_address(name, addr))
    return ", ".join(out)


def address_list(value: Any) -> str:
    """A raw address header as form text: parsed first, then each name decoded (decoding first
    would split ``=?utf-8?q?Doe=2C_John?=`` at its comma)."""
    pairs = getaddresses([str(value or "")])
    return ", ".join(display_address(decode_words(n), a) for n, a in pairs if a)


def display_address(name: str, addr: str) -> str:
    """``Name <addr>`` for a form field, in plain Unicode (``formataddr`` would RFC 2047-encode it:
    the email package encodes once the message is built); quoted when the name has specials."""
    if not name:
        return addr
    if re.search(r'[()<>\[\]:;@\\,."]', name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{addr}>"


def upload_filename(raw: str) -> str:
    """An uploaded file's name as the browser meant it. Browsers send UTF-8; a server that read
    those bytes as Latin-1 gives mojibake, which is undone, but a name already right is kept
    (the old code's ``encode("latin-1", "replace")`` turned ``é`` into ``�``)."""
    try:
        name = raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        name = raw
    name = re.sub(r'[\x00-\x1f/\\"]', "_", name).strip()
    return name[:200] or "attachment"


def notice_text(query: Any, _: Any) -> str:
    """The success banner for ``?notice=<key>``: only keys in ``NOTICES`` show (translated), so a
    link cannot make the UI print an attacker's text; ``count`` must be a small number."""
    message = NOTICES.get(query.get("notice", ""))
    if message is None:
        return ""
    count = query.get("count", "")
    if message == NOTICES["sent"] and count.isdigit() and 1 < int(count) < 10**6:
        # said in words: "Message sent. (2)" left the reader guessing what the 2 counted
        return str(_("Message sent to {count} recipients.", count=int(count)))
    return str(_(message))


MONTHS = {
    "en": "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(),
    "fr": "janv. févr. mars avr. mai juin juil. août sept. oct. nov. déc.".split(),
}
DAYS = {"en": "Mon Tue Wed Thu Fri Sat Sun".split(), "fr": "lun. mar. mer. jeu. ven. sam. dim.".split()}


def fmt_date(ts: int, tz: datetime.tzinfo | None = None, lang: str = "en") -> str:
    """A message date in the list, in the owner's zone and the reader's language: the time for
    the last 20 hours, the day and month this year, else the full date."""
    t = datetime.datetime.fromtimestamp(ts, tz)
    months = MONTHS.get(lang, MONTHS["en"])
    if time.time() - ts < 20 * 3600:
        return t.strftime("%H:%M")
    if t.year == datetime.datetime.now(tz).year:
        return f"{t.day} {months[t.month - 1]}" if lang == "fr" else f"{months[t.month - 1]} {t.day}"
    return t.strftime("%d/%m/%Y") if lang == "fr" else t.strftime("%Y-%m-%d")


def fmt_full(t: datetime.datetime, lang: str) -> str:
    months, days = MONTHS.get(lang, MONTHS["en"]), DAYS.get(lang, DAYS["en"])
    if lang == "fr":
        return f"{days[t.weekday()]} {t.day} {months[t.month - 1]} {t.year}, {t:%H:%M}"
    return f"{days[t.weekday()]}, {months[t.month - 1]} {t.day}, {t.year}, {t:%H:%M}"


def fmt_header_date(value: Any, internaldate: int, tz: datetime.tzinfo, lang: str) -> str:
    """The ``Date:`` field shown in the owner's zone and language (the arrival time when the
    field is missing or unreadable)."""
    try:
        t = email.utils.parsedate_to_datetime(str(value or ""))
        if t.tzinfo is None:
            t = t.replace(tzinfo=datetime.UTC)
        t = t.astimezone(tz)
    except (TypeError, ValueError, IndexError, OverflowError):
        t = datetime.datetime.fromtimestamp(internaldate, tz)
    return fmt_full(t, lang)


def fmt_size(n: int, lang: str = "en") -> str:
    """Bytes for people: 980 bytes, 12 KB, 3.4 MB (French: octets, Ko, Mo, decimal comma)."""
    units = ("octets", "Ko", "Mo", "Go") if lang == "fr" else ("bytes", "KB", "MB", "GB")
    if n < 1000:
        return f"{n} {units[0]}"
    value, unit = float(n), 0
    while value >= 1000 and unit < 3:
        value, unit = value / 1000, unit + 1
    text = f"{value:.1f}" if value < 10 else f"{value:.0f}"
    return f"{text.replace('.', ',') if lang == 'fr' else text} {units[unit]}"


def addresses_text(entries: Any) -> str:
    """Display form of ENVELOPE address entries (name, adl, mailbox, host)."""
    out = []
    for entry in entries or []:
        name, _adl, local, host = entry
        if not local:
            continue
        addr = f"{local}@{host}" if host else local
        out.append(decode_words(name) if name else addr)
    return ", ".join(out)


def thread_groups(messages: list[Any]) -> list[tuple[Any, int]]:
    """The page's messages grouped into conversations (newest message first, with the count):
    messages linked by In-Reply-To/Message-ID within the page (ENVELOPE fields: no file read)."""
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    by_id: dict[str, int] = {}
    for i, m in enumerate(messages):
        mid = (message_ids(m.envelope[9]) or [""])[0] if len(m.envelope) > 9 else ""
        if mid:
            by_id.setdefault(mid, i)

    def join(i: int, j: int | None) -> None:
        if j is not None and find(j) != find(i):
            parent[find(i)] = find(j)

    by_subject: dict[str, list[int]] = {}
    is_reply: set[int] = set()
    for i, m in enumerate(messages):
        replies_to = message_ids(m.envelope[8]) if len(m.envelope) > 8 else []
        for ref in replies_to:
            join(i, by_id.get(ref))
        if replies_to:
            is_reply.add(i)
        if base_subject(m.subject):
            by_subject.setdefault(base_subject(m.subject), []).append(i)
    for same in by_subject.values():
        # a reply's parent may sit in another folder (our own reply, in Sent): replies join the
        # messages of the same subject, as JWZ threading does when the chain is missing here
        if len(same) > 1 and any(i in is_reply for i in same):
            for i in same[1:]:
                join(i, same[0])
    groups: dict[int, list[Any]] = {}
    for i, m in enumerate(messages):
        groups.setdefault(find(i), []).append(m)
    out = [(max(ms, key=lambda m: (m.internaldate, m.uid)), len(ms)) for ms in groups.values()]
    return sorted(out, key=lambda g: (g[0].internaldate, g[0].uid), reverse=True)


_REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|tr|aw|sv|antw)\s*(\[\d+\])?\s*:\s*)+", re.I)


def base_subject(subject: str) -> str:
    """The subject without reply/forward prefixes (Re:, Fwd:, TR:, AW: …), folded for comparison."""
    return " ".join(_REPLY_PREFIX.sub("", subject or "").split()).casefold()


THREAD_FOLDERS = ("INBOX", "Sent", "Archive")
MAX_THREAD = 100


def thread_of(mb: UserMailbox, folder: str, uid: int, hdr: Any, tz: datetime.tzinfo, lang: str) -> list[dict[str, Any]]:
    """The conversation a message belongs to, across this folder, INBOX, Sent and Archive, oldest
    first: the messages that carry the thread root (the first References id) in Message-ID,
    In-Reply-To or References. Cost: one indexed header search per folder."""
    root = (
        message_ids(hdr.get("References", ""))[:1]
        or message_ids(hdr.get("In-Reply-To", ""))[:1]
        or message_ids(hdr.get("Message-ID", ""))[:1]
    )
    if not root:
        return []
    crit = (
        "or",
        ("header", "Message-ID", root[0]),
        ("or", ("header", "References", root[0]), ("header", "In-Reply-To", root[0])),
    )
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name in dict.fromkeys((folder, *THREAD_FOLDERS)):
        try:
            uids = sorted(mb.search(name, crit))[-MAX_THREAD:]
            infos = mb.infos(name, uids)
        except (MailboxError, LookupError):
            continue
        sent = name in ("Sent", "Drafts")
        for u in uids:
            m = infos.get(u)
            if m is None:
                continue
            mid = (message_ids(m.envelope[9]) or [f"{name}/{u}"])[0]
            if mid in seen:
                continue
            seen.add(mid)
            who = addresses_text((m.envelope[5] or []) + (m.envelope[6] or [])) if sent else m.sender
            out.append(
                {
                    "folder": name,
                    "uid": u,
                    "who": who,
                    "sent": sent,
                    "subject": m.subject,
                    "date": fmt_date(m.internaldate, tz, lang),
                    "ts": m.internaldate,
                    "current": name == folder and u == uid,
                }
            )
    out.sort(key=lambda e: (e["ts"], e["uid"]))
    return out if len(out) > 1 else []
