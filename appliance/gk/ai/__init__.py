"""The private assistant (issue 14): a local quantized model, served to the LAN.

``runtime`` runs ``llama_cpp.Llama`` on one dedicated native thread (one model, one context,
one generation at a time, FIFO) and streams tokens back to greenlets; ``models`` finds and
checks the GGUF files in ``DATA_DIR/models``; ``api`` is the OpenAI-compatible ``/v1`` bottle
app; ``tokens`` holds the per-user API tokens (shared with the MCP endpoint); ``service`` plugs
them into ``gk serve``; ``cli`` adds ``gk token`` and ``gk ai``.

Cost on a 512 MB board: nothing of llama.cpp is imported until a model is first used
(``import llama_cpp`` is ~23 MB); the model itself is memory-mapped and unloaded after
``[ai] idle_unload_seconds``.
"""
