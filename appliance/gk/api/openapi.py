"""The OpenAPI 3.1 description of ``/api/v1``, served at ``/api/v1/openapi.json``.

Written by hand beside the routes (``service.py``) and checked against the real responses by
``tests/integration/test_api_mail.py`` with openapi-core: a field added to a response without
its schema here, or a schema promising a field never sent, fails those tests.
"""

from __future__ import annotations

from typing import Any

import gk


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
}
NOT_FOUND = {"404": {"$ref": "#/components/responses/NotFound"}}
MID = {
    "name": "mid",
    "in": "path",
    "required": True,
    "description": "a message id from a listing (bound to its folder and user)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 1200},
}
STR = {"type": "string"}
INT = {"type": "integer"}
DATE = {"type": "string", "format": "date-time"}
ADDRESS = {
    "type": "object",
    "properties": {"name": STR, "address": STR},
    "required": ["name", "address"],
}
SUMMARY_FIELDS: dict[str, Any] = {
    "id": STR,
    "folder": STR,
    "uid": INT,
    "from": {"type": "array", "items": _ref("Address")},
    "to": {"type": "array", "items": _ref("Address")},
    "subject": STR,
    "date": {**DATE, "description": "arrival time, UTC"},
    "size": INT,
    "flags": {"type": "array", "items": STR},
    "seen": {"type": "boolean"},
    "flagged": {"type": "boolean"},
    "snippet": {**STR, "description": "the start of the body"},
}
SUMMARY_REQUIRED = list(SUMMARY_FIELDS)

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {**STR, "description": "machine-readable: not_found, insufficient_scope…"},
                    "message": STR,
                },
                "required": ["code", "message"],
            }
        },
        "required": ["error"],
    },
    "Address": ADDRESS,
    "Me": {
        "type": "object",
        "properties": {"address": STR, "admin": {"type": "boolean"}, "scopes": {"type": "array", "items": STR}},
        "required": ["address", "admin", "scopes"],
    },
    "Folder": {
        "type": "object",
        "properties": {
            "name": {**STR, "description": 'Unicode, "/" between levels; INBOX is the inbox'},
            "special_use": {"type": ["string", "null"], "description": "\\Sent, \\Drafts, \\Trash, \\Junk, \\Archive"},
            "messages": INT,
            "unread": INT,
            "size": INT,
        },
        "required": ["name", "special_use", "messages", "unread", "size"],
    },
    "FolderList": {
        "type": "object",
        "properties": {"folders": {"type": "array", "items": _ref("Folder")}},
        "required": ["folders"],
    },
    "MessageSummary": {"type": "object", "properties": SUMMARY_FIELDS, "required": SUMMARY_REQUIRED},
    "MessageList": {
        "type": "object",
        "properties": {
            "folder": STR,
            "total": {**INT, "description": "messages matching, of which this page"},
            "offset": INT,
            "limit": INT,
            "messages": {"type": "array", "items": _ref("MessageSummary")},
        },
        "required": ["folder", "total", "offset", "limit", "messages"],
    },
    "Attachment": {
        "type": "object",
        "properties": {
            "part": {**STR, "description": "MIME section, for /messages/{mid}/attachments/{part}"},
            "name": STR,
            "type": STR,
            "size": INT,
        },
        "required": ["part", "name", "type", "size"],
    },
    "Message": {
        "type": "object",
        "properties": {
            **SUMMARY_FIELDS,
            "cc": {"type": "array", "items": _ref("Address")},
            "reply_to": {"type": "array", "items": _ref("Address")},
            "message_id": STR,
            "headers": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": STR, "value": STR}, "required": ["name", "value"]},
            },
            "text": {**STR, "description": "the plain-text body (else the HTML's text)"},
            "html": {"type": ["string", "null"], "description": "the HTML body as sent: sanitize before display"},
            "attachments": {"type": "array", "items": _ref("Attachment")},
        },
        "required": [*SUMMARY_REQUIRED, "cc", "reply_to", "message_id", "headers", "text", "html", "attachments"],
    },
    "FlagsRequest": {
        "type": "object",
        "properties": {
            "add": {"type": "array", "items": STR, "description": "\\Seen, \\Flagged, \\Answered, \\Draft or keywords"},
            "remove": {"type": "array", "items": STR},
        },
        "additionalProperties": False,
    },
    "FlagsResult": {
        "type": "object",
        "properties": {
            "id": STR,
            "flags": {"type": "array", "items": STR},
            "seen": {"type": "boolean"},
            "flagged": {"type": "boolean"},
        },
        "required": ["id", "flags", "seen", "flagged"],
    },
    "MoveRequest": {
        "type": "object",
        "properties": {"folder": {**STR, "minLength": 1}},
        "required": ["folder"],
    },
    "MoveResult": {
        "type": "object",
        "properties": {"id": {**STR, "description": "the message's id in its new folder"}, "folder": STR, "uid": INT},
        "required": ["id", "folder", "uid"],
    },
    "DeleteResult": {
        "type": "object",
        "properties": {
            "deleted": {"type": "boolean"},
            "permanent": {"type": "boolean", "description": "false: moved to Trash; true: removed from Trash"},
        },
        "required": ["deleted", "permanent"],
    },
    "SendRequest": {
        "type": "object",
        "properties": {
            "to": {"type": "array", "items": STR},
            "cc": {"type": "array", "items": STR},
            "bcc": {"type": "array", "items": STR},
            "subject": STR,
            "text": {**STR, "description": "the plain-text body"},
            "html": {**STR, "description": "an HTML alternative (optional)"},
            "in_reply_to": {**STR, "description": "id of the message answered: threading headers, marked answered"},
            "attachments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"filename": STR, "content_type": STR, "content_base64": STR},
                    "required": ["filename", "content_base64"],
                },
            },
        },
        "additionalProperties": False,
    },
    "SendResult": {
        "type": "object",
        "properties": {
            "message_id": STR,
            "delivered": {"type": "array", "items": STR, "description": "local recipients, delivered"},
            "queued": {"type": "array", "items": STR, "description": "remote recipients, in the outbound queue"},
            "queue_id": {"type": ["integer", "null"]},
            "sent_id": {"type": ["string", "null"], "description": "the copy in Sent"},
        },
        "required": ["message_id", "delivered", "queued", "queue_id", "sent_id"],
    },
    "QueueStatus": {
        "type": "object",
        "properties": {
            "enabled": {"type": "boolean"},
            "messages": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": INT,
                        "from": STR,
                        "user": STR,
                        "size": INT,
                        "created": DATE,
                        "subject": STR,
                        "recipients": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "address": STR,
                                    "state": STR,
                                    "attempts": INT,
                                    "next_attempt": {"type": ["string", "null"], "format": "date-time"},
                                    "last_attempt": {"type": ["string", "null"], "format": "date-time"},
                                    "last_error": STR,
                                    "last_host": STR,
                                },
                                "required": ["address", "state", "attempts", "next_attempt", "last_attempt"],
                            },
                        },
                    },
                    "required": ["id", "from", "user", "size", "created", "subject", "recipients"],
                },
            },
        },
        "required": ["enabled", "messages"],
    },
}


