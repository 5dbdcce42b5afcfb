"""A probe of real photo cut-outs: Tux Paint stamps pasted on procedural backgrounds.

Debian's ``tuxpaint-stamps-default`` package (GPL-2, about 160 MB) holds some 440 PNG photos
and realistic drawings with transparent backgrounds, filed in folders such as
``animals/birds/owl.png``. The alpha channel is a pixel-exact object mask, and the folder
path is a label hierarchy. :class:`StampsProbe` pastes one to three of them at random scale
and position onto the backgrounds of :mod:`logiclens.vision.probes.shapes`, later stamps in front
of earlier ones, and labels every annotation pixel with

* ``scene`` — the background kind (:data:`~logiclens.vision.probes.shapes.SCENE_NAMES`), image-level;
* ``object`` — the stamp's file name without extension (``owl``); stamps with the same name in
  different folders share the concept;
* ``object-group`` — every level of the stamp's folder path (``animals``, ``animals/birds``);
* ``color`` — Broden's colour names, computed from the pixels as in the shapes probe.

Stamps are used from PNG files only, outside any folder named ``cartoon``, ``symbols`` or
``alphabets``, and only when the alpha channel is informative: a mask (alpha > 127) that is
empty or fills at least 99 % of its own bounding box (an opaque rectangle) is trivial.

The stamps are never shipped with logiclens. They are looked up, without side effects, in
``root``, then ``/usr/share/tuxpaint/stamps`` (``apt-get install tuxpaint-stamps-default``),
then the cache directory where :func:`fetch_stamps` unpacks the package without root rights
(``apt-get download`` + ``dpkg-deb -x``): ``$LOGICLENS_CACHE/tuxpaint-stamps``, by default
``~/.cache/logiclens/tuxpaint-stamps``. :meth:`StampsProbe.ensure` fetches when needed.

Image and annotation grids are tied as in :mod:`logiclens.vision.probes.shapes`: object and group
labels are those of each mask pixel's centre pixel, where a stamp covers a pixel when its
resized alpha there exceeds 127; colour labels name the mean colour of the block.

Pillow is needed to read the PNG files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from logiclens.vision.probes.base import ProbeDataset
from logiclens.vision.probes.colors import COLOR_NAMES, color_labels
from logiclens.vision.probes.shapes import (
    SCENE_NAMES,
    as_size,
    block_bounds,
    block_mean,
    sample_background,
    sample_centres,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "DEBIAN_PACKAGE",
    "EXCLUDED_FOLDERS",
    "SYSTEM_STAMPS_ROOT",
    "StampFile",
    "StampsFetchError",
    "StampsProbe",
    "default_cache_dir",
    "fetch_stamps",
    "find_stamps_root",
    "fingerprint_files",
    "list_stamp_files",
    "mask_is_informative",
    "scan_stamps",
    "stamps_available",
]

#: bump when compositing changes, so that caches keyed by ``config()`` notice
STAMPS_VERSION = 1
DEBIAN_PACKAGE = "tuxpaint-stamps-default"
SYSTEM_STAMPS_ROOT = Path("/usr/share/tuxpaint/stamps")
#: where the stamps lie inside an unpacked package
PACKAGE_STAMPS_PATH = PurePosixPath("usr/share/tuxpaint/stamps")
#: folders (at any depth) whose stamps are drawings or symbols rather than photos
EXCLUDED_FOLDERS = frozenset({"cartoon", "symbols", "alphabets"})
#: a mask filling at least this fraction of its bounding box is a rectangle, not a shape
RECTANGLE_FILL = 0.99


# ---------------------------------------------------------------------- locating and fetching
class StampsFetchError(OSError):
    """Fetching the stamps package failed (no ``apt-get``/``dpkg-deb``, no network, ...).

    An :class:`OSError`, so that callers falling back to the ``shapes`` probe on missing
    data catch it with ``except OSError``.
    """


def default_cache_dir() -> Path:
    """``$LOGICLENS_CACHE/tuxpaint-stamps``, or ``~/.cache/logiclens/tuxpaint-stamps``."""
    base = os.environ.get("LOGICLENS_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "logiclens") / "tuxpaint-stamps"


def _stamps_dir(path: Path) -> Path | None:
    """The stamps folder of ``path``: itself, or the one inside an unpacked package."""
    inner = path / PACKAGE_STAMPS_PATH
    if inner.is_dir():
        return inner
    return path if path.is_dir() else None


def find_stamps_root(
    root: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """Where the stamps are, or None; looks only, never fetches.

    Parameters
    ----------
    root : path, optional
        A stamps folder (or an unpacked package holding ``usr/share/tuxpaint/stamps``). When
        given, it is the only place looked at.
    cache_dir : path, optional
        Where :func:`fetch_stamps` unpacks the package; default :func:`default_cache_dir`.
    """
    if root is not None:
        return _stamps_dir(Path(root))
    if SYSTEM_STAMPS_ROOT.is_dir():
        return SYSTEM_STAMPS_ROOT
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    inner = cache / PACKAGE_STAMPS_PATH
    return inner if inner.is_dir() else None


def stamps_available(
    root: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> bool:
    """Whether :func:`find_stamps_root` finds the stamps (no side effects)."""
    return find_stamps_root(root, cache_dir) is not None


def _run(command: Sequence[str], cwd: Path) -> None:
    """Run a command, raising StampsFetchError with its output when it fails."""
    result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-2000:]
        raise StampsFetchError(f"`{' '.join(command)}` failed with status {result.returncode}: {output}")


def fetch_stamps(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Download and unpack Debian's ``tuxpaint-stamps-default`` into ``cache_dir`` (no root needed).

    Runs ``apt-get download tuxpaint-stamps-default`` in a temporary folder and
    ``dpkg-deb -x`` into ``cache_dir`` (default :func:`default_cache_dir`). Does nothing when
    the stamps are already there.

    Returns
    -------
    Path
        The stamps folder, ``cache_dir/usr/share/tuxpaint/stamps``.

    Raises
    ------
    StampsFetchError
        When ``apt-get`` or ``dpkg-deb`` is missing or fails (an OSError).
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / PACKAGE_STAMPS_PATH
    if target.is_dir():
        return target
    tools = {name: shutil.which(name) for name in ("apt-get", "dpkg-deb")}
    missing = [name for name, found in tools.items() if found is None]
    if missing:
        raise StampsFetchError(f"fetching Tux Paint stamps needs {' and '.join(missing)} (Debian or Ubuntu)")
    cache.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="logiclens-stamps-") as tmp,
        tempfile.TemporaryDirectory(dir=cache, prefix=".unpack-") as staging,
    ):
        _run([str(tools["apt-get"]), "download", DEBIAN_PACKAGE], Path(tmp))
        debs = sorted(Path(tmp).glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if not debs:
            raise StampsFetchError(f"apt-get download left no {DEBIAN_PACKAGE} package file")
        _run([str(tools["dpkg-deb"]), "-x", str(debs[-1]), staging], Path(tmp))
        shutil.rmtree(cache / "usr", ignore_errors=True)  # a partial earlier unpack
        os.replace(Path(staging) / "usr", cache / "usr")
    return target


# ---------------------------------------------------------------------- reading stamp files
def _pil() -> Any:
    """The PIL.Image module, with a helpful error when Pillow is missing."""
    try:
        from PIL import Image
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("the stamps probe reads PNG files with Pillow: pip install pillow") from error
    return Image


def _is_candidate(relative: PurePosixPath) -> bool:
    """A PNG file outside the excluded folders."""
    return relative.suffix.lower() == ".png" and not EXCLUDED_FOLDERS.intersection(relative.parts[:-1])


def list_stamp_files(root: Path) -> list[tuple[str, int, int]]:
    """Candidate stamp files under ``root``: sorted (relative path, size in bytes, mtime in ns)."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in EXCLUDED_FOLDERS)
        for file in files:
            path = Path(folder, file)
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if _is_candidate(relative) and path.is_file():
                stat = path.stat()
                found.append((str(relative), stat.st_size, stat.st_mtime_ns))
    return sorted(found)


