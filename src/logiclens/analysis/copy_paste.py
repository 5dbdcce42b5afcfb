"""Copy-paste adversarial examples made from explanations (Mu & Andreas, section 6, appendix B).

For a target class t:

1. its top contributing units (largest positive contribution, :mod:`logiclens.analysis.contributions`);
2. from their formulas, the concepts that appear un-negated (*targeted*) and negated
   (*negated*), restricted to categories that can be cut out (objects, object groups, parts);
3. for each targeted concept, a *control*: a concept of the same category whose typical area
   (median pixels where present) is closest on a log scale, and that appears in none of the
   top units' formulas;
4. each concept is cut out with its segmentation mask from the probe image where it covers the
   most pixels (among images that are not hosts), scaled so that its bounding box's longer side
   is ``size`` times the image side, and pasted at seeded relative positions into *host*
   images: held-out images that the model does not assign to t. Targeted, control and negated
   pastes use the same hosts, sizes and positions.

Each edit records the target's probability, log-probability and rank before and after, and
whether the prediction became t. Targeted pastes should raise t, negated ones lower it, and
controls do neither; :func:`summarize_copy_paste` gives mean effects with bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from logiclens.analysis.formulas import signed_concepts
from logiclens.analysis.stats import bootstrap_mean

__all__ = [
    "ClassPlan",
    "CopyPasteSettings",
    "ImageSource",
    "cut_out",
    "paste",
    "plan_class",
    "run_copy_paste",
    "summarize_copy_paste",
]

#: concept categories whose masks are things that can be cut out and pasted
PASTEABLE = ("object", "object-group", "part")


@dataclass
class CopyPasteSettings:
    """How many classes, units, concepts, hosts, sizes and positions; the seed.

    Parameters
    ----------
    classes : list of int, optional
        Target classes. Default: the ``n_classes`` classes with the most labelled probe
        images (ties: by index), else the most predicted ones, that have a targeted concept.
    n_classes : int
    n_units : int
        Top contributing units per class whose formulas give the concepts.
    max_concepts : int
        Targeted concepts per class (and as many controls).
    n_hosts : int
        Host images per class.
    sizes : tuple of float
        Longer side of the pasted cut-out, as a fraction of the image side.
    n_positions : int
        Seeded positions per size.
    categories : tuple of str
        Concept categories that can be pasted.
    n_boot : int
        Bootstrap resamples of the intervals.
    seed : int
    """

    classes: list[int] | None = None
    n_classes: int = 10
    n_units: int = 3
    max_concepts: int = 2
    n_hosts: int = 5
    sizes: tuple[float, ...] = (0.35, 0.55)
    n_positions: int = 2
    categories: tuple[str, ...] = PASTEABLE
    n_boot: int = 1000
    seed: int = 0


class ImageSource(Protocol):
    """Probe images and their concept masks at the image resolution."""

    def image(self, index: int) -> NDArray[np.float32]:
        """RGB float32 (3, H, W) in [0, 1]."""

    def concept_mask(self, index: int, concept: int) -> NDArray[np.bool_]:
        """Boolean (H, W): where the concept is in image ``index``."""


@dataclass
class ClassPlan:
    """The edits of one target class."""

    target: int
    units: list[int]
    targeted: list[tuple[int, int]]  # (concept, unit it came from)
    controls: list[int]  # one per targeted concept, same order (-1: none found)
    negated: list[tuple[int, int]]
    sources: dict[int, int] = field(default_factory=dict)  # concept -> source image
    hosts: list[int] = field(default_factory=list)


def plan_class(
    target: int,
    contributions: NDArray[np.floating],
    formulas: Sequence[str],
    concept_names: Sequence[str],
    concept_categories: Sequence[str],
    areas: NDArray[np.integer],
    host_pool: NDArray[np.intp],
    predicted: NDArray[np.integer],
    settings: CopyPasteSettings,
) -> ClassPlan | None:
    """Choose the units, concepts, controls, sources and hosts of one target class.

    Parameters
    ----------
    target : int
    contributions : (units,) array
        Each unit's contribution to the target class.
    formulas : sequence of str
        Each unit's formula.
    concept_names, concept_categories : sequences of str
    areas : int (images, concepts)
        Pixels of each concept in each probe image.
    host_pool : int array
        Images that may be hosts (held-out images).
    predicted : int (images,)
        The model's top class per image.

    Returns
    -------
    ClassPlan or None
        None when the class's top units have no pasteable un-negated concept.
    """
    index = {name: i for i, name in enumerate(concept_names)}
    pasteable = {i for i, c in enumerate(concept_categories) if c in settings.categories}
    order = np.argsort(-np.asarray(contributions, float), kind="stable")
    units = [int(u) for u in order[: settings.n_units] if contributions[u] > 0]
    targeted: list[tuple[int, int]] = []
    negated: list[tuple[int, int]] = []
    mentioned: set[int] = set()
    for unit in units:
        positive, negative = signed_concepts(formulas[unit])
        mentioned |= {index[n] for n in positive + negative if n in index}
        targeted += [(index[n], unit) for n in positive if n in index and index[n] in pasteable]
        negated += [(index[n], unit) for n in negative if n in index and index[n] in pasteable]
    present = areas.sum(axis=0) > 0
    targeted = _unique([t for t in targeted if present[t[0]]])[: settings.max_concepts]
    negated = _unique([t for t in negated if present[t[0]]])[: settings.max_concepts]
    if not targeted:
        return None
    hosts_all = np.asarray([h for h in host_pool if predicted[h] != target], np.intp)
    rng = np.random.default_rng([settings.seed, target])
    hosts = sorted(int(h) for h in rng.choice(hosts_all, min(settings.n_hosts, len(hosts_all)), replace=False))
    typical = np.array([np.median(a[a > 0]) if (a > 0).any() else 0.0 for a in areas.T])
    controls = []
    taken: set[int] = set()
    for concept, _ in targeted:
        candidates = [
            k for k in pasteable
            if k not in mentioned and k not in taken and typical[k] > 0
            and concept_categories[k] == concept_categories[concept]
        ]  # fmt: skip
        if not candidates:
            controls.append(-1)
            continue
        gaps = [(abs(np.log(typical[k] / typical[concept])), concept_names[k], k) for k in candidates]
        best = min(gaps)[2]
        controls.append(best)
        taken.add(best)
    sources = {}
    blocked = set(hosts)
    for concept in [c for c, _ in targeted] + [c for c in controls if c >= 0] + [c for c, _ in negated]:
        column = areas[:, concept].astype(float)
        column[list(blocked)] = -1
        sources[concept] = int(np.argmax(column))
    return ClassPlan(target, units, targeted, controls, negated, sources, hosts)


def _unique(items: list[tuple[int, int]]) -> list[tuple[int, int]]:
    seen: set[int] = set()
    out = []
    for concept, unit in items:
        if concept not in seen:
            seen.add(concept)
            out.append((concept, unit))
    return out


def cut_out(image: NDArray[np.float32], mask: NDArray[np.bool_]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """The bounding box of ``mask`` in ``image``: pixels (3, h, w) and the mask inside it (h, w)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        raise ValueError("empty mask: nothing to cut out")
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return image[:, box[0], box[1]], mask[box]


