"""The web UI: first-boot wizard, login, dashboard, admin, client setup and webmail (bottle on gevent)."""
