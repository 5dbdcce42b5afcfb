"""A folder of images with label-map PNGs: the simplest way to bring your own annotated data.

Layout (see ``docs/probes.md``)::

    root/
      labels.csv            # id,name[,category]   ids >= 1; 0 means "no label"
      images/NAME.png       # or .jpg/.jpeg/.bmp/.tif/.tiff/.webp; sub-folders allowed
      masks/NAME.png        # label map: 8/16-bit grey, palette, or RGB encoded as R + 256*G
      masks/NAME.<k>.png    # optional extra channels (k = 1, 2, ...) for overlapping labels
      image_labels.csv      # optional: image,label_id  (labels of the whole image)
      classes.csv           # optional: image,class  (ground-truth class: a model class name or index)

The module also holds the image and label-map readers shared with
:mod:`logiclens.vision.probes.broden`.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from logiclens.vision.probes.base import ProbeDataset

__all__ = [
    "IMAGE_SUFFIXES",
    "SegmentationFolderProbe",
    "read_label_map",
    "read_rgb",
    "resize_nearest",
    "write_label_map",
]

#: file suffixes accepted for images (case-insensitive)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_GREY_MODES = frozenset({"1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N"})
_RGB_MODES = frozenset({"RGB", "RGBA"})
_EXTRA_CHANNEL = re.compile(r"^(?P<name>.+)\.(?P<k>[0-9]+)$")


# --------------------------------------------------------------------------------------
# Shared readers
# --------------------------------------------------------------------------------------


def _pil_image() -> Any:
    """The ``PIL.Image`` module, with a clear error when Pillow is missing."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is installed in the test env
        raise ImportError("reading probe images needs Pillow: pip install pillow") from exc
    return Image


