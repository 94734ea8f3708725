"""The `X-Plate-OCR-Signature` header: HMAC-SHA256 over a timestamp and the body.

    X-Plate-OCR-Signature: t=1764859200,v1=5d41402abc4b2a76b9719d911017c592...

`v1` is the hex HMAC-SHA256, keyed with the shared secret (`PLATE_OCR_WEBHOOK_SECRET`), of the
ASCII timestamp (Unix seconds), a dot, and the raw request body, byte for byte as sent. Signing
the time lets a receiver refuse a replayed request older than a few minutes. The README shows
the receiver's side in a few lines of the standard library (tested against this module).
"""

import hashlib
import hmac
import time

__all__ = ["SIGNATURE_HEADER", "sign", "verify"]

SIGNATURE_HEADER = "X-Plate-OCR-Signature"


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, *, timestamp: int | None = None) -> str:
    """The header value for `body`, signed now (or at `timestamp`)."""
    when = int(time.time()) if timestamp is None else timestamp
    return f"t={when},v1={_mac(secret, when, body)}"


def verify(secret: bytes, header: str, body: bytes, *, tolerance_s: int = 300) -> bool:
    """True when `header` signs `body` with `secret`, within `tolerance_s` of now."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(parts.get("v1", ""), _mac(secret, timestamp, body))
