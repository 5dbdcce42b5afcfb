"""Certified search vs beam, side by side, at Broden scale (the problem of ``search_scale.py``).

Builds (or loads from ``--cache``) the Broden-scale problem of ``benchmarks/search_scale.py``
(22,210 images of 112 x 112 = 278.6 M positions, 1,105 concepts, planted units with noise),
then, in one process and unit by unit, times

* the beam (``search_unit``, length ``--length``, beam ``--beam``),
* the certified search seeded with that beam (``optimal_unit(incumbent=beam)``: beam excluded),
* the beam's certificate (``certify``) and the ceiling,

in CPU seconds (``time.process_time``). The first unit is run once untimed so that the tables
cached per primitive table (co-occurrence counts, pair codes) are built outside the timings;
that one-off cost is reported separately. ``--profile`` writes a cProfile of the certified
search.

    PYTHONPATH=src .venv/bin/python benchmarks/optimal_scale.py --units 128 --cache /tmp/optscale
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from logiclens import ConceptSet, UnitMasks
from logiclens.core.search.beam import BeamSettings, PrimitiveTable, iou_of, search_unit
from logiclens.core.search.optimal import ceiling, certify, optimal_unit
from search_scale import LabelGenerator, build_units, make_vocabulary


def load_problem(cache: Path | None, n_units: int, seed: int) -> tuple[ConceptSet, UnitMasks, float]:
    """The concept set and units, built once and cached as ``.npz`` when ``cache`` is given."""
    if cache is not None:
        c_path, u_path = cache / f"concepts-{seed}.npz", cache / f"units-{seed}-{n_units}.npz"
        if c_path.exists() and u_path.exists():
            return ConceptSet.load(c_path), UnitMasks.load(u_path), 0.0
    t0 = time.perf_counter()
    vocab = make_vocabulary(seed)
    generator = LabelGenerator(vocab, 22_210, 112, 128, seed)
    concepts = ConceptSet.from_label_chunks(generator.chunks(progress=False), vocab.names, vocab.categories)
    units, _ = build_units(concepts, n_units, seed, progress=False)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        concepts.save(c_path)
        units.save(u_path)
    return concepts, units, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=128, help="units to time (default 128)")
    parser.add_argument("--length", type=int, default=3)
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="folder to keep the generated problem in")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the certified search here")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args()

    load0 = os.getloadavg()
    concepts, units, build_s = load_problem(args.cache, args.units, args.seed)
    settings = BeamSettings(max_length=args.length, beam_size=args.beam)
    table = PrimitiveTable(concepts, settings.min_support, settings.use_neighbors)
    counts = units.counts
    print(
        f"{len(units)} units / {concepts.n_positions:,} positions / {len(table)} primitives / "
        f"{concepts.n_signatures:,} signatures; length {args.length}, beam {args.beam}; built in {build_s:.1f} s"
    )

    def unit(u: int):
        start, stop = counts.indptr[u], counts.indptr[u + 1]
        return counts.indices[start:stop], counts.data[start:stop]

    # one-off tables cached per primitive table, outside the per-unit timings
    c0 = time.process_time()
    sigs, cnt = unit(0)
    optimal_unit(table, sigs, cnt, settings)
    warm_s = time.process_time() - c0

    profiler = cProfile.Profile() if args.profile else None
    rows = []
    for u in range(len(units)):
        sigs, cnt = unit(u)
        c0 = time.process_time()
        beam = search_unit(table, sigs, cnt, settings)
        c1 = time.process_time()
        if profiler:
            profiler.enable()
        result = optimal_unit(table, sigs, cnt, settings, incumbent=beam)
        if profiler:
            profiler.disable()
        c2 = time.process_time()
        bound = certify(table, sigs, cnt, beam, settings)
        top = ceiling(sigs, cnt, concepts.signature_weights)
        c3 = time.process_time()
        beam_iou = iou_of(beam.best, beam.n_active) if beam.best else 0.0
        rows.append((c1 - c0, c2 - c1, c3 - c2, beam_iou, result.iou, result.status, bound, top))
    times = np.array([r[:3] for r in rows])
    beam_s, opt_s, cert_s = times.sum(axis=0)
    beam_iou = np.array([r[3] for r in rows])
    opt_iou = np.array([r[4] for r in rows])
    bound = np.array([r[6] for r in rows])
    statuses = [r[5] for r in rows]
    beam_optimal = beam_iou >= opt_iou
    proven = bound <= beam_iou  # certify's bound meets the beam's answer
    summary = {
        "units": len(units),
        "primitives": len(table),
        "signatures": concepts.n_signatures,
        "beam_cpu_s": beam_s,
        "certified_cpu_s_beam_excluded": opt_s,
        "certify_and_ceiling_cpu_s": cert_s,
        "ratio_certified_excluding_beam": opt_s / beam_s,
        "ratio_certified_including_beam": (beam_s + opt_s) / beam_s,
        "ratio_certify": cert_s / beam_s,
        "one_off_tables_cpu_s": warm_s,
        "optimal": statuses.count("optimal"),
        "beam_below_optimum": int((~beam_optimal).sum()),
        "certify_proves": int(proven.sum()),
        "beam_optimal": int(beam_optimal.sum()),
        "mean_beam_gap": float((bound - beam_iou).mean()),
        "median_beam_gap": float(np.median(bound - beam_iou)),
        "beam_gap_below_0.001": int(((bound - beam_iou) < 1e-3).sum()),
        "bound_valid": bool((bound >= opt_iou - 1e-12).all()),
        "load_average_start": load0,
        "load_average_end": os.getloadavg(),
    }
    print(
        f"CPU s: beam {beam_s:.2f}, certified {opt_s:.2f} (beam excluded), certify+ceiling {cert_s:.2f}; "
        f"one-off tables {warm_s:.2f}"
    )
    print(
        f"certified / beam: {opt_s / beam_s:.2f} excluding its beam, {(beam_s + opt_s) / beam_s:.2f} including it; "
        f"certify / beam {cert_s / beam_s:.2f}"
    )
    print(
        f"optimal {summary['optimal']}/{len(units)}; beam below the optimum on {summary['beam_below_optimum']}; "
        f"certify proves {summary['certify_proves']} of {summary['beam_optimal']} optimal beam answers "
        f"(mean beam_gap {summary['mean_beam_gap']:.4f}, median {summary['median_beam_gap']:.5f}, "
        f"below 0.001 on {summary['beam_gap_below_0.001']}); bound valid: {summary['bound_valid']}"
    )
    print(f"load average {load0} -> {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    if profiler:
        profiler.dump_stats(args.profile)
        pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
