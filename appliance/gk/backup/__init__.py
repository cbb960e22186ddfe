"""Backups of the whole data dir: ``gk backup create|restore|list`` and the admin's download.

One archive (``gk-backup-<host>-<UTC time>.tar``) holds everything needed to bring the box back
to the same state: every SQLite database (a snapshot through SQLite's online backup API, taken
while ``gk serve`` runs), the Maildirs (``cur/`` and ``new/``), gk.toml, the TLS and DKIM keys and
other secrets, chat files. ``models/`` (big, downloadable again) is left out unless asked for.
``gk.backup.archive`` writes and reads it; ``gk.backup.cli`` is the command.
"""
