"""The IRCv3 server for stock clients: ``parser`` (lines and tags), ``session`` (one connection's
state machine and commands), ``numerics``, ``service`` (the TLS listener)."""
