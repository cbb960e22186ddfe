"""Outbound SMTP: where a domain's mail goes (MX, MTA-STS) and the client that carries it there."""
