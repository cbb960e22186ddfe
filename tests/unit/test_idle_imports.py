"""What an idle ``gk serve`` must not import (issue 11, memory: idle RSS <= 45 MB).

Each module below is loaded by the first use of a feature, not at start (docs/performance.md,
"Idle RSS with every feature on"): dnspython and pyspf by the first DNS lookup, aiosmtpd (with
attrs) by the first SMTP connection, the IMAP and IRC sessions by their first connection, MCP's
transport by the first /mcp request, html/uuid/ElementTree by the functions that use them,
importlib.metadata never (gevent's plugin lookup is skipped), argon2-cffi by the first
password hash or check. A fresh interpreter imports what
``gk serve`` imports at start (the CLI with its monkey-patching, the server and every feature's
service module) and lists which of them got in.
"""

from __future__ import annotations

import subprocess
import sys

CODE = r"""
import sys
import gk.cli, gk.server
import gk.mail.mailbox.service, gk.mail.smtp.service, gk.mail.imap.service, gk.mail.queue.service
import gk.acme.service, gk.chat.service, gk.chat.irc.service, gk.dav.service, gk.ai.service
import gk.mcp.service, gk.api.service, gk.web.service
LAZY = (
    "dns", "spf", "aiosmtpd", "attr", "importlib.metadata", "html.entities", "uuid",
    "xml.etree.ElementTree", "gk.mail.smtp.session", "gk.mail.imap.session", "gk.chat.irc.session",
    "gk.mcp.http", "gk.ai.api", "gk.diagnosis.checks", "jinja2", "llama_cpp", "cryptography", "argon2",
    "email.policy", "email.headerregistry",
)
print(",".join(m for m in LAZY if m in sys.modules))
"""


def test_the_serving_stack_imports_no_first_use_module_at_start():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "", f"imported at start: {out.stdout.strip()}"
