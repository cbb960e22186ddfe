"""GK's IMAP4rev1 server (RFC 3501 + the RFC 9051 parts clients use + IDLE, UIDPLUS, MOVE,
SPECIAL-USE, NAMESPACE, ID, ENABLE, LITERAL+, SASL-IR, UNSELECT, CHILDREN, CONDSTORE).

Written by hand: no maintained Python IMAP *server* library exists (imaplib and imapclient are
clients), so this is the one protocol piece GK implements itself, on ``gevent.server.StreamServer``
inside ``gk serve``. One file per concern, after Mox: ``parser`` (tokenizer and command reader
with literals and limits), ``protocol`` (types, errors, capabilities), ``response`` (packing of
strings, lists, literals), ``utf7`` (modified UTF-7 mailbox names), ``fetch``, ``search``,
``listing`` (LIST/LSUB), ``idle``, ``session`` (state machine and dispatcher) and ``service``
(listeners). Storage is ``gk.mail.mailbox``; this package never touches files directly.
"""
