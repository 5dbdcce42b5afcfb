"""Reading weight files safely: ``torch.load(weights_only=True)`` only, with one-line errors.

Plain tensors and containers are read, never arbitrary pickled objects. An unreadable file
gets a short reason; torch's advice to retry with ``weights_only=False`` is never repeated,
since following it would run whatever code the file carries.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["CheckpointError", "read_checkpoint"]


class CheckpointError(ValueError):
    """A weights file cannot be read, or does not fit the model it is loaded into."""


def _reason(error: Exception) -> str:
    """Why torch could not read a file, in a few words (never its advice to drop ``weights_only``)."""
    text = str(error)
    if "Weights only load failed" in text:
        found = re.search(r"(Unsupported global: GLOBAL [\w.]+|invalid load key, [^\n.]*)", text)
        detail = found.group(1) if found else "objects other than tensors and plain containers"
        return f"refused for safety: {detail}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    if "weights_only" in first:
        first = ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[Any, str, Path]:
    """Load a weights file with ``weights_only=True`` and hash exactly the bytes loaded.

    Returns
    -------
    obj : object
        What ``torch.load`` returned (a state dict, or a dict holding one).
    sha256 : str
        Hexadecimal SHA-256 of the file's bytes.
    path : Path
        The resolved absolute path.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    CheckpointError
        If the file is not a PyTorch weights file of tensors and plain containers.
    """
    import torch

    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"weights file not found: {resolved}")
    data = resolved.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ... here
        raise CheckpointError(f"{resolved}: not a readable PyTorch weights file ({_reason(error)})") from None
    return obj, sha256, resolved
