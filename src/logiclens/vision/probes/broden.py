"""The Broden probing set (NetDissect, NetDissect-Lite, compositional explanations).

A Broden tree (e.g. ``broden1_224``) holds ``index.csv``, ``label.csv`` and ``images/``.
Every row of the index is one image; its category columns list label-map PNGs
(``color``, ``object``, ``part``, ``material``: labels encoded as ``R + 256 * G``) or
integer label ids of the whole image (``scene``, ``texture``). Label ids are Broden's
global label numbers from ``label.csv``. The format and the choices made here are
described in ``docs/probes.md``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from logiclens.vision.probes.base import ProbeDataset
from logiclens.vision.probes.segmentation import (
    check_n_images,
    check_size,
    existing_dir,
    existing_file,
    fingerprint_inputs,
    hash_files,
    lookup_table,
    parse_int,
    read_csv,
    read_label_map,
    read_rgb,
)

__all__ = ["CATEGORIES", "IMAGE_CATEGORIES", "PIXEL_CATEGORIES", "BrodenProbe"]

#: Broden's label categories, in the order used to pick a concept's category
CATEGORIES = ("color", "object", "part", "material", "scene", "texture")
#: categories whose cells list label-map PNGs
PIXEL_CATEGORIES = ("color", "object", "part", "material")
#: categories whose cells list label ids of the whole image
IMAGE_CATEGORIES = ("scene", "texture")
_REQUIRED_COLUMNS = ("image", "ih", "iw", "sh", "sw")
_MAX_WORKERS = 8


@dataclass(frozen=True)
class _Row:
    """One selected row of the index."""

    line: int
    image: str
    image_size: tuple[int, int]
    mask_size: tuple[int, int]
    pixel: tuple[tuple[str, tuple[str, ...]], ...]  # (category, label-map paths under images/)
    scalar: tuple[tuple[str, tuple[int, ...]], ...]  # (category, label ids of the whole image)


def _select_categories(categories: Iterable[str] | None, header: Sequence[str], path: Path) -> tuple[str, ...]:
    """The selected category columns, in :data:`CATEGORIES` order."""
    if categories is None:
        return tuple(c for c in CATEGORIES if c in header)
    wanted = [categories] if isinstance(categories, str) else list(categories)
    unknown = [c for c in wanted if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown Broden categories {unknown}; choose from {list(CATEGORIES)}")
    absent = [c for c in wanted if c not in header]
    if absent:
        raise ValueError(f"{path}: no column for categories {absent}; header is {list(header)}")
    if not wanted:
        raise ValueError("categories must name at least one category")
    return tuple(c for c in CATEGORIES if c in wanted)


def _normalise_sources(sources: Iterable[str] | None) -> tuple[str, ...] | None:
    """Source folder names without trailing slashes, or None for all sources."""
    if sources is None:
        return None
    names = [sources] if isinstance(sources, str) else list(sources)
    cleaned = tuple(str(name).strip().strip("/") for name in names)
    if not cleaned or not all(cleaned):
        raise ValueError(f"sources must be non-empty folder names such as 'ade20k', got {sources!r}")
    return cleaned


def _split_cell(text: str) -> list[str]:
    """Entries of a ``;``-separated cell, empty entries dropped."""
    return [entry.strip() for entry in text.split(";") if entry.strip()]


def _parse_row(line: int, row: dict[str, str], categories: Sequence[str], where: str) -> _Row:
    """One index row, validated; ``where`` names the file and line for errors."""
    image = row["image"].strip()
    if not image:
        raise ValueError(f"{where}: empty 'image' field")
    sizes = [parse_int(row[column], where, column, minimum=1) for column in ("ih", "iw", "sh", "sw")]
    pixel = tuple((c, tuple(_split_cell(row[c]))) for c in categories if c in PIXEL_CATEGORIES)
    scalar = tuple(
        (c, tuple(i for i in (parse_int(e, where, c) for e in _split_cell(row[c])) if i > 0))
        for c in categories
        if c in IMAGE_CATEGORIES
    )
    return _Row(line, image, (sizes[0], sizes[1]), (sizes[2], sizes[3]), pixel, scalar)


def _read_index(
    path: Path, categories: Iterable[str] | None, sources: tuple[str, ...] | None, n_images: int | None
) -> tuple[tuple[str, ...], list[_Row]]:
    """Selected categories and the selected rows of the index (source filter, then first n)."""
    header, records = read_csv(path, _REQUIRED_COLUMNS)
    selected = _select_categories(categories, header, path)
    prefixes = None if sources is None else tuple(f"{s}/" for s in sources)
    rows: list[_Row] = []
    for line, record in records:
        if n_images is not None and len(rows) >= n_images:
            break
        if prefixes is None or record["image"].strip().startswith(prefixes):
            rows.append(_parse_row(line, record, selected, f"{path}, line {line}"))
    if not rows:
        detail = "" if sources is None else f" from sources {list(sources)}"
        raise ValueError(f"{path}: no images{detail}")
    return selected, rows


def _common_mask_size(rows: Sequence[_Row], path: Path) -> tuple[int, int]:
    """The (sh, sw) shared by all rows, else ValueError naming the first row that differs."""
    first = rows[0].mask_size
    for row in rows:
        if row.mask_size != first:
            raise ValueError(
                f"{path}, line {row.line}: segmentation size (sh, sw) = {row.mask_size}, but line "
                f"{rows[0].line} has {first}; all selected images must share one mask size"
            )
    return first


def _read_label_names(path: Path) -> dict[int, str]:
    """Label number -> name from ``label.csv`` (label 0 included)."""
    _, records = read_csv(path, ("number", "name"))
    names: dict[int, str] = {}
    for line, record in records:
        where = f"{path}, line {line}"
        number = parse_int(record["number"], where, "number")
        if number in names:
            raise ValueError(f"{where}: label number {number} is listed twice")
        names[number] = record["name"].strip()
    return names


class _Scanner:
    """Reads an image's label maps and collects the label ids used in each category."""

    def __init__(self, images: Path, mask_size: tuple[int, int], known: dict[int, str], label_path: Path) -> None:
        self.images = images
        self.mask_size = mask_size
        self.known = known
        self.label_path = label_path

    def label_map(self, relative: str) -> NDArray[np.int32]:
        """A label map of the tree, checked for size."""
        path = self.images / relative
        ids = read_label_map(path, allow_blue=True)
        if ids.shape != self.mask_size:
            raise ValueError(
                f"{path}: label map is {ids.shape[0]}x{ids.shape[1]}, the index says "
                f"{self.mask_size[0]}x{self.mask_size[1]} (sh x sw)"
            )
        return ids

    def _check_known(self, ids: Iterable[int], source: str) -> None:
        """ValueError when an id is missing from label.csv."""
        unknown = sorted(i for i in ids if i not in self.known)
        if unknown:
            raise ValueError(f"{source}: label id(s) {unknown[:10]} are not in {self.label_path}")

    def scan(self, row: _Row, index_path: Path) -> dict[str, set[int]]:
        """Label ids (without 0) used by one row, by category; checks that the image exists."""
        existing_file(self.images / row.image, "image")
        used: dict[str, set[int]] = {}
        for category, files in row.pixel:
            for relative in files:
                ids = set(np.unique(self.label_map(relative)).tolist()) - {0}
                self._check_known(ids, str(self.images / relative))
                used.setdefault(category, set()).update(ids)
        for category, ids in row.scalar:
            self._check_known(ids, f"{index_path}, line {row.line}")
            used.setdefault(category, set()).update(ids)
        return used


