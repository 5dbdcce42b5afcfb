"""Ingest speed: the old (reference) and the new ConceptSet constructors side by side.

Builds one synthetic segmentation-like problem (by default 502 images of 112 x 112 =
6,297,088 positions, 100 concepts, 2-4 concepts per position), then times, in one run,
``ConceptSet.from_packed`` and ``ConceptSet.from_dense`` against the pre-issue-16
constructors kept in ``tests/reference_concepts.py``, and checks that both give the same
signature table (same ids, same order) and the same ``position_signatures``.

Usage::

    python benchmarks/ingest.py [--images 502] [--side 112] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from logiclens.core.concepts import ConceptSet

REPO = Path(__file__).resolve().parents[1]
N_SCENES, N_OBJECTS, N_PARTS, N_COLOURS = 20, 60, 10, 10  # 100 concepts


def synthetic_masks(n_images: int, side: int, seed: int) -> np.ndarray:
    """(100, n_images * side**2) boolean concept masks with segmentation-like structure.

    Per image: a scene over all pixels (absent in 10 % of images); a background object above
    and another below a random horizon, then 1-4 foreground rectangles drawn over it (one
    object per pixel); a part on the top third of the first two foreground rectangles; one of
    three colours per 8 x 8 block. So every pixel holds 2-4 concepts.
    """
    rng = np.random.default_rng(seed)
    k = N_SCENES + N_OBJECTS + N_PARTS + N_COLOURS
    n_pixels = side * side
    masks = np.zeros((k, n_images * n_pixels), bool)
    rows, cols = np.divmod(np.arange(n_pixels), side)
    blocks = (rows // 8) * (-(-side // 8)) + cols // 8
    for image in range(n_images):
        offset = image * n_pixels
        pixels = np.arange(offset, offset + n_pixels)
        if rng.random() >= 0.1:
            masks[rng.integers(0, N_SCENES), pixels] = True
        horizon = rng.integers(side // 4, 3 * side // 4)
        obj = np.where(rows < horizon, rng.integers(0, 10), rng.integers(10, 20))
        part = np.full(n_pixels, -1)
        for r in range(int(rng.integers(1, 5))):
            top, left = rng.integers(0, side - 8, size=2)
            height, width = rng.integers(8, side // 2, size=2)
            inside = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
            obj[inside] = rng.integers(20, N_OBJECTS)
            part[inside] = -1
            if r < 2:
                part[inside & (rows < top + height // 3)] = rng.integers(0, N_PARTS)
        masks[N_SCENES + obj, pixels] = True
        has_part = part >= 0
        masks[N_SCENES + N_OBJECTS + part[has_part], pixels[has_part]] = True
        palette = rng.choice(N_COLOURS, size=3, replace=False)
        colour = palette[rng.integers(0, 3, size=blocks.max() + 1)][blocks]
        masks[N_SCENES + N_OBJECTS + N_PARTS + colour, pixels] = True
    return masks


def _same(a: ConceptSet, b: ConceptSet) -> bool:
    return (
        a.signature_concepts.shape == b.signature_concepts.shape
        and np.array_equal(a.signature_concepts.indptr, b.signature_concepts.indptr)
        and np.array_equal(a.signature_concepts.indices, b.signature_concepts.indices)
        and np.array_equal(a.signature_weights, b.signature_weights)
        and a.position_signatures is not None
        and b.position_signatures is not None
        and np.array_equal(a.position_signatures, b.position_signatures)
    )


def _best_of(repeat: int, function):  # type: ignore[no-untyped-def]
    """Run ``function`` ``repeat`` times; its value, the best wall time, all wall times, all CPU times."""
    times, cpu, value = [], [], None
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        value = function()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return value, min(times), times, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=502)
    parser.add_argument("--side", type=int, default=112)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs of each constructor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "tests"))
    from reference_concepts import reference_from_dense, reference_from_packed  # type: ignore[import-not-found]

    start = time.perf_counter()
    masks = synthetic_masks(args.images, args.side, args.seed)
    k, n = masks.shape
    packed = np.packbits(masks, axis=1, bitorder="little")
    names = [f"c{i}" for i in range(k)]
    per_position = masks.sum(axis=0)
    print(
        f"problem: {k} concepts x {n:,} positions, {per_position.min()}-{per_position.max()} concepts per position "
        f"(mean {per_position.mean():.2f}); generated in {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    results: dict[str, object] = {
        "n_concepts": k,
        "n_positions": n,
        "repeat": args.repeat,
        "loadavg_start": os.getloadavg()[0],
    }
    rows = []
    for label, old, new in (
        ("packed", lambda: reference_from_packed(packed, n, names), lambda: ConceptSet.from_packed(packed, n, names)),
        ("dense", lambda: reference_from_dense(masks, names), lambda: ConceptSet.from_dense(masks, names)),
    ):
        reference, old_s, old_all, old_cpu = _best_of(args.repeat, old)
        fast, new_s, new_all, new_cpu = _best_of(args.repeat, new)
        same = _same(reference, fast)
        rows.append((label, old_s, new_s, old_s / new_s, min(old_cpu), min(new_cpu), same, fast.n_signatures))
        results[label] = {
            "old_s": old_all,
            "new_s": new_all,
            "old_cpu_s": old_cpu,
            "new_cpu_s": new_cpu,
            "speedup_best": old_s / new_s,
            "identical": same,
            "n_signatures": fast.n_signatures,
        }
        print(f"{label}: old {old_s:.2f} s, new {new_s:.2f} s, {old_s / new_s:.1f}x, identical={same}", file=sys.stderr)
    results["loadavg_end"] = os.getloadavg()[0]

    print(f"best of {args.repeat}; 1-minute load average {results['loadavg_start']:.1f} at start")
    print("| input | old (reference) wall s | new wall s | speed-up (wall) | old CPU s | new CPU s | identical |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for label, old_s, new_s, speedup, old_c, new_c, same, _ in rows:
        print(f"| {label} | {old_s:.2f} | {new_s:.2f} | {speedup:.1f}x | {old_c:.2f} | {new_c:.2f} | {same} |")
    print(f"signatures: {rows[0][7]:,}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(row[6] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
