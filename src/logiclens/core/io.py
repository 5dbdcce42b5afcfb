"""Files: atomic writes, safe ``.npz`` reading, and search-problem files.

Nothing here unpickles: ``.npz`` files are opened with ``allow_pickle=False``, so a file
received from someone else cannot run code.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = [
    "InputFileError",
    "NpzArrays",
    "SearchProblem",
    "atomic_savez",
    "atomic_write_text",
    "load_problem",
    "read_array",
    "read_npz",
]


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


class NpzArrays(Mapping[str, NDArray]):
    """The arrays of an ``.npz`` file, each read only when it is asked for (never unpickled).

    :meth:`header` gives an array's shape and dtype without reading its data, so that sizes
    can be checked before anything large is allocated. Every failure is an
    :class:`InputFileError` naming the file and the array.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError(f"{self.path}: no such file")
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = archive.namelist()
        except (zipfile.BadZipFile, OSError) as error:
            raise InputFileError(f"{self.path}: not a readable .npz file ({error})") from None
        self._names = [name.removesuffix(".npy") for name in members if name.endswith(".npy")]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of an array, read from its header alone."""
        self._check(name)
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(f"{name}.npy") as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:  # a rare format version without a public header reader: read the array
                    array = np.lib.format.read_array(member, allow_pickle=False)
                    shape, dtype = array.shape, array.dtype
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise InputFileError(f"{self.path}: array {name!r} is not readable ({error})") from None
        return tuple(shape), np.dtype(dtype)

    def __getitem__(self, name: str) -> NDArray:
        self._check(name)
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(f"{name}.npy") as member:
                return np.lib.format.read_array(member, allow_pickle=False)
        except ValueError as error:
            if "allow_pickle" in str(error) or "Object arrays" in str(error):
                raise InputFileError(f"{self.path}: array {name!r} holds pickled objects, refused for safety") from None
            raise InputFileError(f"{self.path}: array {name!r} is not readable ({error})") from None
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise InputFileError(f"{self.path}: array {name!r} is not readable ({error})") from None

    def _check(self, name: str) -> None:
        if name not in self._names:
            raise KeyError(name)


def read_npz(path: Path, required: Iterable[str] = ()) -> NpzArrays:
    """The arrays of an ``.npz`` file, read one at a time when asked for, without unpickling anything.

    Raises
    ------
    InputFileError
        If the file is missing, is not an ``.npz`` archive, or lacks one of the ``required``
        arrays; an array that cannot be read (damaged, pickled objects) raises it when read.
    """
    data = NpzArrays(path)
    missing = [name for name in required if name not in data]
    if missing:
        raise InputFileError(f"{path}: missing array(s) {', '.join(repr(m) for m in missing)}")
    return data


def read_array(path: str | os.PathLike[str], kinds: str = "fiu", mmap: bool = False) -> NDArray:
    """A numeric array from an ``.npy`` file given by the user, never unpickled.

    Parameters
    ----------
    path : path
    kinds : str
        Accepted dtype kinds (numpy's ``dtype.kind`` letters).
    mmap : bool
        Map the file read-only instead of reading it.

    Raises
    ------
    FileNotFoundError, InputFileError
        On one line naming the file: missing, not an ``.npy`` file (JSONL given by mistake,
        pickled objects), or not numeric.
    """
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"{target}: no such file")
    try:
        array = np.load(target, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise InputFileError(f"{target}: not a .npy array file ({str(error).splitlines()[0]})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in kinds:
        raise InputFileError(f"{target}: activations must be a numeric .npy array")
    return array


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


def _strings(data: NpzArrays, key: str, expected: int, path: Path) -> list[str] | None:
    if key not in data:
        return None
    values = data[key]
    if values.ndim != 1 or values.dtype.kind not in "US":
        raise InputFileError(f"{path}: {key!r} must be a 1-D array of strings, got {values.dtype} {values.shape}")
    if len(values) != expected:
        raise InputFileError(f"{path}: {key!r} has {len(values)} entries, expected {expected}")
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _masks(data: NpzArrays, prefix: str, n: int, path: Path) -> NDArray[np.uint8] | sp.csr_array:
    """Read ``prefix`` (packed) or ``prefix_indptr``/``prefix_indices`` (sparse CSR rows), sizes checked first."""
    n_bytes = -(-n // 8)
    if prefix in data:
        shape, dtype = data.header(prefix)
        if dtype != np.uint8 or len(shape) != 2:
            raise InputFileError(f"{path}: {prefix!r} must be a 2-D uint8 array, got {dtype} {shape}")
        if shape[1] != n_bytes:
            raise InputFileError(f"{path}: {prefix!r} has {shape[1]} bytes per row but n_positions={n} needs {n_bytes}")
        packed = data[prefix]
        if n % 8 and len(packed):
            beyond = int(np.unpackbits(packed[:, -1] >> np.uint8(n % 8)).sum())
            if beyond:
                raise InputFileError(
                    f"{path}: {prefix!r} has {beyond} bit(s) set beyond n_positions={n}; check n_positions"
                )
        return packed
    indptr_key, indices_key = f"{prefix}_indptr", f"{prefix}_indices"
    if indptr_key not in data or indices_key not in data:
        raise InputFileError(f"{path}: missing array {prefix!r} (or {indptr_key!r} and {indices_key!r})")
    for key in (indptr_key, indices_key):
        shape, dtype = data.header(key)
        if len(shape) != 1 or dtype.kind not in "iu":
            raise InputFileError(f"{path}: {key!r} must be a 1-D integer array, got {dtype} {shape}")
    indptr, indices = data[indptr_key], data[indices_key]
    if len(indptr) == 0 or indptr[0] != 0 or indptr[-1] != len(indices) or (np.diff(indptr) < 0).any():
        raise InputFileError(f"{path}: {indptr_key!r} is not a valid CSR row pointer for {len(indices)} indices")
    if len(indices) and (indices.min() < 0 or indices.max() >= n):
        raise InputFileError(f"{path}: {indices_key!r} has positions outside [0, n_positions={n})")
    rows = len(indptr) - 1
    row_of = np.repeat(np.arange(rows), np.diff(indptr))
    order = np.lexsort((indices, row_of))
    repeated = (np.diff(row_of[order]) == 0) & (np.diff(indices[order]) == 0)
    if repeated.any():
        at = order[int(np.flatnonzero(repeated)[0])]
        raise InputFileError(
            f"{path}: {indices_key!r} lists position {int(indices[at])} twice in row {int(row_of[at])}; "
            "each active position once per row"
        )
    return sp.csr_array((np.ones(len(indices), bool), indices, indptr), shape=(rows, n))


def _check_memory(n: int, path: Path) -> None:
    """Refuse a problem whose per-position arrays would not fit in this machine's memory."""
    needed = 16 * n  # per-position signature ids and their ordering, at least
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if needed > available:
        raise InputFileError(
            f"{path}: n_positions={n:,} needs at least {needed / 2**30:.0f} GiB for per-position arrays; "
            f"this machine has {available / 2**30:.0f} GiB"
        )


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
    _check_memory(n, path)
    concepts = _masks(data, "concepts", n, path)
    units = _masks(data, "units", n, path)
    names = _strings(data, "concept_names", concepts.shape[0], path)
    assert names is not None
    categories = _strings(data, "concept_categories", concepts.shape[0], path)
    unit_names = _strings(data, "unit_names", units.shape[0], path) or [str(i) for i in range(units.shape[0])]
    if len(set(names)) != len(names):
        raise InputFileError(f"{path}: 'concept_names' has repeated names")
    examples = None
    if "examples" in data:
        shape, dtype = data.header("examples")
        if shape != (n,) or dtype.kind not in "iu":
            raise InputFileError(f"{path}: 'examples' must hold one non-negative integer per position ({n})")
        examples = data["examples"]
    if examples is not None and len(examples) and examples.min() < 0:
        raise InputFileError(f"{path}: 'examples' must hold one non-negative integer per position ({n})")
    return SearchProblem(concepts, units, n, names, categories, unit_names, examples)
