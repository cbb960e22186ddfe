"""IRC lines with IRCv3 message tags: parse, escape, serialize.

A line is ``['@' tags SPACE] [':' source SPACE] command {SPACE param} [SPACE ':' trailing]``.
Limits (IRCv3 message-tags): the tag part, '@' and its trailing space included, is at most
8191 bytes (``MAX_TAGS``); the rest, CRLF included, at most 512 bytes (``MAX_REST``). A line
over either limit is refused with ``LineTooLong`` (the session answers 417 ERR_INPUTTOOLONG).

Tag values are escaped per the spec: ``;`` → ``\\:``, space → ``\\s``, ``\\`` → ``\\\\``,
CR → ``\\r``, LF → ``\\n``; on input an unknown escape ``\\x`` is ``x`` and a lone trailing
backslash is dropped; a NUL (no escape carries one) is dropped on output. A tag without a value
(or with an empty one) has the value ''.
Pure functions, no I/O: the parser is fuzzed by hypothesis in the unit tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_TAGS = 8191
MAX_REST = 512
MAX_LINE = MAX_TAGS + MAX_REST  # what a reader may buffer before giving up on a line
MAX_PARAMS = 15
# what no parameter may hold on the wire: a line break would end the line there and start another
# (text set elsewhere, e.g. a topic from the web, could forge whole lines in a client's stream)
_BREAKS = re.compile(r"[\r\n\0]+")


class ParseError(ValueError):
    """A line that is not IRC (no command, bad tag key)."""


class LineTooLong(ParseError):
    pass


_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE_OUT = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n", "\0": ""})


def escape_value(value: str) -> str:
    return value.translate(_ESCAPE_OUT)


def unescape_value(value: str) -> str:
    if "\\" not in value:
        return value
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == "\\":
            if i + 1 < n:
                nxt = value[i + 1]
                out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _valid_key(key: str) -> bool:
    if not key:
        return False
    name = key[1:] if key[0] == "+" else key
    if not name:
        return False
    vendor, _, short = name.rpartition("/")
    if not short or not all(c.isascii() and (c.isalnum() or c == "-") for c in short):
        return False
    return all(c.isascii() and (c.isalnum() or c in "-.") for c in vendor)


@dataclass
class Line:
    command: str
    params: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def param(self, i: int, default: str = "") -> str:
        return self.params[i] if i < len(self.params) else default

    @property
    def client_tags(self) -> dict[str, str]:
        return {k: v for k, v in self.tags.items() if k.startswith("+")}


def parse(raw: bytes) -> Line:
    """One line without its CRLF (or LF). Raises ``LineTooLong`` or ``ParseError``."""
    tags: dict[str, str] = {}
    rest = raw
    if rest.startswith(b"@"):
        sp = rest.find(b" ")
        if sp < 0:
            raise ParseError("a line with tags and no command")
        if sp + 1 > MAX_TAGS:
            raise LineTooLong("tags")
        tag_part = rest[1:sp].decode("utf-8", "replace")
        rest = rest[sp + 1 :].lstrip(b" ")
        for item in tag_part.split(";"):
            if not item:
                continue
            key, _, value = item.partition("=")
            if not _valid_key(key):
                raise ParseError(f"invalid tag key {key[:40]!r}")
            tags[key] = unescape_value(value)
    if len(rest) + 2 > MAX_REST:
        raise LineTooLong("message")
    text = rest.decode("utf-8", "replace")
    if "\0" in text or "\r" in text or "\n" in text:
        raise ParseError("NUL, CR or LF inside a line")
    source = ""
    if text.startswith(":"):
        source, _, text = text[1:].partition(" ")
        text = text.lstrip(" ")
    command, _, text = text.partition(" ")
    if not command:
        raise ParseError("no command")
    if not (command.isascii() and (command.isalpha() or (command.isdigit() and len(command) == 3))):
        raise ParseError("invalid command")
    params: list[str] = []
    while text:
        text = text.lstrip(" ")
        if not text:
            break
        if text.startswith(":") or len(params) == MAX_PARAMS - 1:
            params.append(text[1:] if text.startswith(":") else text)
            break
        p, _, text = text.partition(" ")
        params.append(p)
    return Line(command.upper(), params, tags, source)


def format_tags(tags: dict[str, str]) -> str:
    return ";".join(k if v == "" else f"{k}={escape_value(v)}" for k, v in tags.items())


# commands whose last parameter is a name or token, written trailing only when it must be;
# every other command's last parameter (text: messages, reasons, numerics) is always trailing,
# as clients and other servers expect
_NAME_LAST = {"NICK", "INVITE", "BATCH", "TAGMSG", "AUTHENTICATE", "REDACT", "MARKREAD", "CHATHISTORY", "MODE"}


def _one_line(text: str) -> str:
    """``text`` with each run of CR, LF and NUL made one space (the common case: no copy)."""
    if "\r" in text or "\n" in text or "\0" in text:
        return _BREAKS.sub(" ", text)
    return text


def serialize(line: Line) -> bytes:
    """The line with CRLF; the last parameter written trailing (``:``) for text commands and
    whenever it has to be (empty, a space, a leading colon). A CR, LF or NUL inside a parameter
    is a space: one call makes one line, whatever the text came from."""
    parts: list[str] = []
    if line.tags:
        parts.append("@" + format_tags(line.tags))
    if line.source:
        parts.append(":" + _one_line(line.source))
    parts.append(_one_line(line.command))
    params = [_one_line(p) for p in line.params]
    if params:
        last = params.pop()
        parts.extend(params)
        text_last = line.command not in _NAME_LAST and not (line.command == "JOIN" and not params)
        if text_last or not last or " " in last or last.startswith(":"):
            last = ":" + last
        parts.append(last)
    return (" ".join(parts) + "\r\n").encode("utf-8")


def message(command: str, *params: str, source: str = "", tags: dict[str, str] | None = None) -> bytes:
    return serialize(Line(command, list(params), dict(tags or {}), source))
