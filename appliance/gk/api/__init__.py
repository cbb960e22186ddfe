"""The mail REST API at ``/api/v1`` (issue 15 item 6): the caller's own mail as JSON, for
scripts and apps, authenticated by the same per-user bearer tokens as ``/v1`` and ``/mcp``
(``gk.ai.tokens``: ``mail:read`` to read, ``mail:write`` to send, move, flag and delete).

Modules: ``app`` (the bottle app: bearer tokens, scopes, JSON errors), ``mail`` (the routes,
through the mailbox's face and the submission path the webmail uses: a send is the user's own,
no approval), ``openapi`` (the OpenAPI 3.1 description served at ``/api/v1/openapi.json``),
``service`` (the feature's service, declared in ``gk.features`` with its mount).
"""