def _op(
    summary: str,
    scope: str | None,
    ok: dict[str, Any],
    *,
    params: list[dict[str, Any]] | None = None,
    body: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": [scope] if scope else []}],
        "responses": {**ok, **ERRORS, **(extra or {})},
    }
    if scope:
        op["description"] = f"Needs a token with the {scope} scope."
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return op


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


PATHS: dict[str, Any] = {
    "/me": {"get": _op("The token's user and scopes", None, {"200": _json(_ref("Me"), "who is calling")})},
    "/folders": {
        "get": _op("Mail folders with counts", "mail:read", {"200": _json(_ref("FolderList"), "the folders")})
    },
    "/messages": {
        "get": _op(
            "A page of a folder's messages, newest first; with q, those containing the text",
            "mail:read",
            {"200": _json(_ref("MessageList"), "a page of messages")},
            params=[
                _query("folder", {"type": "string", "default": "INBOX"}, "folder name"),
                _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "messages skipped"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
                _query("q", {"type": "string", "maxLength": 500}, "text to search in headers and body"),
                _query("unread", {"type": "string", "enum": ["true", "false"]}, "only unread messages"),
            ],
            extra=NOT_FOUND,
        )
    },
    "/messages/{mid}": {
        "parameters": [MID],
        "get": _op(
            "One message: headers, text and HTML bodies, attachments listed",
            "mail:read",
            {"200": _json(_ref("Message"), "the message")},
            extra=NOT_FOUND,
        ),
        "delete": _op(
            "Delete: to Trash, or for good when in Trash",
            "mail:write",
            {"200": _json(_ref("DeleteResult"), "deleted")},
            extra=NOT_FOUND,
        ),
    },
    "/messages/{mid}/raw": {
        "parameters": [MID],
        "get": _op(
            "The message as stored (RFC 5322)",
            "mail:read",
            {"200": {"description": "the message", "content": {"message/rfc822": {"schema": {}}}}},
            extra=NOT_FOUND,
        ),
    },
    "/messages/{mid}/attachments/{part}": {
        "parameters": [
            MID,
            {
                "name": "part",
                "in": "path",
                "required": True,
                "description": "the attachment's part, from the message",
                "schema": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)*$"},
            },
        ],
        "get": _op(
            "Download an attachment (decoded)",
            "mail:read",
            {"200": {"description": "the attachment's bytes, with its type", "content": {"*/*": {"schema": {}}}}},
            extra=NOT_FOUND,
        ),
    },
    "/messages/{mid}/flags": {
        "parameters": [MID],
        "post": _op(
            "Add or remove flags",
            "mail:write",
            {"200": _json(_ref("FlagsResult"), "the flags now")},
            body="FlagsRequest",
            extra=NOT_FOUND,
        ),
    },
    "/messages/{mid}/move": {
        "parameters": [MID],
        "post": _op(
            "Move to another folder",
            "mail:write",
            {"200": _json(_ref("MoveResult"), "moved")},
            body="MoveRequest",
            extra=NOT_FOUND,
        ),
    },
    "/send": {
        "post": _op(
            "Send a message as the token's user (the webmail's submission path, no approval step)",
            "mail:write",
            {
                "200": _json(_ref("SendResult"), "delivered to local recipients"),
                "202": _json(_ref("SendResult"), "accepted: remote recipients are in the outbound queue"),
            },
            body="SendRequest",
            extra={
                "413": {"$ref": "#/components/responses/TooLarge"},
                "422": _json(_ref("Error"), "refused by the submission policy (the SMTP reply in the message)"),
                "503": _json(_ref("Error"), "refused for now (no outbound mail, queue full)"),
            },
        )
    },
    "/queue": {
        "get": _op(
            "The outbound queue (administrators only)",
            "mail:read",
            {"200": _json(_ref("QueueStatus"), "messages waiting, per recipient")},
        )
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "GK mail API",
            "version": gk.__version__,
            "description": "The signed-in user's own mail on a GK box. Authenticate with a bearer token "
            "(gk token add ADDRESS --scope mail, or the account page): mail:read to read, mail:write to "
            "send, move, flag and delete. Errors are {error: {code, message}}.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "a GK API token (gk-…)"}},
            "schemas": SCHEMAS,
            "responses": {
                "BadRequest": _json(_ref("Error"), "the request is malformed (the message says what)"),
                "Unauthorized": _json(_ref("Error"), "missing or invalid token"),
                "Forbidden": _json(_ref("Error"), "the token lacks the scope, or the user the right"),
                "NotFound": _json(_ref("Error"), "no such object for this user"),
                "TooLarge": _json(_ref("Error"), "the request is too large"),
            },
        },
    }
