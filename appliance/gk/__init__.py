"""GK: one gevent process serving mail, chat, calendars and a local assistant."""

__version__ = "0.1.0"
