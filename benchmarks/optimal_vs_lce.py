"""logiclens' certified search vs the PyPI package ``compositional-explanations`` (LCE), same problems.

Builds the segmentation-like problems of ``benchmarks/optimal_search.py`` (same generator, same
seed), times per unit our beam search, our certified optimum (``optimal_unit``, seeded with that
beam) and our beam certificate (``certify``), then runs LCE's ``optimal.compute_optimal_explanations``
on the same dense masks in its own virtual environment (``--lce-python``), one process per unit
with a time limit, and compares optimal IoUs (both are one float division of exact counts) and
times. LCE's dataset statistics (``mask_utils.get_dataset_info``) are computed once, cached, and
not counted; its own progress lines go to /dev/null. LCE searches OR / AND / AND NOT, so ours
runs with the same operators.

    python3 -m venv /tmp/lce-venv
    /tmp/lce-venv/bin/pip install torch==2.13.0 && /tmp/lce-venv/bin/pip install compositional-explanations
    PYTHONPATH=src .venv/bin/python benchmarks/optimal_vs_lce.py --images 200 --units 6 --lce-timeout 300
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from logiclens import ConceptSet
from logiclens.core.masks import UnitMasks
from logiclens.core.search.beam import BeamSettings, PrimitiveTable, iou_of, search_unit
from logiclens.core.search.optimal import certify, optimal_unit
from optimal_search import _timed, make_concepts, make_units

#: run by LCE's interpreter: argv = problem.npz cache_dir unit
DRIVER = r"""
import contextlib, json, os, sys, time
import numpy as np
import torch
from compositional_explanations import metrics, optimal
from compositional_explanations.formula import get_formula_str
from package_utils import mask_utils

