"""Files: atomic writes, safe ``.npz`` reading, and search-problem files.

Nothing here unpickles: ``.npz`` files are opened with ``allow_pickle=False``, so a file
received from someone else cannot run code.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["InputFileError", "SearchProblem", "atomic_savez", "atomic_write_text", "load_problem", "read_npz"]


class InputFileError(ValueError):
    """A file given by the user is missing, unreadable or malformed."""


def _atomic_target(path: str | os.PathLike[str], suffix: str) -> tuple[Path, int, str]:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    return target, fd, tmp


def _apply_umask(path: str) -> None:
    """Give a temporary file (created 0600) the mode a plainly created file would have."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def atomic_savez(path: str | os.PathLike[str], arrays: Mapping[str, NDArray]) -> None:
    """Write ``arrays`` to an ``.npz`` file via a temporary file and a rename.

    The archive is byte-for-byte reproducible (fixed entry times, entries in the given
    order), so that equal arrays give equal files and equal content digests.
    """
    target, fd, tmp = _atomic_target(path, ".npz")
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for name, value in arrays.items():
                entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with archive.open(entry, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
        _apply_umask(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write text via a temporary file and a rename, so readers never see half a file."""
    target, fd, tmp = _atomic_target(path, ".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        _apply_umask(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_npz(path: Path, required: Iterable[str] = ()) -> dict[str, NDArray]:
    """Read every array of an ``.npz`` file without unpickling anything.

    Raises
    ------
    InputFileError
        If the file is missing, is not an ``.npz`` archive, holds object arrays, or lacks
        one of the ``required`` arrays.
    """
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise InputFileError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {name: archive[name] for name in archive.files}
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise InputFileError(f"{path}: holds pickled object arrays, which are refused for safety") from None
        raise InputFileError(f"{path}: not a readable .npz file ({error})") from None
    except (OSError, EOFError) as error:
        raise InputFileError(f"{path}: not a readable .npz file ({error})") from None
    missing = [name for name in required if name not in data]
    if missing:
        raise InputFileError(f"{path}: missing array(s) {', '.join(repr(m) for m in missing)}")
    return data


@dataclass
class SearchProblem:
    """Concept masks and unit masks over the same positions, as read from a problem file.

    ``concepts`` and ``units`` are scipy sparse (rows x positions) boolean matrices or
    bit-packed uint8 arrays (rows x ceil(N / 8), little bit order).
    """

    concepts: NDArray[np.uint8] | sp.csr_array
    units: NDArray[np.uint8] | sp.csr_array
    n_positions: int
    concept_names: list[str]
    concept_categories: list[str] | None
    unit_names: list[str]
    examples: NDArray[np.integer] | None = None


def _strings(data: dict[str, NDArray], key: str, expected: int, path: Path) -> list[str] | None:
    if key not in data:
        return None
    values = data[key]
    if values.ndim != 1 or values.dtype.kind not in "US":
        raise InputFileError(f"{path}: {key!r} must be a 1-D array of strings, got {values.dtype} {values.shape}")
    if len(values) != expected:
        raise InputFileError(f"{path}: {key!r} has {len(values)} entries, expected {expected}")
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _masks(data: dict[str, NDArray], prefix: str, n: int, path: Path) -> NDArray[np.uint8] | sp.csr_array:
    """Read ``prefix`` (packed) or ``prefix_indptr``/``prefix_indices`` (sparse CSR rows)."""
    n_bytes = -(-n // 8)
    if prefix in data:
        packed = data[prefix]
        if packed.dtype != np.uint8 or packed.ndim != 2:
            raise InputFileError(f"{path}: {prefix!r} must be a 2-D uint8 array, got {packed.dtype} {packed.shape}")
        if packed.shape[1] != n_bytes:
            raise InputFileError(
                f"{path}: {prefix!r} has {packed.shape[1]} bytes per row but n_positions={n} needs {n_bytes}"
            )
        return packed
    indptr_key, indices_key = f"{prefix}_indptr", f"{prefix}_indices"
    if indptr_key not in data or indices_key not in data:
        raise InputFileError(f"{path}: missing array {prefix!r} (or {indptr_key!r} and {indices_key!r})")
    indptr, indices = data[indptr_key], data[indices_key]
    if indptr.ndim != 1 or indices.ndim != 1 or indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise InputFileError(f"{path}: {indptr_key!r} and {indices_key!r} must be 1-D integer arrays")
    if len(indptr) == 0 or indptr[0] != 0 or indptr[-1] != len(indices) or (np.diff(indptr) < 0).any():
        raise InputFileError(f"{path}: {indptr_key!r} is not a valid CSR row pointer for {len(indices)} indices")
    if len(indices) and (indices.min() < 0 or indices.max() >= n):
        raise InputFileError(f"{path}: {indices_key!r} has positions outside [0, n_positions={n})")
    rows = len(indptr) - 1
    return sp.csr_array((np.ones(len(indices), bool), indices, indptr), shape=(rows, n))


def load_problem(path: str | os.PathLike[str]) -> SearchProblem:
    """Read a search-problem ``.npz`` file (format in the README, "Problem files").

    Raises
    ------
    InputFileError
        With a one-line message naming the problem.
    """
    path = Path(path)
    data = read_npz(path, required=("n_positions", "concept_names"))
    n_array = data["n_positions"]
    if n_array.size != 1 or n_array.dtype.kind not in "iu" or int(n_array) <= 0:
        raise InputFileError(f"{path}: 'n_positions' must be one positive integer")
    n = int(n_array)
    concepts = _masks(data, "concepts", n, path)
    units = _masks(data, "units", n, path)
    names = _strings(data, "concept_names", concepts.shape[0], path)
    assert names is not None
    categories = _strings(data, "concept_categories", concepts.shape[0], path)
    unit_names = _strings(data, "unit_names", units.shape[0], path) or [str(i) for i in range(units.shape[0])]
    if len(set(names)) != len(names):
        raise InputFileError(f"{path}: 'concept_names' has repeated names")
    examples = data.get("examples")
    if examples is not None and (examples.shape != (n,) or examples.dtype.kind not in "iu" or examples.min() < 0):
        raise InputFileError(f"{path}: 'examples' must hold one non-negative integer per position ({n})")
    return SearchProblem(concepts, units, n, names, categories, unit_names, examples)
