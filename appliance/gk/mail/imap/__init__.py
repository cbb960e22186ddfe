"""GK's IMAP4rev1 server (RFC 3501 + the RFC 9051 parts clients use + IDLE, UIDPLUS, MOVE,
SPECIAL-USE, NAMESPACE, ID, ENABLE, LITERAL+, SASL-IR, UNSELECT, CHILDREN, CONDSTORE, QRESYNC).

Written by hand: no maintained Python IMAP *server* library exists (imaplib and imapclient are
clients), so this is the one protocol piece GK implements itself, on ``gevent.server.StreamServer``
inside ``gk serve``. One file per concern, after Mox.

Protocol pieces: ``parser`` (tokenizer and command reader with literals and limits), ``protocol``
(types, errors, capabilities), ``response`` (packing of strings, lists, literals), ``utf7``
(modified UTF-7 mailbox names), ``fetch``, ``search``, ``listing`` (LIST/LSUB patterns).

The session, by concern (each imports only the ones above it in this list, never a sibling):

- ``connection``: socket, buffered writes, reader limits, throttle, state, the selected folder's
  ``Selected`` record, and the any-state CAPABILITY / LOGOUT / ID;
- ``view``: ``SelectedView(Connection)``, how changes made elsewhere reach the session (EXISTS,
  EXPUNGE/VANISHED, FETCH FLAGS) and the sequence-set helpers every command on a folder shares;
- ``auth`` (STARTTLS, LOGIN, AUTHENTICATE), ``folders`` (SELECT, LIST, STATUS, APPEND …),
  ``messages`` (FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE …), ``idle`` (NOOP, CHECK, IDLE):
  command mixins, each a subclass of ``SelectedView``;
- ``dispatch``: the command table (name → the mixin's function, states allowed) and the mapping of
  failures to tagged replies;
- ``session``: ``Session``, the mixins put together, and its main loop;
- ``service``: the listeners (143 STARTTLS, 993 implicit TLS) and connection slots.

Why mixins and a table rather than one module: every command needs the same session state (socket,
reader, selected view), so each concern is a mixin over the one ``SelectedView`` base (type
checkers see every attribute, no ``Any`` session), and the table refers to the mixins' functions,
not to ``Session``, so ``dispatch`` never imports ``session``: no cycle. Storage is
``gk.mail.mailbox``; this package never touches files directly.
"""
