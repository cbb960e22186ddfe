"""What an idle ``gk serve`` must not import (issue 11, memory: idle RSS <= 45 MB).

Each module below is loaded by the first use of a feature, not at start (docs/performance.md,
"Idle RSS with every feature on"): dnspython and pyspf by the first DNS lookup, aiosmtpd (with
attrs) by the first SMTP connection, the IMAP and IRC sessions by their first connection, MCP's
transport by the first /mcp request, html/uuid/ElementTree by the functions that use them,
importlib.metadata never (gevent's plugin lookup is skipped), argon2-cffi by the first
password hash or check, the web UI's pages (``gk.web.routes``: each page's module by the first
request to one of its routes; the wizard's by the first ``/wizard`` request) with what only they
import (``zoneinfo`` with sysconfig's build data, markupsafe, the DAV web API), the outbound SMTP
client (smtplib) by the first mail sent. A fresh interpreter imports what ``gk serve`` imports at
start (the CLI with its monkey-patching, the server, every feature's service module, the web's
route tables and every feature's wizard step) and lists which of them got in;
``tests/integration/test_idle_modules.py`` reads the same from a started ``gk serve``.
"""

from __future__ import annotations

import subprocess
import sys

from support.idle import LAZY

CODE = r"""
import sys
import gk.cli, gk.server
import gk.mail.mailbox.service, gk.mail.smtp.service, gk.mail.imap.service, gk.mail.queue.service
import gk.acme.service, gk.chat.service, gk.chat.irc.service, gk.dav.service, gk.ai.service
import gk.mcp.service, gk.api.service, gk.web.service
import importlib, gk.features, gk.web.routes, gk.web.wizardsteps
for feature in gk.features.FEATURES:
    for module, attr in feature.wizard:
        getattr(importlib.import_module(module), attr)
print(",".join(m for m in sys.argv[1].split(",") if m in sys.modules))
"""


def test_the_serving_stack_imports_no_first_use_module_at_start():
    out = subprocess.run(
        [sys.executable, "-c", CODE, ",".join(LAZY)], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "", f"imported at start: {out.stdout.strip()}"
