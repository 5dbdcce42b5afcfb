"""Cost of the held-out split and the permutation null, side by side with a plain dissection.

Runs on a finished dissection's recorded activations (``logiclens dissect --out RUN``) and
times, for one layer, the mask stage with 1 variant against 1 + 1 + R variants (search,
held-out, R permutations), and the search alone against the search plus R null searches.

Usage::

    python benchmarks/null_cost.py RUN [--layer conv_head] [--null 20] [--n-jobs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from logiclens.core.concepts import ConceptSet
from logiclens.core.io import read_npz
from logiclens.core.masks import UnitMasks
from logiclens.core.search.beam import BeamSettings, PrimitiveTable
from logiclens.core.search.run import search_all
from logiclens.runs import layout
from logiclens.vision.dissect import count_unit_masks
from logiclens.vision.dissect.search import variants_of
from logiclens.vision.dissect.split import Split


def _timed(function):  # type: ignore[no-untyped-def]
    start, cpu = time.perf_counter(), time.process_time()
    value = function()
    return value, time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--layer", default="conv_head")
    parser.add_argument("--null", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)

    activations = np.load(args.run / layout.record_file(args.layer), mmap_mode="r")
    signatures = np.load(args.run / layout.SIGNATURES, mmap_mode="r")
    thresholds = read_npz(args.run / layout.thresholds_file(args.layer))
    concepts = ConceptSet.load(args.run / layout.CONCEPTS)
    n_images = len(activations)
    rng = np.random.default_rng(0)
    order = rng.permutation(n_images)
    search, held = np.sort(order[: int(0.8 * n_images)]), np.sort(order[int(0.8 * n_images) :])

    def variant(images: np.ndarray, sources: np.ndarray) -> np.ndarray:
        out = np.full(n_images, -1)
        out[images] = sources
        return out

    variants = [variant(search, search), variant(held, held)]
    variants += [variant(search, rng.permutation(search)) for _ in range(args.null)]
    cuts = thresholds["tie_cuts"]
    t, s = thresholds["thresholds"], concepts.n_signatures
    _, plain_s, plain_cpu = _timed(lambda: count_unit_masks(activations, signatures, t, s, None, cuts))
    masks, all_s, all_cpu = _timed(lambda: count_unit_masks(activations, signatures, t, s, variants, cuts))

    validation = variants_of(concepts, masks, Split(search, held, variants, ""), signatures)
    settings = BeamSettings(max_length=3, beam_size=10)
    table = PrimitiveTable(validation.search_concepts)
    _, search_s, _ = _timed(lambda: search_all(table, validation.search, settings, args.n_jobs, 0))
    stacked = UnitMasks(sp.vstack([m.counts for m in validation.null], format="csr"))
    _, null_s, _ = _timed(lambda: search_all(table, stacked, settings, args.n_jobs, 0))
    numbers = {
        "layer": args.layer,
        "units": int(activations.shape[1]),
        "images": n_images,
        "null_permutations": args.null,
        "masks_1_variant_s": round(plain_s, 1),
        "masks_1_variant_cpu_s": round(plain_cpu, 1),
        "masks_all_variants_s": round(all_s, 1),
        "masks_all_variants_cpu_s": round(all_cpu, 1),
        "search_s": round(search_s, 1),
        "null_searches_s": round(null_s, 1),
        "null_cost_over_one_search": round(null_s / search_s, 1),
        "plain_stage_total_s": round(plain_s + search_s, 1),
        "validated_stage_total_s": round(all_s + search_s + null_s, 1),
    }
    print(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
