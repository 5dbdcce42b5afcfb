"""Threshold-and-mask stage at Broden scale: exact thresholds, upsampling, per-signature counts.

Synthetic activations stand in for ResNet-18 ``layer4`` on Broden's ADE20k subset:
22,210 images x 512 units x 7 x 7, float16, on disk as a memmap (1.1 GB), with annotation
signatures at 112 x 112 per image (1.1 GB). Activations are post-ReLU Gaussian noise plus a
per-unit, per-image offset (some images excite a unit, most do not), so that a unit's top
0.5 % positions are spread over many images: more (image, unit) maps pass the skip test
than with real, spatially clustered activations, which makes this a pessimistic case.

Timed, on the memmaps (page cache warm or not, as it comes):

* ``thresholds``: exact top-0.5 % quantile per unit over the layer's positions (the
  NetDissect / reference-code convention);
* ``masks``: bilinear upsampling to 112 x 112 of every map whose maximum exceeds its unit's
  threshold, thresholding, and counting active pixels per signature.

Usage::

    python benchmarks/mask_scale.py [--images 22210] [--units 512] [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from logiclens.vision.dissect import compute_thresholds, count_unit_masks


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def make_activations(path: Path, n_images: int, n_units: int, seed: int) -> np.ndarray:
    """Post-ReLU synthetic maps (n_images, n_units, 7, 7), float16, written in chunks."""
    out = open_memmap(path, mode="w+", dtype=np.float16, shape=(n_images, n_units, 7, 7))
    rng = np.random.default_rng(seed)
    for start in range(0, n_images, 512):
        stop = min(start + 512, n_images)
        offsets = rng.normal(-1.0, 1.0, size=(stop - start, n_units, 1, 1))
        maps = rng.normal(size=(stop - start, n_units, 7, 7)) + offsets
        out[start:stop] = np.maximum(maps, 0).astype(np.float16)
    out.flush()
    return np.load(path, mmap_mode="r")


def make_signatures(path: Path, n_images: int, n_signatures: int, seed: int) -> np.ndarray:
    """Blocky per-image signature maps (n_images, 112, 112), int32: 16 x 16 cells of 7 x 7 pixels."""
    out = open_memmap(path, mode="w+", dtype=np.int32, shape=(n_images, 112, 112))
    rng = np.random.default_rng(seed + 1)
    for start in range(0, n_images, 512):
        stop = min(start + 512, n_images)
        palette = rng.integers(0, n_signatures, size=(stop - start, 12))
        cells = rng.integers(0, 12, size=(stop - start, 16, 16))
        ids = np.take_along_axis(palette, cells.reshape(stop - start, -1), axis=1).reshape(stop - start, 16, 16)
        out[start:stop] = ids.repeat(7, axis=1).repeat(7, axis=2)
    out.flush()
    return np.load(path, mmap_mode="r")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=22_210)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--signatures", type=int, default=322_000)
    parser.add_argument("--quantile", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="where to write the synthetic memmaps (default: a temp dir)")
    parser.add_argument("--null", type=int, default=0, help="also count this many permutation-null variants")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        activations = make_activations(folder / "activations.npy", args.images, args.units, args.seed)
        signatures = make_signatures(folder / "signatures.npy", args.images, args.signatures, args.seed)
        generate_s = time.perf_counter() - start
        print(f"generated {activations.shape} activations and {signatures.shape} signatures in {generate_s:.1f} s")

        rss_before = _peak_rss_gib()
        start, cpu = time.perf_counter(), time.process_time()
        thresholds, _ = compute_thresholds(activations, args.quantile, "layer", (112, 112), verbose=1)
        thresholds_s, thresholds_cpu = time.perf_counter() - start, time.process_time() - cpu

        start, cpu = time.perf_counter(), time.process_time()
        rng = np.random.default_rng(args.seed)
        variants = [np.arange(args.images)] + [rng.permutation(args.images) for _ in range(args.null)]
        masks = count_unit_masks(activations, signatures, thresholds, args.signatures, variants, verbose=1)[0]
        masks_s, masks_cpu = time.perf_counter() - start, time.process_time() - cpu

        maxima = np.asarray(activations.reshape(args.images, args.units, -1).max(axis=2), np.float32)
        passing = float((maxima > thresholds[None, :].astype(np.float32)).mean())
        density = float(masks.n_active.mean() / (args.images * 112 * 112))
    numbers = {
        "images": args.images,
        "null_variants": args.null,
        "units": args.units,
        "positions": args.images * 112 * 112,
        "thresholds_s": round(thresholds_s, 1),
        "thresholds_cpu_s": round(thresholds_cpu, 1),
        "masks_s": round(masks_s, 1),
        "masks_cpu_s": round(masks_cpu, 1),
        "total_s": round(thresholds_s + masks_s, 1),
        "maps_upsampled_fraction": round(passing, 4),
        "mean_unit_density": round(density, 5),
        "nonzero_counts": int(masks.counts.nnz),
        "peak_rss_gib": round(_peak_rss_gib(), 2),
        "peak_rss_before_stage_gib": round(rss_before, 2),
    }
    print(json.dumps(numbers, indent=2))
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
