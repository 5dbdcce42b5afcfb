"""Certified search vs beam search on synthetic segmentation-like problems with overlapping concepts.

Images of ``--size`` x ``--size`` pixels carry a scene (every pixel), 2-6 objects (rectangles
drawn over each other, on top of a background "stuff" class), parts (horizontal bands of the
frequent objects) and a colour per 8 x 8 block, so most pixels hold 2-4 concepts. Each unit is
a planted formula of 2-4 concepts built with OR / AND / AND NOT, plus noise (true positives
kept with probability ``--keep``, other pixels switched on with probability ``--false``).

Per unit it times the beam search (``search_unit``), the certified search (``optimal_unit``,
seeded with that beam) and the beam's certificate (``certify``), and prints IoUs, statuses and
the time ratios (CPU time of the fastest of ``--repeat`` runs of each step).

    PYTHONPATH=src .venv/bin/python benchmarks/optimal_search.py --images 200 --units 12
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from logiclens import ConceptSet
from logiclens.core.masks import UnitMasks
from logiclens.core.search import optimal as optimal_module
from logiclens.core.search.beam import BeamSettings, PrimitiveTable, iou_of, search_unit
from logiclens.core.search.optimal import ceiling, certify, optimal_unit


def make_concepts(rng: np.random.Generator, images: int, size: int, n_objects: int, n_scenes: int, n_colours: int):
    """Dense (K, N) concept masks and names."""
    n_parts = n_objects // 3
    per_image = size * size
    n = images * per_image
    k = n_scenes + n_objects + n_parts + n_colours
    masks = np.zeros((k, n), bool)
    rows, cols = np.mgrid[0:size, 0:size]
    part_of = rng.integers(0, n_objects // 2, n_parts)  # parts belong to the more frequent objects
    objects_by_scene = [rng.choice(n_objects, 6, replace=False) for _ in range(n_scenes)]
    popularity = 1.0 / np.arange(1, n_objects + 1)
    popularity /= popularity.sum()
    for image in range(images):
        base = image * per_image
        scene = int(rng.integers(0, n_scenes))
        masks[scene, base : base + per_image] = True
        label = np.full((size, size), -1)
        label[:] = n_scenes + int(rng.integers(0, 5))  # background stuff
        for _ in range(int(rng.integers(2, 7))):
            obj = (
                int(rng.choice(objects_by_scene[scene]))
                if rng.random() < 0.5
                else int(rng.choice(n_objects, p=popularity))
            )
            top, left = rng.integers(0, size - 4, 2)
            height, width = rng.integers(4, size // 2 + 4, 2)
            box = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
            label[box] = n_scenes + obj
        flat = label.ravel()
        masks[flat, base + np.arange(per_image)] = True
        for p, obj in enumerate(part_of):  # a part: one horizontal band of its object's box
            inside = label == n_scenes + obj
            if inside.any():
                band = rows % 4 == p % 4
                masks[n_scenes + n_objects + p, base : base + per_image] = (inside & band).ravel()
        palette = rng.choice(n_colours, 3, replace=False)
        blocks = palette[rng.integers(0, 3, (size // 8 + 1, size // 8 + 1))]
        colour = blocks[rows // 8, cols // 8].ravel()
        masks[n_scenes + n_objects + n_parts + colour, base + np.arange(per_image)] = True
    names = (
        [f"scene{i}" for i in range(n_scenes)]
        + [f"object{i}" for i in range(n_objects)]
        + [f"part{i}" for i in range(n_parts)]
        + [f"colour{i}" for i in range(n_colours)]
    )
    return masks, names


def make_units(rng: np.random.Generator, masks: np.ndarray, n_units: int, keep: float, false: float) -> np.ndarray:
    n = masks.shape[1]
    units = []
    sizes = masks.sum(axis=1)
    usable = np.flatnonzero((sizes > 0.002 * n) & (sizes < 0.3 * n))
    while len(units) < n_units:
        length = int(rng.integers(2, 5))
        picks = rng.choice(usable, length, replace=False)
        mask = masks[picks[0]].copy()
        for j in picks[1:]:
            op = int(rng.integers(0, 3))
            mask = [mask | masks[j], mask & masks[j], mask & ~masks[j]][op]
        if not 0.002 * n <= mask.sum() <= 0.1 * n:
            continue
        noisy = (mask & (rng.random(n) < keep)) | (~mask & (rng.random(n) < false))
        units.append(noisy)
    return np.stack(units)


def _timed(repeat: int, step, *args, **kwargs):
    """Fastest of ``repeat`` runs as (CPU seconds, wall seconds), and the step's result."""
    best = (np.inf, np.inf)
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        out = step(*args, **kwargs)
        best = min(best, (time.process_time() - c0, time.perf_counter() - w0))
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--objects", type=int, default=40)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--colours", type=int, default=11)
    parser.add_argument("--units", type=int, default=12)
    parser.add_argument("--length", type=int, default=3)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--keep", type=float, default=0.85)
    parser.add_argument("--false", type=float, default=0.003)
    parser.add_argument("--budget", type=float, default=None, help="seconds per unit for the certified search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="time each step this many times, keep the fastest")
    parser.add_argument(
        "--compare-stages",
        action="store_true",
        help="also time the certified search with the dense pair stage and with the pair blocks forced, side by side",
    )
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    masks, names = make_concepts(rng, args.images, args.size, args.objects, args.scenes, args.colours)
    concepts = ConceptSet.from_dense(masks, names)
    per_position = masks.sum(axis=0)
    units = make_units(rng, masks, args.units, args.keep, args.false)
    counts = UnitMasks.from_dense(units, concepts).counts
    settings = BeamSettings(max_length=args.length, beam_size=args.beam)
    table = PrimitiveTable(concepts, settings.min_support, settings.use_neighbors)
    print(
        f"{args.units} units / {concepts.n_positions:,} positions / {concepts.n_concepts} concepts "
        f"/ {concepts.n_signatures:,} signatures; concepts per position: mean {per_position.mean():.2f}, "
        f"2-4 on {np.mean((per_position >= 2) & (per_position <= 4)):.0%}; length {args.length}, beam {args.beam}"
    )
    header = f"{'unit':>4} {'beam cpu':>8} {'opt cpu':>8} {'cert cpu':>8} {'beam IoU':>9} {'opt IoU':>8} {'bound':>7} "
    header += f"{'cert':>7} {'ceiling':>7} {'nodes':>6} status"
    print(header)
    totals = np.zeros(3)
    wall = np.zeros(3)
    missed = 0
    stage_totals = {"dense": 0.0, "blocks": 0.0}
    stage_same = 0
    for u in range(args.units):
        sigs = counts.indices[counts.indptr[u] : counts.indptr[u + 1]]
        cnt = counts.data[counts.indptr[u] : counts.indptr[u + 1]]

        (beam_cpu, beam_wall), beam = _timed(args.repeat, search_unit, table, sigs, cnt, settings)
        (opt_cpu, opt_wall), result = _timed(
            args.repeat, optimal_unit, table, sigs, cnt, settings, budget_seconds=args.budget, incumbent=beam
        )
        (cert_cpu, cert_wall), bound = _timed(args.repeat, certify, table, sigs, cnt, beam, settings)
        if args.compare_stages:
            same = True
            for stage, below in (("dense", 2**62), ("blocks", 0)):
                saved, optimal_module._DENSE_BELOW = optimal_module._DENSE_BELOW, below
                try:
                    (cpu, _), forced = _timed(
                        args.repeat,
                        optimal_unit,
                        table,
                        sigs,
                        cnt,
                        settings,
                        budget_seconds=args.budget,
                        incumbent=beam,
                    )
                finally:
                    optimal_module._DENSE_BELOW = saved
                stage_totals[stage] += cpu
                same = same and (forced.status, forced.iou, forced.upper_bound) == (
                    result.status,
                    result.iou,
                    result.upper_bound,
                )
            stage_same += same
        wall += [beam_wall, opt_wall, cert_wall]
        top = ceiling(sigs, cnt, concepts.signature_weights)
        times = np.array([beam_cpu, opt_cpu, cert_cpu])
        totals += times
        beam_iou = iou_of(beam.best, beam.n_active) if beam.best else 0.0
        missed += result.iou > beam_iou
        print(
            f"{u:>4} {times[0]:8.4f} {times[1]:8.4f} {times[2]:8.4f} {beam_iou:9.4f} {result.iou:8.4f} "
            f"{result.upper_bound:7.4f} {bound:7.4f} {top:7.4f} {result.nodes:>6} {result.status}"
            + (f"  beam: {beam.best.formula}  optimal: {result.best.formula}" if result.iou > beam_iou else "")
        )
    beam_s, opt_s, cert_s = totals / args.units
    print(f"mean CPU s/unit: beam {beam_s:.4f}, optimal {opt_s:.4f} (beam excluded), certify {cert_s:.4f}")
    print("mean wall s/unit: beam {:.4f}, optimal {:.4f}, certify {:.4f}".format(*(wall / args.units)))
    print(f"ratios: optimal / beam {opt_s / beam_s:.2f}, certify / beam {cert_s / beam_s:.2f}")
    print(f"beam below the optimum on {missed}/{args.units} units")
    if args.compare_stages:
        dense_s, blocks_s = (stage_totals[k] / args.units for k in ("dense", "blocks"))
        print(
            f"pair stages (switch at {optimal_module._DENSE_BELOW} primitives, this problem {len(table)}): "
            f"dense {dense_s:.4f}, blocks {blocks_s:.4f} CPU s/unit (beam excluded); blocks / dense "
            f"{blocks_s / dense_s:.2f}; with the beam: dense {(beam_s + dense_s) / beam_s:.2f}x, blocks "
            f"{(beam_s + blocks_s) / beam_s:.2f}x the beam; same status, IoU and bound on {stage_same}/{args.units}"
        )


if __name__ == "__main__":
    main()
