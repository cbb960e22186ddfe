"""The mailbox store: per-user Maildirs (the source of truth) and their SQLite index.

Below both the IMAP server and the webmail; SMTP delivery writes through ``maildir.deliver``.
"""
