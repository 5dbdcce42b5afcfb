"""Content fingerprints: the one rule by which caches and run stages are keyed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["fingerprint"]


def fingerprint(*parts: Any) -> str:
    """A short, stable hash of JSON-able parts (16 hex digits of SHA-256 over sorted-key JSON)."""
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
