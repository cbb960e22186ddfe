"""DKIM for outbound mail: per-domain keys under ``DATA_DIR/dkim/<domain>/`` and signing with dkimpy."""

from gk.mail.dkim.keys import DKIMKey, dns_record, ensure_keys, load_keys
from gk.mail.dkim.signer import sign_file, sign_headers

__all__ = ["DKIMKey", "dns_record", "ensure_keys", "load_keys", "sign_file", "sign_headers"]