def _resize_nearest(array: NDArray[Any], height: int, width: int) -> NDArray[Any]:
    rows = np.minimum((np.arange(height) + 0.5) * array.shape[-2] / height, array.shape[-2] - 1).astype(np.intp)
    cols = np.minimum((np.arange(width) + 0.5) * array.shape[-1] / width, array.shape[-1] - 1).astype(np.intp)
    return array[..., rows[:, None], cols[None, :]]


def paste(
    host: NDArray[np.float32],
    patch: NDArray[np.float32],
    alpha: NDArray[np.bool_],
    size: float,
    position: tuple[float, float],
) -> tuple[NDArray[np.float32], tuple[int, int, int, int]]:
    """Paste a cut-out into a copy of ``host``.

    Parameters
    ----------
    host : float32 (3, H, W)
    patch : float32 (3, h, w)
    alpha : bool (h, w)
        Which pixels of the patch are the concept.
    size : float
        The patch's longer side after scaling, as a fraction of the host's shorter side.
    position : (float, float)
        Relative (row, column) of the patch's top-left corner in the free range, in [0, 1].

    Returns
    -------
    image : float32 (3, H, W)
    box : (top, left, height, width)
    """
    _, height, width = host.shape
    longest = max(1, round(size * min(height, width)))
    scale = longest / max(patch.shape[1:])
    h, w = max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[2] * scale))
    h, w = min(h, height), min(w, width)
    pixels, keep = _resize_nearest(patch, h, w), _resize_nearest(alpha, h, w)
    top, left = round(position[0] * (height - h)), round(position[1] * (width - w))
    out = host.copy()
    region = out[:, top : top + h, left : left + w]
    region[:, keep] = pixels[:, keep]
    return out, (top, left, h, w)