def _open_image(path: Path) -> Any:
    """Open an image file lazily, turning read failures into errors that name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    image_module = _pil_image()
    try:
        return image_module.open(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read image ({exc})") from exc


def check_size(size: ArrayLike, what: str) -> tuple[int, int]:
    """Validate an ``(height, width)`` pair of positive integers.

    Parameters
    ----------
    size : pair of int
    what : str
        Name of the argument, for the error message.

    Returns
    -------
    (int, int)
    """
    values = tuple(np.asarray(size).ravel().tolist())
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{what} must be (height, width) with positive integers, got {size!r}")
    return int(values[0]), int(values[1])


def read_rgb(path: Path, size: tuple[int, int]) -> NDArray[np.float32]:
    """Read an image as RGB float32 (3, H, W) in [0, 1], resized bilinearly to ``size``.

    Parameters
    ----------
    path : Path
    size : (int, int)
        Output (height, width).

    Returns
    -------
    ndarray of float32, shape (3, H, W)
    """
    image = _open_image(path)
    try:
        rgb = image.convert("RGB")
        if rgb.size != (size[1], size[0]):
            rgb = rgb.resize((size[1], size[0]), _pil_image().Resampling.BILINEAR)
        pixels = np.asarray(rgb, dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot decode image ({exc})") from exc
    finally:
        image.close()
    return np.ascontiguousarray(pixels.transpose(2, 0, 1) / np.float32(255.0))


def label_map_size(path: Path) -> tuple[int, int]:
    """(height, width) of a label-map PNG, read from its header only."""
    image = _open_image(path)
    try:
        width, height = image.size
    finally:
        image.close()
    return height, width


def _decode_pixels(path: Path, pixels: NDArray[Any], mode: str, allow_blue: bool) -> NDArray[np.int32]:
    """Label ids from decoded pixels of the given Pillow mode."""
    if mode in _GREY_MODES:
        ids = pixels.astype(np.int64)
        if ids.min(initial=0) < 0:
            raise ValueError(f"{path}: negative label id {int(ids.min())}")
        return ids.astype(np.int32)
    if mode in _RGB_MODES:
        if not allow_blue and pixels[..., 2].any():
            raise ValueError(
                f"{path}: RGB label map with a non-zero blue channel; labels are encoded as R + 256*G "
                "(is this a colour visualisation rather than a label map?)"
            )
        return pixels[..., 0].astype(np.int32) + 256 * pixels[..., 1].astype(np.int32)
    raise ValueError(f"{path}: unsupported label-map mode {mode!r} (use 8/16-bit grey, palette or RGB)")


def read_label_map(path: Path, *, allow_blue: bool = True) -> NDArray[np.int32]:
    """Decode a label-map PNG into label ids, int32 (h, w).

    Grey (8- or 16-bit) and palette images hold the ids directly; RGB(A) images encode
    them as ``R + 256 * G`` (the Broden convention).

    Parameters
    ----------
    path : Path
    allow_blue : bool, default True
        Whether a non-zero blue channel is accepted (and ignored) in RGB label maps.
        Broden leaves it unused; the folder format requires it to be zero.

    Returns
    -------
    ndarray of int32, shape (h, w)
    """
    image = _open_image(path)
    try:
        mode = image.mode
        pixels = np.asarray(image)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot decode label map ({exc})") from exc
    finally:
        image.close()
    return _decode_pixels(path, pixels, mode, allow_blue)


def write_label_map(path: str | Path, labels: ArrayLike) -> None:
    """Write label ids (h, w) as a PNG that :func:`read_label_map` reads back.

    Ids below 256 are written as 8-bit grey, larger ones (up to 65535) as 16-bit grey.

    Parameters
    ----------
    path : str or Path
    labels : array of int, shape (h, w)
    """
    ids = np.asarray(labels)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"labels must be a 2-d integer array, got {ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > 65535):
        raise ValueError(f"label ids must lie in [0, 65535], got [{ids.min()}, {ids.max()}]")
    dtype = np.uint8 if ids.max(initial=0) < 256 else np.uint16
    _pil_image().fromarray(np.ascontiguousarray(ids.astype(dtype))).save(Path(path), format="PNG")


def resize_nearest(labels: NDArray[np.int32], size: tuple[int, int]) -> NDArray[np.int32]:
    """Nearest-neighbour resize of a label map (h, w) to ``size`` (pixel centres)."""
    height, width = labels.shape
    rows = np.minimum(((np.arange(size[0]) + 0.5) * height / size[0]).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * width / size[1]).astype(np.int64), width - 1)
    return labels[np.ix_(rows, cols)]


def hash_files(paths: Sequence[Path], extra: str = "") -> str:
    """sha256 over the contents of ``paths`` (in order) and an extra string."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    digest.update(extra.encode())
    return digest.hexdigest()[:16]


#: how a folder probe's files are fingerprinted: "stat" (size and modification time, cheap) or "full" (content)
VERIFY_MODES = ("stat", "full")


