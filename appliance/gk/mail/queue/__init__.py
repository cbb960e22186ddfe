"""The outbound mail queue: durable SQLite state + spool files, delivery workers, DSNs, ``gk queue``."""
