"""SMTP: inbound MX (25) and submission (587, 465) on aiosmtpd inside the gevent process."""