def _open_rgba(path: Path) -> PILImage:
    """Decode a PNG as RGBA (palette, grey and RGB files converted)."""
    with _pil().open(path) as image:
        image.load()
        return image if image.mode == "RGBA" else image.convert("RGBA")


def mask_is_informative(alpha: NDArray[np.uint8]) -> bool:
    """Whether ``alpha > 127`` is a shape: non-empty and not (nearly) its own bounding box."""
    mask = alpha > 127
    area = int(mask.sum())
    if area == 0:
        return False
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    return bool(area < RECTANGLE_FILL * box)


@dataclass(frozen=True)
class StampFile:
    """A usable stamp: where it is and the concepts it carries.

    Attributes
    ----------
    path : str
        Relative to the stamps folder, with ``/`` separators.
    name : str
        ``object`` concept (the file stem; see :func:`scan_stamps` for clashes).
    groups : tuple of str
        ``object-group`` concepts, top level first: ``("animals", "animals/birds")``.
    n_bytes : int
    """

    path: str
    name: str
    groups: tuple[str, ...]
    n_bytes: int


def _groups(relative: PurePosixPath) -> tuple[str, ...]:
    """Every prefix of the folder path: ``a/b/c.png`` -> ``("a", "a/b")``."""
    folders = relative.parts[:-1]
    return tuple("/".join(folders[: depth + 1]) for depth in range(len(folders)))


