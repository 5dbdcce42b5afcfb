"""Fingerprints: the one rule by which caches and run stages are keyed, and content digests of files."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

__all__ = ["file_digest", "fingerprint"]


def fingerprint(*parts: Any) -> str:
    """A short, stable hash of JSON-able parts (16 hex digits of SHA-256 over sorted-key JSON)."""
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def file_digest(path: str | os.PathLike[str]) -> str:
    """A content digest of a file (32 hex digits of BLAKE2b, read in 4 MiB blocks)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