def _log_softmax(logits: NDArray[np.floating]) -> NDArray[np.float64]:
    x = np.asarray(logits, np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def run_copy_paste(
    predict: Callable[[NDArray[np.float32]], NDArray[np.floating]],
    source: ImageSource,
    plans: Sequence[ClassPlan],
    settings: CopyPasteSettings,
    concept_names: Sequence[str],
    class_names: Sequence[str] | None = None,
    batch_size: int = 32,
    keep_images: int = 0,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Make and score every edit of every plan.

    Parameters
    ----------
    predict : callable
        float32 images (n, 3, H, W) in [0, 1] -> logits (n, classes).
    source : ImageSource
    plans : sequence of ClassPlan
    settings : CopyPasteSettings
    concept_names : sequence of str
    class_names : sequence of str, optional
    batch_size : int
    keep_images : int
        How many targeted edits to return as (before, after) image pairs, for a gallery: the
        largest rise of the target's log-probability of each class, then the second largest
        of each, and so on.

    Returns
    -------
    rows : DataFrame
        One row per edit: ``target, target_name, kind (targeted|control|negated), concept,
        unit, controls_for, host, source, size, position, top, left, p_before, p_after,
        logp_before, logp_after, delta_logp, rank_before, rank_after, pred_before, pred_after,
        flipped``.
    gallery : list of dict
        ``row`` (index into rows), ``before`` and ``after`` images (float32 (3, H, W)).
    """
    rows: list[dict[str, Any]] = []
    images: list[NDArray[np.float32]] = []
    cutouts: dict[int, tuple[NDArray[np.float32], NDArray[np.bool_]]] = {}
    host_cache: dict[int, NDArray[np.float32]] = {}
    for plan in plans:
        edits: list[tuple[str, int, int, int]] = []  # kind, concept, unit, controls_for
        for (concept, unit), control in zip(plan.targeted, plan.controls):
            edits.append(("targeted", concept, unit, -1))
            if control >= 0:
                edits.append(("control", control, -1, concept))
        edits += [("negated", concept, unit, -1) for concept, unit in plan.negated]
        for _, concept, _, _ in edits:
            if concept not in cutouts:
                where = plan.sources[concept]
                cutouts[concept] = cut_out(source.image(where), source.concept_mask(where, concept))
        for host in plan.hosts:
            if host not in host_cache:
                host_cache[host] = source.image(host)
            for s, size in enumerate(settings.sizes):
                for p in range(settings.n_positions):
                    position = tuple(np.random.default_rng([settings.seed, plan.target, host, s, p]).random(2))
                    for kind, concept, unit, controls_for in edits:
                        patch, alpha = cutouts[concept]
                        edited, (top, left, _, _) = paste(host_cache[host], patch, alpha, size, position)  # type: ignore[arg-type]
                        images.append(edited)
                        rows.append({
                            "target": plan.target,
                            "target_name": class_names[plan.target] if class_names else str(plan.target),
                            "kind": kind, "concept": concept_names[concept], "unit": unit,
                            "controls_for": concept_names[controls_for] if controls_for >= 0 else "",
                            "host": host, "source": plan.sources[concept], "size": size, "position": p,
                            "top": top, "left": left,
                        })  # fmt: skip
    hosts = sorted(host_cache)
    before = {h: row for h, row in zip(hosts, _batched(predict, [host_cache[h] for h in hosts], batch_size))}
    after = _batched(predict, images, batch_size)
    for i, row in enumerate(rows):
        t = row["target"]
        lp0, lp1 = _log_softmax(before[row["host"]][None])[0], _log_softmax(after[i][None])[0]
        row.update({
            "p_before": float(np.exp(lp0[t])), "p_after": float(np.exp(lp1[t])),
            "logp_before": float(lp0[t]), "logp_after": float(lp1[t]), "delta_logp": float(lp1[t] - lp0[t]),
            "rank_before": int((lp0 > lp0[t]).sum()), "rank_after": int((lp1 > lp1[t]).sum()),
            "pred_before": int(np.argmax(lp0)), "pred_after": int(np.argmax(lp1)),
            "flipped": bool(np.argmax(lp1) == t),
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    gallery = []
    if keep_images and len(frame):
        targeted = frame[frame["kind"] == "targeted"].sort_values("delta_logp", ascending=False, kind="stable")
        # the strongest edit of each class first, then the next strongest of each, ...
        order = targeted.groupby("target", sort=False).cumcount().sort_values(kind="stable").index
        for i in order[:keep_images]:
            gallery.append({"row": int(i), "before": host_cache[int(frame.at[i, "host"])], "after": images[i]})
    return frame, gallery


def _batched(predict: Callable[[NDArray[np.float32]], NDArray[np.floating]], images: list[NDArray[np.float32]],
             batch_size: int) -> NDArray[np.float64]:  # fmt: skip
    outputs = [
        np.asarray(predict(np.stack(images[i : i + batch_size])), np.float64) for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, 0))


def summarize_copy_paste(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Mean effects with bootstrap intervals, overall and per target class.

    For each kind (targeted, control, negated): the mean change of the target's
    log-probability, the mean change of its rank (negative: closer to the top), and the flip
    rate; and the paired difference targeted minus control (each control row is paired with
    the targeted row of the concept it controls for, same host, size and position).

    Returns
    -------
    dict
        ``overall`` and ``per_class`` (keyed by class index as a string); each holds
        ``{kind: {delta_logp, delta_rank, flip_rate}}`` and ``targeted_minus_control``, each
        a :func:`bootstrap_mean` dict; ``beats_control``: whether that difference's
        interval lies above 0.
    """

    def block(part: pd.DataFrame) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in ("targeted", "control", "negated"):
            rows = part[part["kind"] == kind]
            out[kind] = {
                "delta_logp": bootstrap_mean(rows["delta_logp"], n_boot, seed),
                "delta_rank": bootstrap_mean(rows["rank_after"] - rows["rank_before"], n_boot, seed),
                "flip_rate": bootstrap_mean(rows["flipped"].astype(float), n_boot, seed),
            }
        keys = ["target", "host", "size", "position"]
        targeted = part[part["kind"] == "targeted"].set_index([*keys, "concept"])["delta_logp"]
        control = part[part["kind"] == "control"]
        paired = control.set_index([*keys, "controls_for"])["delta_logp"]
        paired.index = paired.index.set_names([*keys, "concept"])
        joined = targeted.to_frame("t").join(paired.to_frame("c"), how="inner")
        difference = bootstrap_mean(joined["t"] - joined["c"], n_boot, seed)
        out["targeted_minus_control"] = difference
        out["beats_control"] = bool(difference["n"] > 0 and difference["low"] > 0)
        return out

    if frame.empty:
        return {"overall": {}, "per_class": {}}
    return {
        "overall": block(frame),
        "per_class": {str(t): block(part) for t, part in frame.groupby("target", sort=True)},
    }