def _object_names(stems: Sequence[str], reserved: set[str]) -> dict[str, str]:
    """Concept name per stem: the stem, with ``-object`` appended when it clashes with another concept."""
    return {stem: f"{stem}-object" if stem in reserved else stem for stem in stems}


def fingerprint_files(files: Sequence[tuple[str, int, int]]) -> str:
    """Hash of the candidate files' relative paths and sizes."""
    payload = json.dumps([[path, size] for path, size, _ in files])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


_SCANS: dict[tuple[str, tuple[tuple[str, int, int], ...]], tuple[StampFile, ...]] = {}


def scan_stamps(root: str | os.PathLike[str]) -> tuple[list[StampFile], str]:
    """The usable stamps under ``root`` and the fingerprint of the candidate files.

    Decodes every candidate once to check its mask (well under a second for the Debian
    package); results are remembered per process for an unchanged file list.

    Stamps are sorted by path. Their ``name`` is the file stem, unless the stem equals a
    folder path, a scene or a colour name, in which case ``-object`` is appended.

    Returns
    -------
    stamps : list of StampFile
    fingerprint : str
        :func:`fingerprint_files` of the candidates (names and sizes), usable stamps or not.
    """
    root = Path(root)
    files = list_stamp_files(root)
    key = (str(root.resolve()), tuple(files))
    if key not in _SCANS:
        usable = [entry for entry in files if mask_is_informative(np.asarray(_open_rgba(root / entry[0]))[..., 3])]
        relatives = [PurePosixPath(path) for path, _, _ in usable]
        reserved = {group for relative in relatives for group in _groups(relative)}
        reserved |= set(SCENE_NAMES) | set(COLOR_NAMES)
        names = _object_names(sorted({relative.stem for relative in relatives}), reserved)
        _SCANS[key] = tuple(
            StampFile(str(relative), names[relative.stem], _groups(relative), size)
            for relative, (_, size, _) in zip(relatives, usable)
        )
    return list(_SCANS[key]), fingerprint_files(files)


@lru_cache(maxsize=512)
def _decoded_stamp(path: str, n_bytes: int, mtime_ns: int, max_side: int) -> PILImage:
    """A stamp cropped to its visible pixels, at most ``max_side`` on its longer side, premultiplied (RGBa).

    ``n_bytes`` and ``mtime_ns`` only key the cache, so that a changed file is read again.
    """
    image = _open_rgba(Path(path))
    box = image.getchannel("A").getbbox()
    if box is not None:
        image = image.crop(box)
    scale = max_side / max(image.size)
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, _pil().Resampling.BILINEAR)  # Pillow premultiplies RGBA for this
    return image.convert("RGBa")


