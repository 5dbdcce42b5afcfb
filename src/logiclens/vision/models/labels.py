"""Class names for model outputs, from files on disk only (nothing is downloaded).

* ImageNet-1k: the class lists that ship as data files in timm's wheel
  (``timm/data/_info/imagenet_synsets.txt`` and ``imagenet_synset_to_lemma.txt``). They are
  located with :func:`importlib.util.find_spec` and read directly; timm is never imported
  (importing it needs torchvision). Install with ``pip install --no-deps timm``.
* Anything else (e.g. Places365's ``categories_places365.txt``): :func:`read_class_names`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from functools import lru_cache
from pathlib import Path

__all__ = ["imagenet_class_names", "read_class_names"]

_IMAGENET_CLASSES = 1000
# "/a/airfield 0" -> "airfield"; "/b/bedroom" -> "bedroom" (Places365 category files)
_PLACES_PREFIX = re.compile(r"^/[a-z]/")


@lru_cache(maxsize=1)
def _imagenet_class_names() -> tuple[str, ...] | None:
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return None
    info = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"
    synsets_file = info / "imagenet_synsets.txt"
    lemmas_file = info / "imagenet_synset_to_lemma.txt"
    if not (synsets_file.is_file() and lemmas_file.is_file()):
        return None
    synsets = [line.strip() for line in synsets_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    lemmas = {}
    for line in lemmas_file.read_text(encoding="utf-8").splitlines():
        wnid, sep, lemma = line.partition("\t")
        if sep:
            lemmas[wnid.strip()] = lemma.strip()
    if len(synsets) != _IMAGENET_CLASSES or any(wnid not in lemmas for wnid in synsets):
        return None
    return tuple(lemmas[wnid] for wnid in synsets)


def imagenet_class_names() -> list[str] | None:
    """The 1000 ImageNet-1k class names in the standard index order, if timm's data files are present.

    Returns
    -------
    list of str or None
        WordNet lemmas, e.g. index 285 is ``"Egyptian cat"`` and 281 ``"tabby, tabby cat"``;
        None when timm is not installed (``pip install --no-deps timm``).
    """
    names = _imagenet_class_names()
    return None if names is None else list(names)


def read_class_names(path: str | os.PathLike[str], num_classes: int | None = None) -> list[str]:
    """Read class names from a text file, one class per line.

    Lines may be a bare name or ``name index`` (as in Places365's ``categories_places365.txt``:
    ``/a/airfield 0``); a leading ``/x/`` is dropped, so that file gives ``airfield``,
    ``apartment_building/outdoor``, .... When every line ends in an index, names are placed at their
    index; otherwise the lines are taken in order, whole.

    Parameters
    ----------
    path : str or PathLike
        The text file.
    num_classes : int, optional
        Expected number of classes; a different count raises.

    Returns
    -------
    list of str
        The class names, index-aligned with the model's outputs.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If indices are inconsistent or the count differs from ``num_classes``.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"class names file not found: {file}")
    lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    split = [line.rsplit(maxsplit=1) for line in lines]
    if lines and all(len(parts) == 2 and parts[1].isdigit() for parts in split):
        indices = sorted(int(parts[1]) for parts in split)
        if indices != list(range(len(lines))):
            raise ValueError(f"{file}: class indices must be 0..{len(lines) - 1}, each once")
        names = [""] * len(lines)
        for name, index in split:
            names[int(index)] = _PLACES_PREFIX.sub("", name)
    else:
        names = [_PLACES_PREFIX.sub("", line) for line in lines]
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(f"{file} lists {len(names)} classes, the model has {num_classes}")
    return names