def fingerprint_inputs(root: Path, tables: Sequence[Path], files: Sequence[Path], verify: str = "stat") -> str:
    """The content key of a folder probe: its tables' contents and its files' stat or content.

    ``verify="stat"`` (the default) hashes each file's relative path, size and modification
    time, so that an edit is noticed without reading every image; ``"full"`` hashes every
    file's bytes.
    """
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, got {verify!r}")
    if verify == "full":
        return hash_files([*tables, *files])
    listing = []
    for path in files:
        stat = path.stat()
        listing.append(f"{path.relative_to(root).as_posix()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hash_files(tables, "\n".join(listing))


def existing_dir(path: str | Path, what: str) -> Path:
    """An existing directory as an absolute path, else FileNotFoundError naming it."""
    folder = Path(path).expanduser().absolute()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: {what} not found (not a directory)")
    return folder


def existing_file(path: Path, what: str) -> Path:
    """An existing file, else FileNotFoundError naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    return path


def read_csv(path: Path, required: Sequence[str]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Read a CSV file with a header into ``(header, [(line, row), ...])``.

    Blank lines are skipped. A row with a different number of fields than the header,
    or a header without a ``required`` column, raises ValueError naming the file (and line).
    """
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise ValueError(f"{path}: empty file, expected a header line")
        missing = [name for name in required if name not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; header is {header}")
        rows = []
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != len(header):
                raise ValueError(f"{path}, line {reader.line_num}: {len(fields)} fields, the header has {len(header)}")
            rows.append((reader.line_num, dict(zip(header, fields))))
    return header, rows


def parse_int(text: str, where: str, column: str, minimum: int = 0) -> int:
    """An integer field ``>= minimum``, else ValueError naming ``where`` (file and line)."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{where}: column {column!r} must be an integer, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"{where}: column {column!r} must be >= {minimum}, got {value}")
    return value


def lookup_table(ids: Sequence[int]) -> NDArray[np.int32]:
    """Array mapping label id -> concept index (position in ``ids``), -1 elsewhere."""
    table = np.full(max(ids, default=0) + 1, -1, np.int32)
    table[np.asarray(ids, dtype=np.int64)] = np.arange(len(ids), dtype=np.int32)
    return table


def check_n_images(n_images: int | None) -> int | None:
    """Validate the ``n_images`` argument (None or a positive int)."""
    if n_images is not None and (not isinstance(n_images, int) or isinstance(n_images, bool) or n_images < 1):
        raise ValueError(f"n_images must be None or a positive integer, got {n_images!r}")
    return n_images


# --------------------------------------------------------------------------------------
# The folder format
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One image of a segmentation folder."""

    name: str  # relative path without suffix, POSIX separators
    image: Path
    masks: tuple[Path, ...]  # NAME.png first, then NAME.<k>.png by k
    image_labels: tuple[int, ...]  # label ids of the whole image


def _read_label_table(path: Path) -> tuple[list[int], list[str], list[str]]:
    """Ids, names and categories of ``labels.csv``, sorted by id."""
    _, rows = read_csv(path, ("id", "name"))
    table: dict[int, tuple[str, str]] = {}
    names: dict[str, int] = {}
    for line, row in rows:
        where = f"{path}, line {line}"
        label = parse_int(row["id"], where, "id", minimum=1)
        name = row["name"].strip()
        if not name:
            raise ValueError(f"{where}: empty name for id {label}")
        if label in table:
            raise ValueError(f"{where}: id {label} is listed twice")
        if name in names:
            raise ValueError(f"{where}: name {name!r} is used by ids {names[name]} and {label}")
        names[name] = label
        table[label] = (name, row.get("category", "").strip())
    if not table:
        raise ValueError(f"{path}: no labels")
    ids = sorted(table)
    return ids, [table[i][0] for i in ids], [table[i][1] for i in ids]


def _relative_name(path: Path, folder: Path) -> str:
    """Path relative to ``folder`` without its suffix, with POSIX separators."""
    return path.relative_to(folder).with_suffix("").as_posix()


def _visible_files(folder: Path) -> list[Path]:
    """Files under ``folder`` (recursively), skipping hidden files and folders, sorted."""
    files = []
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if path.is_file() and not any(part.startswith(".") for part in parts):
            files.append(path)
    return sorted(files)


def _find_images(folder: Path) -> dict[str, Path]:
    """Images of ``images/`` by name, sorted by name."""
    images: dict[str, Path] = {}
    for path in _visible_files(folder):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{path}: not an image file (accepted suffixes: {', '.join(IMAGE_SUFFIXES)})")
        name = _relative_name(path, folder)
        if name in images:
            raise ValueError(f"{path}: two images named {name!r} ({images[name].name} and {path.name})")
        images[name] = path
    if not images:
        raise ValueError(f"{folder}: no images")
    for name in images:
        match = _EXTRA_CHANNEL.match(name)
        if match and match["name"] in images:
            raise ValueError(
                f"{images[name]}: image names {match['name']!r} and {name!r} are ambiguous "
                f"(masks/{name}.png could be an extra channel of {match['name']!r}); rename one"
            )
    return dict(sorted(images.items()))


def _find_masks(folder: Path, names: Sequence[str]) -> dict[str, list[Path]]:
    """Mask files by image name: ``NAME.png`` first, then ``NAME.<k>.png`` by k."""
    known = set(names)
    main: dict[str, Path] = {}
    extra: dict[str, list[tuple[int, Path]]] = {}
    for path in _visible_files(folder):
        if path.suffix.lower() != ".png":
            raise ValueError(f"{path}: masks must be PNG files")
        stem = _relative_name(path, folder)
        match = _EXTRA_CHANNEL.match(stem)
        if stem in known:
            main[stem] = path
        elif match and match["name"] in known:
            extra.setdefault(match["name"], []).append((int(match["k"]), path))
        else:
            raise ValueError(f"{path}: no image images/{stem}.* for this mask")
    masks = {}
    for name in names:
        if name not in main:
            raise FileNotFoundError(f"{folder / name}.png: mask not found for image {name!r}")
        masks[name] = [main[name]] + [path for _, path in sorted(extra.get(name, []))]
    return masks


def _read_image_labels(path: Path, folder: Path, images: dict[str, Path], ids: set[int]) -> dict[str, list[int]]:
    """``image_labels.csv``: label ids of whole images, by image name (file order, no repeats).

    The ``image`` column holds an image's name (``NAME``) or its file name under ``images/``.
    """
    if not path.exists():
        return {}
    by_file = {image.relative_to(folder).as_posix(): name for name, image in images.items()}
    _, rows = read_csv(path, ("image", "label_id"))
    labels: dict[str, list[int]] = {}
    for line, row in rows:
        where = f"{path}, line {line}"
        image = row["image"].strip()
        name = image if image in images else by_file.get(image)
        if name is None:
            raise ValueError(f"{where}: unknown image {image!r} (no images/{image} or images/{image}.*)")
        label = parse_int(row["label_id"], where, "label_id", minimum=1)
        if label not in ids:
            raise ValueError(f"{where}: label id {label} is not in labels.csv")
        if label not in labels.setdefault(name, []):
            labels[name].append(label)
    return labels


def read_classes(path: Path, folder: Path, images: dict[str, Path]) -> dict[str, int | str]:
    """``classes.csv``: the ground-truth class of images, in the model's label space.

    The ``class`` column holds a class index (digits) or a class name; images not listed, or
    with an empty class, have no label (they are left out of accuracy figures).
    """
    if not path.exists():
        return {}
    by_file = {image.relative_to(folder).as_posix(): name for name, image in images.items()}
    _, rows = read_csv(path, ("image", "class"))
    classes: dict[str, int | str] = {}
    for line, row in rows:
        image, value = row["image"].strip(), row["class"].strip()
        name = image if image in images else by_file.get(image)
        if name is None:
            raise ValueError(f"{path}, line {line}: unknown image {image!r} (no images/{image} or images/{image}.*)")
        if value:
            classes[name] = int(value) if value.isdigit() else value
    return classes


def _common_mask_size(entries: Sequence[_Entry]) -> tuple[int, int]:
    """The size shared by every label map, else ValueError naming the first odd one."""
    first = label_map_size(entries[0].masks[0])
    for entry in entries:
        for mask in entry.masks:
            size = label_map_size(mask)
            if size != first:
                raise ValueError(
                    f"{mask}: label map is {size[0]}x{size[1]}, {entries[0].masks[0].name} is "
                    f"{first[0]}x{first[1]}; make them equal or pass mask_size"
                )
    return first


class SegmentationFolderProbe(ProbeDataset):
    """Images with label-map PNGs in a plain folder; the format is described in ``docs/probes.md``.

    Every label of ``labels.csv`` is a concept (sorted by id), whether or not it occurs.
    ``load`` returns one label channel per mask file of the image (``NAME.png`` then
    ``NAME.<k>.png``) and one channel per image-level label, broadcast over the mask.

    Parameters
    ----------
    root : str or Path
        The folder holding ``labels.csv``, ``images/`` and ``masks/``.
    n_images : int, optional
        Use only the first ``n_images`` images (sorted by name).
    image_size : (int, int), default (224, 224)
        (H, W) the images are resized to (bilinear).
    mask_size : (int, int), optional
        (h, w) the label maps are resized to (nearest neighbour). By default the label maps'
        own size, which must then be the same for all of them.

    Raises
    ------
    FileNotFoundError
        When the root, ``labels.csv``, ``images/``, ``masks/`` or an image's mask is missing.
    ValueError
        For malformed tables, unknown label ids, stray files or label maps of unequal size.
    """

    def __init__(
        self,
        root: str | Path,
        n_images: int | None = None,
        image_size: tuple[int, int] = (224, 224),
        mask_size: tuple[int, int] | None = None,
        verify: str = "stat",
    ) -> None:
        self.root = existing_dir(root, "segmentation folder")
        self.verify = verify
        self.n_images = check_n_images(n_images)
        self.image_size = check_size(image_size, "image_size")
        self._resize_masks = mask_size is not None
        self._label_path = existing_file(self.root / "labels.csv", "label table")
        ids, self.concept_names, self.concept_categories = _read_label_table(self._label_path)
        self.label_ids = ids
        self._lookup = lookup_table(ids)
        self._entries = self._index(set(ids))
        self.mask_size = (
            check_size(mask_size, "mask_size") if mask_size is not None else (_common_mask_size(self._entries))
        )
        self._hash = self._content_hash()

    def _index(self, ids: set[int]) -> list[_Entry]:
        """The selected images with their mask files and image-level labels."""
        folder = existing_dir(self.root / "images", "images folder")
        images = _find_images(folder)
        masks = _find_masks(existing_dir(self.root / "masks", "masks folder"), list(images))
        image_labels = _read_image_labels(self.root / "image_labels.csv", folder, images, ids)
        names = list(images)[: self.n_images]
        self._classes = read_classes(self.root / "classes.csv", folder, images)
        return [_Entry(n, images[n], tuple(masks[n]), tuple(image_labels.get(n, ()))) for n in names]

    def _content_hash(self) -> str:
        """Hash of the tables and of every selected file (:func:`fingerprint_inputs`, ``verify``)."""
        optional = [self.root / "image_labels.csv", self.root / "classes.csv"]
        tables = [self._label_path] + [p for p in optional if p.exists()]
        files = [path for entry in self._entries for path in (entry.image, *entry.masks)]
        return fingerprint_inputs(self.root, tables, files, self.verify)

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, index: int) -> _Entry:
        """Entry ``index``, with negative indices counted from the end."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"image index {index} out of range for {len(self)} images")
        return self._entries[index]

    def _channel(self, path: Path) -> NDArray[np.int32]:
        """One mask file as concept indices (h, w) at ``mask_size``, -1 where unlabelled."""
        ids = read_label_map(path, allow_blue=False)
        if self._resize_masks:
            ids = resize_nearest(ids, self.mask_size)
        elif ids.shape != self.mask_size:
            raise ValueError(f"{path}: label map is {ids.shape[0]}x{ids.shape[1]}, expected {self.mask_size}")
        unknown = np.setdiff1d(ids[ids > 0], self.label_ids)
        if unknown.size:
            raise ValueError(f"{path}: label id(s) {unknown[:10].tolist()} not in {self._label_path}")
        return self._lookup[ids]

    def load(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
        """Image ``index``: RGB float32 (3, H, W) in [0, 1] and labels int32 (h, w, L), -1 padded."""
        entry = self._entry(index)
        image = read_rgb(entry.image, self.image_size)
        channels = [self._channel(path) for path in entry.masks]
        channels += [np.full(self.mask_size, self._lookup[label], np.int32) for label in entry.image_labels]
        return image, np.stack(channels, axis=-1)

    def class_label(self, index: int, labels: NDArray[np.int32]) -> int | str | None:
        """The image's class from ``classes.csv`` (a model class index or name), if listed."""
        return self._classes.get(self._entry(index).name)

    def group(self, index: int) -> str:
        """The image's name (its path under ``images/`` without suffix)."""
        return self._entry(index).name

    def config(self) -> dict[str, Any]:
        """Kind, absolute root, selection, sizes and a hash of the folder's tables and file listing."""
        return {
            "kind": "segmentation_folder",
            "root": str(self.root),
            "n_images": self.n_images,
            "image_size": list(self.image_size),
            "mask_size": list(self.mask_size),
            "content_hash": self._hash,
            **({"verify": self.verify} if self.verify != "stat" else {}),
        }