# ---------------------------------------------------------------------- compositing
@dataclass(frozen=True)
class Placement:
    """Where one stamp goes: stamp number, top-left corner, size (image pixels) and mirroring."""

    stamp: int
    top: int
    left: int
    height: int
    width: int
    mirrored: bool


def _place(rng: np.random.Generator, stamp: int, shape: tuple[int, int], size: tuple[int, int]) -> Placement:
    """Random scale (geometric-mean side 30-60 % of the image's shorter side) and position, fully inside."""
    height, width = shape
    scale = rng.uniform(0.3, 0.6) * min(size) / np.sqrt(height * width)
    scale = min(scale, size[0] / height, size[1] / width)
    new_height = int(np.clip(round(height * scale), 1, size[0]))
    new_width = int(np.clip(round(width * scale), 1, size[1]))
    top = int(rng.integers(0, size[0] - new_height + 1))
    left = int(rng.integers(0, size[1] - new_width + 1))
    return Placement(stamp, top, left, new_height, new_width, bool(rng.random() < 0.5))


def _paste(
    image: NDArray[np.float32], owner: NDArray[np.int8], pixels: NDArray[np.uint8], spot: Placement, number: int
) -> None:
    """Blend premultiplied RGBa ``pixels`` over ``image`` and mark alpha > 127 as ``number`` in ``owner``."""
    rows = slice(spot.top, spot.top + spot.height)
    cols = slice(spot.left, spot.left + spot.width)
    alpha = pixels[..., 3]
    region = image[rows, cols]
    region *= 1.0 - alpha[..., None].astype(np.float32) / 255.0
    region += pixels[..., :3].astype(np.float32) / 255.0
    np.clip(region, 0.0, 1.0, out=region)
    owner[rows, cols][alpha > 127] = number


def imagenet_matches() -> dict[str, int]:
    """Stamp names matched to ImageNet-1k classes: ``{stamp name: class index}``.

    The table ``vision/probes/data/stamps_imagenet.csv`` was made by this rule and then
    reviewed by hand (``how`` says which): lower-case the stamp's file name, turn ``_`` and
    ``-`` into spaces, drop digits and the words mirror, photo, new, old, small, large, left,
    little, whole, profile; then the longest run of consecutive words that equals one of the
    comma-separated synonyms of an ImageNet class name (also with a plural ``s`` added or
    removed) matches that class. The review removed wrong senses (a party horn is not a
    French horn, the ``mouse`` stamp is the animal, ``anemone_red`` is the flower,
    ``bow`` a ribbon, ``roundabout`` a road sign, ``grannysmith`` a doll, ``trophy_cup`` no
    drinking cup, the dreidel letter ``hay``, ``bunny-head``, ``australian_rules_football``)
    and added names written together or under another synonym (``firetruck``, ``747``,
    ``tucan``, ...).
    """
    import csv
    from importlib import resources

    text = resources.files("logiclens.vision.probes").joinpath("data/stamps_imagenet.csv").read_text("utf-8")
    return {row["stamp"]: int(row["imagenet_index"]) for row in csv.DictReader(text.splitlines())}


