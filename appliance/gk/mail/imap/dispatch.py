"""Dispatch: one command line → its handler, through a table of (handler, states allowed), and
every refusal or failure → a tagged reply (BAD, NO with a response code, or ``NO [SERVERBUG]``
when the server itself failed, logged with its traceback: the session goes on). Only the
connection's errors (``protocol.is_network_error``) and LOGOUT end the session.

The table names the mixins' functions (``FolderCommands.cmd_select`` …), not ``Session``'s, so
this module sits below ``session`` and imports nothing above the command mixins."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import gevent

from gk.mail.imap import compress, quota
from gk.mail.imap.auth import AuthCommands
from gk.mail.imap.connection import AUTH, LOGOUT, NOTAUTH, SELECTED, Connection, Logout
from gk.mail.imap.folders import FolderCommands
from gk.mail.imap.idle import IdleCommands
from gk.mail.imap.messages import MessageCommands
from gk.mail.imap.parser import Parser
from gk.mail.imap.protocol import STORAGE_ERROR_TEXT, BadCommand, NoCommand, is_network_error, storage_error_code
from gk.mail.mailbox import MailboxError

log = logging.getLogger("gk.imap")

STATE_TEXT = {
    NOTAUTH: "before logging in",
    AUTH: "without a selected folder",
    SELECTED: "in this state",
    LOGOUT: "after LOGOUT",
}
_ANY = (NOTAUTH, AUTH, SELECTED)
_AUTHED = (AUTH, SELECTED)
UID_COMMANDS = ("FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE")
COMMANDS: dict[str, tuple[Callable[..., None], tuple[str, ...]]] = {
    "CAPABILITY": (Connection.cmd_capability, _ANY),
    "NOOP": (IdleCommands.cmd_noop, _ANY),
    "LOGOUT": (Connection.cmd_logout, _ANY),
    "ID": (Connection.cmd_id, _ANY),
    "STARTTLS": (AuthCommands.cmd_starttls, (NOTAUTH,)),
    "LOGIN": (AuthCommands.cmd_login, (NOTAUTH,)),
    "AUTHENTICATE": (AuthCommands.cmd_authenticate, (NOTAUTH,)),
    "ENABLE": (FolderCommands.cmd_enable, _AUTHED),
    "NAMESPACE": (FolderCommands.cmd_namespace, _AUTHED),
    "SELECT": (FolderCommands.cmd_select, _AUTHED),
    "EXAMINE": (FolderCommands.cmd_examine, _AUTHED),
    "CREATE": (FolderCommands.cmd_create, _AUTHED),
    "DELETE": (FolderCommands.cmd_delete, _AUTHED),
    "RENAME": (FolderCommands.cmd_rename, _AUTHED),
    "SUBSCRIBE": (FolderCommands.cmd_subscribe, _AUTHED),
    "UNSUBSCRIBE": (FolderCommands.cmd_unsubscribe, _AUTHED),
    "LIST": (FolderCommands.cmd_list, _AUTHED),
    "LSUB": (FolderCommands.cmd_lsub, _AUTHED),
    "STATUS": (FolderCommands.cmd_status, _AUTHED),
    "APPEND": (FolderCommands.cmd_append, _AUTHED),
    "IDLE": (IdleCommands.cmd_idle, _AUTHED),
    "CHECK": (IdleCommands.cmd_check, (SELECTED,)),
    "CLOSE": (MessageCommands.cmd_close, (SELECTED,)),
    "UNSELECT": (MessageCommands.cmd_unselect, (SELECTED,)),
    "EXPUNGE": (MessageCommands.cmd_expunge, (SELECTED,)),
    "SEARCH": (MessageCommands.cmd_search, (SELECTED,)),
    "FETCH": (MessageCommands.cmd_fetch, (SELECTED,)),
    "STORE": (MessageCommands.cmd_store, (SELECTED,)),
    "COPY": (MessageCommands.cmd_copy, (SELECTED,)),
    "MOVE": (MessageCommands.cmd_move, (SELECTED,)),
    "COMPRESS": (compress.cmd_compress, _AUTHED),
    "GETQUOTAROOT": (quota.cmd_getquotaroot, _AUTHED),
    "GETQUOTA": (quota.cmd_getquota, _AUTHED),
    "SETQUOTA": (quota.cmd_setquota, _AUTHED),
}


def handle(session: Connection, parts: list[Any]) -> None:
    """Run one command (its line and literals, as the reader gave them) and write its tagged reply."""
    p = Parser(parts)
    tag = "*"
    try:
        tag = p.tag()
        p.sp()
        name = p.atom("a command name").upper()
        uid = False
        if name == "UID":
            p.sp()
            uid = True
            name = p.atom("a command after UID").upper()
            if name not in UID_COMMANDS:
                raise BadCommand(f"UID {name} is not a command")
        entry = COMMANDS.get(name)
        if entry is None:
            raise BadCommand(f"unknown command {name}")
        fn, states = entry
        if session.state not in states:
            raise BadCommand(f"{name} is not allowed {STATE_TEXT[session.state]}")
        if uid:
            fn(session, tag, p, True)
        else:
            fn(session, tag, p)
    except BadCommand as exc:
        session.write(f"{tag} BAD {exc}\r\n".encode("utf-8", "replace"))
    except NoCommand as exc:
        code = f"[{exc.code}] " if exc.code else ""
        session.write(f"{tag} NO {code}{exc}\r\n".encode("utf-8", "replace"))
    except MailboxError as exc:
        code = f"[{exc.code}] " if exc.code else ""
        session.write(f"{tag} NO {code}{exc}\r\n".encode("utf-8", "replace"))
    except (OSError, sqlite3.Error) as exc:
        storage = storage_error_code(exc)  # the disk or the index failed, not the client's socket
        if storage is None and is_network_error(exc):
            raise
        if storage is None:  # a bug (a file missing under a rename race …): logged, and the session
            # goes on; before issue 11 such an OSError ended the session without a word (EOF)
            log.exception("imap command failed (user %s)", session.user or "-")
            session.write(f"{tag} NO [SERVERBUG] internal error; the session goes on\r\n".encode())
        else:
            log.warning("imap command failed (user %s): storage: %s", session.user or "-", exc)
            session.write(f"{tag} NO [{storage}] {STORAGE_ERROR_TEXT[storage]}\r\n".encode())
    except (Logout, gevent.GreenletExit):
        raise
    except Exception:
        log.exception("imap command failed (user %s)", session.user or "-")
        session.write(f"{tag} NO [SERVERBUG] internal error; the session goes on\r\n".encode())