data = np.load(sys.argv[1])
images, per_image = int(data["images"]), int(data["per_image"])
names = [str(n) for n in data["names"]]
dense = np.unpackbits(data["masks"], axis=1, count=images * per_image).astype(bool)
masks = [torch.from_numpy(m.reshape(images, per_image)) for m in dense]
unit = int(sys.argv[3])
bitmap = torch.from_numpy(
    np.unpackbits(data["units"][unit], count=images * per_image).astype(bool).reshape(images, per_image)
)
f = dense.astype(np.float32)
disjoint = torch.from_numpy((f @ f.T) == 0)
with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
    mask_utils.get_dataset_info(masks, sys.argv[2])  # cached: not timed
    start, cpu = time.perf_counter(), time.process_time()
    found = optimal.compute_optimal_explanations(
        masks=masks, bitmaps=bitmap, disjoint_info=disjoint, length=int(data["length"]),
        device=torch.device("cpu"), cache_dir=sys.argv[2],
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
formula = found[0] if isinstance(found, tuple) else found
value = metrics.compute_iou_from_masks(formula=formula, masks=masks, bitmaps=bitmap)
print(json.dumps({"wall": wall, "cpu": cpu, "iou": float(value), "formula": get_formula_str(formula, names)}))
"""


def run_lce(python: str, problem: Path, cache: Path, unit: int, timeout: float) -> dict:
    """One unit in LCE's interpreter; ``{"error": ...}`` when it fails or runs out of time."""
    script = problem.parent / "lce_driver.py"
    script.write_text(DRIVER)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [python, str(script), str(problem), str(cache), str(unit)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:g} s", "wall": time.perf_counter() - start}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--objects", type=int, default=40)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--colours", type=int, default=11)
    parser.add_argument("--units", type=int, default=6)
    parser.add_argument("--length", type=int, default=3)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--keep", type=float, default=0.85)
    parser.add_argument("--false", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="our steps: fastest of this many runs")
    parser.add_argument("--lce-python", default="/tmp/lce-venv/bin/python")
    parser.add_argument("--lce-timeout", type=float, default=300.0, help="seconds per unit for LCE")
    parser.add_argument("--json", metavar="OUT", help="write the per-unit numbers here")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    masks, names = make_concepts(rng, args.images, args.size, args.objects, args.scenes, args.colours)
    concepts = ConceptSet.from_dense(masks, names)
    units = make_units(rng, masks, args.units, args.keep, args.false)
    counts = UnitMasks.from_dense(units, concepts).counts
    settings = BeamSettings(max_length=args.length, beam_size=args.beam, operators=("or", "and", "and_not"))
    table = PrimitiveTable(concepts, settings.min_support, settings.use_neighbors)
    print(
        f"{args.units} units / {concepts.n_positions:,} positions / {concepts.n_concepts} concepts / "
        f"{concepts.n_signatures:,} signatures; length {args.length}, beam {args.beam}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        problem = Path(folder) / "problem.npz"
        np.savez(
            problem,
            masks=np.packbits(masks, axis=1),
            units=np.packbits(units, axis=1),
            names=np.array(names),
            images=np.array(args.images),
            per_image=np.array(args.size * args.size),
            length=np.array(args.length),
        )
        cache = Path(folder) / "lce-cache"
        header = f"{'unit':>4} {'beam s':>8} {'opt s':>8} {'cert s':>8} {'LCE s':>9} {'beam IoU':>9} {'opt IoU':>9}"
        print(header + f" {'LCE IoU':>9} {'equal':>5}  formulas (ours | LCE)", flush=True)
        for u in range(args.units):
            sigs = counts.indices[counts.indptr[u] : counts.indptr[u + 1]]
            cnt = counts.data[counts.indptr[u] : counts.indptr[u + 1]]
            (beam_cpu, _), beam = _timed(args.repeat, search_unit, table, sigs, cnt, settings)
            (opt_cpu, _), result = _timed(args.repeat, optimal_unit, table, sigs, cnt, settings, incumbent=beam)
            (cert_cpu, _), _bound = _timed(args.repeat, certify, table, sigs, cnt, beam, settings)
            lce = run_lce(args.lce_python, problem, cache, u, args.lce_timeout)
            beam_iou = iou_of(beam.best, beam.n_active) if beam.best else 0.0
            equal = "error" not in lce and lce["iou"] == result.iou
            lce_s = f"{lce['cpu']:9.2f}" if "error" not in lce else f"{'>' + str(int(args.lce_timeout)):>9}"
            lce_iou = f"{lce['iou']:9.4f}" if "error" not in lce else f"{'-':>9}"
            print(
                f"{u:>4} {beam_cpu:8.4f} {opt_cpu:8.4f} {cert_cpu:8.4f} {lce_s} {beam_iou:9.4f} {result.iou:9.4f} "
                f"{lce_iou} {str(equal) if 'error' not in lce else lce['error']:>5}  "
                f"{result.best.formula} | {lce.get('formula', '')}",
                flush=True,
            )
            rows.append(
                {
                    "unit": u,
                    "beam_cpu_s": beam_cpu,
                    "optimal_cpu_s": opt_cpu,
                    "certify_cpu_s": cert_cpu,
                    "beam_iou": beam_iou,
                    "optimal_iou": result.iou,
                    "status": result.status,
                    "formula": str(result.best.formula),
                    "lce": lce,
                }
            )
    finished = [r for r in rows if "error" not in r["lce"]]
    ours = np.array([r["beam_cpu_s"] + r["optimal_cpu_s"] for r in rows])
    print(f"ours (beam + certified optimum) mean CPU s/unit: {ours.mean():.4f}")
    if finished:
        lce_cpu = np.array([r["lce"]["cpu"] for r in finished])
        mine = np.array([r["beam_cpu_s"] + r["optimal_cpu_s"] for r in finished])
        same = sum(r["lce"]["iou"] == r["optimal_iou"] for r in finished)
        print(
            f"LCE finished {len(finished)}/{len(rows)} units: mean CPU s/unit {lce_cpu.mean():.2f} "
            f"(max {lce_cpu.max():.2f}); speed-up per unit: median {np.median(lce_cpu / mine):,.0f}x, "
            f"min {np.min(lce_cpu / mine):,.0f}x; identical optimal IoU on {same}/{len(finished)}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