class StampsProbe(ProbeDataset):
    """Tux Paint stamps pasted on procedural backgrounds, with object, group, scene and colour labels.

    Parameters
    ----------
    n_images : int, default 2000
    seed : int, default 0
        Image ``i`` is drawn from ``numpy.random.default_rng([seed, i])``.
    root : path, optional
        The stamps folder; default: see :func:`find_stamps_root`.
    image_size : int or (H, W), default 224
    mask_size : int or (h, w), default 112
    cache_dir : path, optional
        Where :func:`fetch_stamps` unpacks the package; default :func:`default_cache_dir`.

    Raises
    ------
    FileNotFoundError
        When no stamps are found. The constructor only looks; :meth:`ensure` also fetches.

    Notes
    -----
    Labels have ``3 + D`` channels, ``[scene, object, group level 1, ..., group level D,
    color]``, where D is the deepest folder nesting among the stamps; object and group
    channels are -1 where no stamp is, and group levels deeper than a stamp's path are -1.
    Concepts are ordered scenes, objects (sorted), groups (sorted), colours; they depend on
    the stamp files only, never on the images drawn.
    """

    def __init__(
        self,
        n_images: int = 2000,
        seed: int = 0,
        root: str | os.PathLike[str] | None = None,
        image_size: int | tuple[int, int] = 224,
        mask_size: int | tuple[int, int] = 112,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if n_images < 0 or seed < 0:
            raise ValueError("n_images and seed must be non-negative")
        found = find_stamps_root(root, cache_dir)
        if found is None:
            raise FileNotFoundError(_not_found_message(root, cache_dir))
        self.root = found
        self.n_images, self.seed = int(n_images), int(seed)
        self.image_size, self.mask_size = as_size(image_size), as_size(mask_size)
        for image_length, mask_length in zip(self.image_size, self.mask_size):
            block_bounds(image_length, mask_length)  # validates
        self.stamps, self.files_fingerprint = scan_stamps(found)
        if not self.stamps:
            raise FileNotFoundError(f"no usable PNG stamps under {found}")
        self._build_vocabulary()

    @classmethod
    def ensure(
        cls,
        n_images: int = 2000,
        seed: int = 0,
        root: str | os.PathLike[str] | None = None,
        image_size: int | tuple[int, int] = 224,
        mask_size: int | tuple[int, int] = 112,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> StampsProbe:
        """Like the constructor, but first fetch the stamps (:func:`fetch_stamps`) when none are found.

        An explicit ``root`` is never fetched into; a missing one raises FileNotFoundError.
        """
        if root is None and not stamps_available(cache_dir=cache_dir):
            fetch_stamps(cache_dir)
        return cls(n_images, seed, root, image_size, mask_size, cache_dir)

    def _build_vocabulary(self) -> None:
        objects = sorted({stamp.name for stamp in self.stamps})
        groups = sorted({group for stamp in self.stamps for group in stamp.groups})
        blocks = [(SCENE_NAMES, "scene"), (objects, "object"), (groups, "object-group"), (COLOR_NAMES, "color")]
        self.concept_names = [name for names, _ in blocks for name in names]
        self.concept_categories = [category for names, category in blocks for _ in names]
        index = {name: i for i, name in enumerate(self.concept_names)}
        self.depth = max(len(stamp.groups) for stamp in self.stamps)
        # per stamp: [object, group levels...] ids, -1 padded; one extra row of -1 for the background
        self._stamp_labels = np.full((len(self.stamps) + 1, 1 + self.depth), -1, np.int32)
        for i, stamp in enumerate(self.stamps):
            self._stamp_labels[i, 0] = index[stamp.name]
            self._stamp_labels[i, 1 : 1 + len(stamp.groups)] = [index[group] for group in stamp.groups]
        self._color_offset = len(self.concept_names) - len(COLOR_NAMES)
        matches = imagenet_matches()
        self._imagenet_of_concept = {
            index[stamp.name]: matches[stamp.name] for stamp in self.stamps if stamp.name in matches
        }

    #: :meth:`class_label` gives ImageNet-1k class indices (used only with an ImageNet-1k model)
    class_label_space = "imagenet-1k"

    def class_label(self, index: int, labels: NDArray[np.int32]) -> int | None:
        """The ImageNet-1k class of the image's largest visible stamp, when that stamp has one.

        The stamp covering the most annotation pixels decides; it has a class when its name
        is in the hand-reviewed table ``vision/probes/data/stamps_imagenet.csv`` (the rule is
        documented in :func:`imagenet_matches`). Images whose largest stamp has no match have
        no label and are left out of accuracy figures.
        """
        objects = labels[..., 1].reshape(-1)
        objects = objects[objects >= 0]
        if not len(objects):
            return None
        ids, counts = np.unique(objects, return_counts=True)
        return self._imagenet_of_concept.get(int(ids[int(np.argmax(counts))]))

    def __len__(self) -> int:
        return self.n_images

    def config(self) -> dict[str, Any]:
        """Kind, version, seed, number of images, sizes, stamps folder and the fingerprint of its files."""
        return {
            "kind": "stamps",
            "version": STAMPS_VERSION,
            "seed": self.seed,
            "n_images": self.n_images,
            "image_size": list(self.image_size),
            "mask_size": list(self.mask_size),
            "root": str(self.root),
            "stamps_fingerprint": self.files_fingerprint,
            "n_stamps": len(self.stamps),
        }

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.n_images:
            raise IndexError(f"image index {index} out of range 0 .. {self.n_images - 1}")
        return np.random.default_rng([self.seed, int(index)])

    @staticmethod
    def _choose(rng: np.random.Generator, n_stamps: int) -> list[int]:
        """One to three distinct stamps, in pasting order (the first draws of every image)."""
        count = min(int(rng.integers(1, 4)), n_stamps)
        return [int(i) for i in rng.choice(n_stamps, size=count, replace=False)]

    def stamps_of(self, index: int) -> list[StampFile]:
        """The stamps of image ``index`` in pasting order (cheap: draws no pixels)."""
        return [self.stamps[i] for i in self._choose(self._rng(index), len(self.stamps))]

    def group(self, index: int) -> str:
        """The object name of the first stamp pasted (the backmost one).

        Held-out splits by this key keep all images whose first stamp shows the same kind
        of object together; the later stamps of an image may still come from other groups.
        """
        return self.stamps_of(index)[0].name

    def _decoded(self, stamp: StampFile) -> PILImage:
        path = self.root / stamp.path
        # decoded copies are shrunk to the image size once: no stamp is pasted larger
        return _decoded_stamp(str(path), stamp.n_bytes, path.stat().st_mtime_ns, max(self.image_size))

    def render(self, index: int) -> tuple[NDArray[np.float32], int, list[Placement], NDArray[np.int8]]:
        """Render image ``index`` at full resolution.

        Returns
        -------
        image : float32 (H, W, 3)
        scene : int
            Index into :data:`~logiclens.vision.probes.shapes.SCENE_NAMES`.
        placements : list of Placement
            In pasting order.
        owner : int8 (H, W)
            Position in ``placements`` of the frontmost stamp at every pixel (-1: background).
        """
        rng = self._rng(index)
        chosen = self._choose(rng, len(self.stamps))
        scene, image = sample_background(rng, self.image_size)
        owner = np.full(self.image_size, -1, np.int8)
        placements = []
        for number, stamp in enumerate(chosen):
            decoded = self._decoded(self.stamps[stamp])
            spot = _place(rng, stamp, (decoded.height, decoded.width), self.image_size)
            resized = decoded.resize((spot.width, spot.height), _pil().Resampling.BILINEAR)
            pixels = np.asarray(resized)
            _paste(image, owner, pixels[:, ::-1] if spot.mirrored else pixels, spot, number)
            placements.append(spot)
        return image, scene, placements, owner

    def load(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
        """Image ``index`` as float32 (3, H, W) and its labels int32 (h, w, 3 + depth)."""
        image, scene, placements, owner = self.render(index)
        rows = np.array([spot.stamp for spot in placements] + [len(self.stamps)], np.intp)  # owner -1: last row
        owner_m = sample_centres(owner, self.mask_size).astype(np.intp)
        labels = np.empty((*self.mask_size, 3 + self.depth), np.int32)
        labels[..., 0] = scene
        labels[..., 1:-1] = self._stamp_labels[rows[owner_m]]
        labels[..., -1] = self._color_offset + color_labels(block_mean(image, self.mask_size))
        return np.ascontiguousarray(image.transpose(2, 0, 1)), labels


def _not_found_message(root: str | os.PathLike[str] | None, cache_dir: str | os.PathLike[str] | None) -> str:
    """How to get the stamps, for the FileNotFoundError."""
    if root is not None:
        return f"no Tux Paint stamps folder at {root}"
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return (
        f"Tux Paint stamps not found (looked in {SYSTEM_STAMPS_ROOT} and {cache / PACKAGE_STAMPS_PATH}). "
        f"Install them with `apt-get install {DEBIAN_PACKAGE}`, unpack them without root rights with "
        "logiclens.vision.probes.stamps.fetch_stamps() (or StampsProbe.ensure()), or pass root=...; "
        "the built-in `shapes` probe needs no data."
    )
