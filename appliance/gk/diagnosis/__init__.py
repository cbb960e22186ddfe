"""Diagnosis: is this box ready to send and receive mail on the internet, and is it healthy?

``run(inputs) -> list[Finding]`` runs every check (as YunoHost's diagnosis page does): the DNS
records each local domain must publish compared with what DNS answers (``gk.mail.dnsrecords``,
the A/AAAA of the mail host, MX, SPF, DKIM, DMARC, the RFC 6186/8314 SRV records and the
autoconfig/autodiscover names), the mail host's reverse DNS (forward-confirmed), its public
IPv4 address on the main DNS blocklists, outgoing port 25 (or the relay host), the TLS
certificate, clock synchronisation, disk and memory. Each finding says what it means and how
to fix it, in English templates the web page translates (``gk.web.i18n``).

Nothing leaves the box unless the owner runs a diagnosis (``gk diagnose`` or the admin page's
"Run the checks"): DNS queries go to GK's resolver (``[dns]``), the port-25 probe to
``[diagnosis] port25_probe_host``. Cost: nothing when idle; a run is a few dozen DNS queries
and one TCP connection, each bounded by ``[diagnosis] timeout``.
"""

from gk.diagnosis.checks import Finding, Inputs, inputs_from_data_dir, run

__all__ = ["Finding", "Inputs", "inputs_from_data_dir", "run"]
