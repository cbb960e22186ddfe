"""Mail: the mailbox store, SMTP in/out, the queue, inbound checks and the IMAP server."""
