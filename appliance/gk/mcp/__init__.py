"""The MCP server at ``/mcp``: the signed-in user's mail as tools for any MCP client (issue 15,
first slice: the read-only mail tools).

Modules: ``jsonrpc`` (JSON-RPC 2.0 messages and error codes, batches refused), ``protocol``
(2026-07-28's per-request envelope, versions, error codes, result fields, signed requestState),
``resources`` (mail folders and messages), ``prompts`` (EN/FR), ``fixtures`` (the conformance
suite's, test mode only), ``registry``
(tools with JSON-Schema inputs and outputs, annotations, EN/FR titles from the catalog, the
argument checks), ``mailtools`` (``mail_list_folders``, ``mail_list_unread``, ``mail_search``,
``mail_read``: through the mailbox's face only, as the token's user), ``auth`` (bearer tokens
with the ``mcp`` scope from ``gk.ai.tokens`` or OAuth access tokens from ``gk.oauth``, the 401
challenge and RFC 9728 metadata),
``http`` (the Streamable HTTP transport in bottle: stateless, JSON or SSE answers,
``subscriptions/listen``),
``service`` (the feature's service, declared in ``gk.features`` with its two mounts).

Protocol: 2026-07-28 (stateless: ``server/discover``, ``_meta`` per request, ``Mcp-Method`` and
``Mcp-Name`` headers) and 2025-11-25 (also 2025-06-18 and 2025-03-26) through ``initialize``
without sessions. OAuth 2.1 for MCP clients: ``gk.oauth`` (GK is the authorization server of ``/mcp``).

Side effects: ``writetools`` (``mail_send``, ``mail_reply``, ``mail_move``, ``mail_flag``,
``mail_delete``, ``chat_post``; ``calwrite``: ``calendar_create_event``, ``calendar_update_event``,
``calendar_cancel_event``) only queue pending actions (``approvals``, in ``mcp.sqlite3``)
that the owner approves once in the web UI (``gk.web.approvals``); ``audit`` records every
tool call; ``policy`` is what the assistant's runtime applies (results delimited and marked as
data, outbound tools withdrawn for a turn that read untrusted content).

Cost: nothing is imported unless ``[mcp] enabled`` (``gk serve`` imports ``gk.mcp.service`` in
``gk.features._start_mcp``); started, it is two small bottle apps, four ``Tool`` objects and
the token table opened on the first request. ``.venv/bin/python -m bench mcp_rss`` (idle RSS of
a default ``gk serve``, every other feature on, median of 3 starts, on the 2-core dev box):
60.8 MB with ``[mcp] enabled = false``, 60.8–60.9 MB with it on (+0.0–0.1 MB); after 100
``tools/call`` 61.5–61.8 MB (+0.7–0.9 MB: the token table's connection, the mailbox opened, the
reading path's imports).
"""