def _vocabulary(
    used: Iterable[dict[str, set[int]]], names: dict[int, str], label_path: Path
) -> tuple[list[int], list[str], list[str]]:
    """Concept ids (sorted), names and categories (first category in CATEGORIES order)."""
    by_category: dict[str, set[int]] = {}
    for row_used in used:
        for category, ids in row_used.items():
            by_category.setdefault(category, set()).update(ids)
    category_of: dict[int, str] = {}
    for category in CATEGORIES:
        for label in by_category.get(category, ()):
            category_of.setdefault(label, category)
    ids = sorted(category_of)
    concept_names = [names[i] for i in ids]
    seen: dict[str, int] = {}
    for label, name in zip(ids, concept_names):
        if not name:
            raise ValueError(f"{label_path}: label {label} has an empty name")
        if name in seen:
            raise ValueError(f"{label_path}: labels {seen[name]} and {label} are both named {name!r}")
        seen[name] = label
    return ids, concept_names, [category_of[i] for i in ids]


class BrodenProbe(ProbeDataset):
    """The Broden dataset (or a subset of it) as a probe.

    Concepts are the Broden labels (label 0 excluded) that occur in the selected rows and
    categories, sorted by label number and named from ``label.csv``. A concept's category
    is the index column it occurs in; a label occurring in several selected columns gets
    the first of them in :data:`CATEGORIES` order. Finding the labels reads every label map
    of the selection once, at construction.

    ``load`` returns one label channel per label-map PNG of the row (several PNGs in one
    cell, e.g. overlapping parts, give several channels, so a concept is present where any
    of them holds it) and one channel per scene or texture id, broadcast over the mask.

    Parameters
    ----------
    root : str or Path
        The Broden folder (holding ``index.csv``, ``label.csv`` and ``images/``).
    index_file : str, default "index.csv"
        Index file under ``root``, e.g. ``"index_ade20k.csv"`` as shipped with compexp.
    categories : sequence of str, optional
        Subset of ``color``, ``object``, ``part``, ``material``, ``scene``, ``texture``.
        Default: every one of them that is a column of the index.
    sources : sequence of str, optional
        Keep the rows whose image path starts with ``<source>/``, e.g. ``["ade20k"]``.
    n_images : int, optional
        Keep the first ``n_images`` selected rows.
    image_size : (int, int), optional
        (H, W) the images are resized to (bilinear). Default: (ih, iw) of the first row.
    class_map : str or Path, optional
        A CSV file ``scene,class`` mapping Broden scene names (as in ``label.csv``, e.g.
        ``bedroom-s``) to the model's classes (a class index or name), so that images carry
        ground-truth labels for :mod:`logiclens.analysis`. An image whose scenes map to no
        class, or to different classes, has no label.

    Raises
    ------
    FileNotFoundError
        When the root, the index, ``label.csv``, an image or a label map is missing.
    ValueError
        For malformed index or label rows (naming file and line), label ids missing from
        ``label.csv``, label maps of the wrong size, or unequal (sh, sw) in the selection.
    """

    def __init__(
        self,
        root: str | Path,
        index_file: str = "index.csv",
        categories: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        n_images: int | None = None,
        image_size: tuple[int, int] | None = None,
        class_map: str | Path | None = None,
        verify: str = "stat",
    ) -> None:
        self.root = existing_dir(root, "Broden folder")
        self.verify = verify
        self.index_file = str(index_file)
        self._index_path = existing_file(self.root / self.index_file, "Broden index")
        self._label_path = existing_file(self.root / "label.csv", "Broden label table")
        self._images = self.root / "images"
        self.sources = _normalise_sources(sources)
        self.n_images = check_n_images(n_images)
        self.categories, self._rows = _read_index(self._index_path, categories, self.sources, self.n_images)
        self.mask_size = _common_mask_size(self._rows, self._index_path)
        self.image_size = check_size(image_size, "image_size") if image_size is not None else self._rows[0].image_size
        self._scanner = _Scanner(self._images, self.mask_size, _read_label_names(self._label_path), self._label_path)
        self.label_ids, self.concept_names, self.concept_categories = _vocabulary(
            self._scan(), self._scanner.known, self._label_path
        )
        self._lookup = lookup_table(self.label_ids)
        files = [self._images / row.image for row in self._rows]
        files += [self._images / relative for row in self._rows for _, paths in row.pixel for relative in paths]
        self._hash = fingerprint_inputs(self.root, [self._index_path, self._label_path], files, verify)
        self.class_map = None if class_map is None else existing_file(Path(class_map).expanduser(), "class map")
        self._scene_classes = self._read_class_map() if self.class_map is not None else {}

    def _read_class_map(self) -> dict[int, int | str]:
        """Broden scene label id -> model class, from ``class_map``."""
        assert self.class_map is not None
        by_name = {name: label for label, name in self._scanner.known.items()}
        _, rows = read_csv(self.class_map, ("scene", "class"))
        mapping: dict[int, int | str] = {}
        for line, row in rows:
            scene, value = row["scene"].strip(), row["class"].strip()
            if scene not in by_name:
                raise ValueError(f"{self.class_map}, line {line}: {scene!r} is not a label of {self._label_path}")
            if value:
                mapping[by_name[scene]] = int(value) if value.isdigit() else value
        return mapping

    def class_label(self, index: int, labels: NDArray[np.int32]) -> int | str | None:
        """The model class its scene maps to through ``class_map`` (None: no map, no scene, or ambiguous)."""
        found = {self._scene_classes[i] for category, ids in self._row(index).scalar if category == "scene"
                 for i in ids if i in self._scene_classes}  # fmt: skip
        return found.pop() if len(found) == 1 else None

    def _scan(self) -> list[dict[str, set[int]]]:
        """Label ids used by each selected row, read with a few threads."""
        workers = max(1, min(_MAX_WORKERS, os.cpu_count() or 1, len(self._rows)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda row: self._scanner.scan(row, self._index_path), self._rows))

    def __len__(self) -> int:
        return len(self._rows)

    def _row(self, index: int) -> _Row:
        """Row ``index``, with negative indices counted from the end."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"image index {index} out of range for {len(self)} images")
        return self._rows[index]

    def _concepts(self, ids: NDArray[np.int32], source: str) -> NDArray[np.int32]:
        """Broden label ids -> concept indices (-1 for label 0)."""
        if ids.max(initial=0) >= len(self._lookup):
            raise ValueError(f"{source}: label id {int(ids.max())} was not seen when the probe was built")
        return self._lookup[ids]

    def load(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
        """Image ``index``: RGB float32 (3, H, W) in [0, 1] and labels int32 (h, w, L), -1 padded."""
        row = self._row(index)
        image = read_rgb(self._images / row.image, self.image_size)
        channels = [
            self._concepts(self._scanner.label_map(relative), str(self._images / relative))
            for _, files in row.pixel
            for relative in files
        ]
        channels += [np.full(self.mask_size, self._lookup[i], np.int32) for _, ids in row.scalar for i in ids]
        if not channels:
            channels = [np.full(self.mask_size, -1, np.int32)]
        return image, np.stack(channels, axis=-1)

    def group(self, index: int) -> str:
        """The image's path under ``images/`` (e.g. ``ade20k/ADE_train_00000001.jpg``)."""
        return self._row(index).image

    def config(self) -> dict[str, Any]:
        """Kind, absolute root, index file, selections, sizes and a hash of index and label.csv."""
        return {
            "kind": "broden",
            "root": str(self.root),
            "index_file": self.index_file,
            "categories": list(self.categories),
            "sources": None if self.sources is None else list(self.sources),
            "n_images": self.n_images,
            "image_size": list(self.image_size),
            "mask_size": list(self.mask_size),
            "content_hash": self._hash,
            **({"verify": self.verify} if self.verify != "stat" else {}),
            **({} if self.class_map is None else {"class_map": str(self.class_map),
                                                  "class_map_hash": hash_files([self.class_map])}),
        }  # fmt: skip
