"""Chat: rooms, direct messages and their SQLite history (``core``, ``store``), served to stock
IRCv3 clients by ``irc`` (and, next, to the web chat). ``service.start(ctx)`` plugs it into
``gk serve``."""
