"""Code clusters as units against neurons: mask-and-search time on the default dissection's ``conv_head``.

Goal (issue 15): explaining the code clusters of ``conv_head`` costs at most 2x the neuron
dissection's mask-and-search time. The run records the default dissection's inputs
(EfficientNet-Lite0 on the default probe, 2,000 images; stages reused from ``RUN`` when they
are there), then times, with the default explainer (length 3, beam 10, 20 % held out, a
20-permutation null):

* neurons: the masks stage (1,280 units, 22 variants) and the search;
* code clusters: the clustering (k-medoids on Hamming distance, fitted on 2,000 positions, all
  98,000 assigned), the masks of the cluster units and their search;
* the codes' cost: the record stage of a code-cluster run records the codes in the same
  forward pass as the activations; it is timed side by side with the record stage of a
  neuron run (``RUN-neurons``), and the difference is the codes' cost (``--no-plain-record``
  skips the second recording);
* the baselines of the same run (activation clusters, directions, random subsets), apart.

Usage::

    python benchmarks/region_units.py [--run runs/bench-regions] [--images 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def _timed(function):  # type: ignore[no-untyped-def]
    start, cpu = time.perf_counter(), time.process_time()
    value = function()
    return value, time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/bench-regions"))
    parser.add_argument("--images", type=int, default=None, help="probe images (default: the default probe's 2000)")
    parser.add_argument("--layer", default="conv_head")
    parser.add_argument("--clusters", type=int, default=16)
    parser.add_argument("--method", default="kmedoids", choices=("kmedoids", "hdbscan"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-plain-record", action="store_true", help="skip the neuron run's record stage")
    args = parser.parse_args(argv)

    from logiclens.core.concepts import ConceptSet
    from logiclens.explain.base import clone
    from logiclens.polytope.position_units import RegionUnitSettings, cluster_position_codes, position_families
    from logiclens.polytope.units import UnitFamily
    from logiclens.runs import layout
    from logiclens.runs.directory import RunDirectory
    from logiclens.vision.dissect import DissectionSettings, count_unit_masks
    from logiclens.vision.dissect.record import record_stage
    from logiclens.vision.dissect.regions import family_maps, layer_codes
    from logiclens.vision.dissect.search import variants_of
    from logiclens.vision.dissect.split import split_stage
    from logiclens.vision.dissect.thresholds import thresholds_stage
    from logiclens.vision.models import load_model
    from logiclens.vision.probes.registry import open_probe

    model = load_model("efficientnet-lite0")
    probe = open_probe("default", n_images=args.images, image_size=model.input_size[0])
    regions = RegionUnitSettings(method=args.method, n_clusters=args.clusters)
    settings = DissectionSettings(layers=[args.layer], units="code-clusters", regions=regions)
    run = RunDirectory(args.run)
    fresh = not run.manifest.get("record", {}).get("done")  # a reused record stage times nothing
    record_key, record_seconds, record_cpu = _timed(lambda: record_stage(run, model, probe, settings, 1))
    results_record = {"wall": record_seconds, "cpu": record_cpu, "fresh": fresh}
    if not args.no_plain_record:  # the same record stage without the codes, side by side
        plain = RunDirectory(Path(f"{args.run}-neurons"))
        fresh = fresh and not plain.manifest.get("record", {}).get("done")
        plain_settings = DissectionSettings(layers=[args.layer])
        _, wall, cpu = _timed(lambda: record_stage(plain, model, probe, plain_settings, 1))
        results_record["plain_wall"], results_record["plain_cpu"], results_record["fresh"] = wall, cpu, fresh
    concepts = ConceptSet.load(run / layout.CONCEPTS)
    split = split_stage(run, record_key, probe, settings)
    (_, thresholds, cuts), threshold_seconds, _ = _timed(
        lambda: thresholds_stage(run, args.layer, record_key, probe.mask_size, settings, 1)
    )
    activations = np.load(run / layout.record_file(args.layer), mmap_mode="r")
    signatures = np.load(run / layout.SIGNATURES, mmap_mode="r")
    n_images, n_units, h, w = activations.shape
    results: dict = {"images": n_images, "units": n_units, "grid": [h, w], "probe": probe.config().get("kind")}
    results["record_stage"] = results_record

    # neurons
    masks, wall, cpu = _timed(
        lambda: count_unit_masks(activations, signatures, thresholds, concepts.n_signatures, split.variants, cuts)
    )
    results["neurons_masks"] = {"wall": wall, "cpu": cpu}
    explainer = clone(settings.explainer).set_params(verbose=0)
    _, wall, cpu = _timed(lambda: explainer.fit_variants(variants_of(concepts, masks, split, signatures)))
    results["neurons_search"] = {"wall": wall, "cpu": cpu}

    # code clusters
    (codes, _), wall, cpu = _timed(lambda: layer_codes(run, model, probe, args.layer, record_key, settings))
    # read from the record stage's pass (a second forward pass only when the run was recorded without them)
    results["codes_loaded"] = {"wall": wall, "cpu": cpu, "bits": codes.n_bits, "positions": len(codes)}
    (labels, info), wall, cpu = _timed(lambda: cluster_position_codes(codes, regions, args.layer))
    results["clusters_clustering"] = {"wall": wall, "cpu": cpu, **info}
    family = UnitFamily.from_labels("code clusters", "region", labels, regions.min_cluster_size)

    def cluster_masks():  # type: ignore[no-untyped-def]
        maps = family_maps(family.masks, n_images, (h, w))
        return count_unit_masks(maps, signatures, np.full(len(family), 0.5), concepts.n_signatures, split.variants)

    cluster_variants, wall, cpu = _timed(cluster_masks)
    results["clusters_masks"] = {"wall": wall, "cpu": cpu, "units": len(family)}
    explainer = clone(settings.explainer).set_params(verbose=0)
    _, wall, cpu = _timed(lambda: explainer.fit_variants(variants_of(concepts, cluster_variants, split, signatures)))
    results["clusters_search"] = {"wall": wall, "cpu": cpu}
    frame = explainer.explanations_
    results["clusters_explained"] = {
        "median_iou": float(frame.iou.median()),
        "median_heldout_iou": float(frame.heldout_iou.median()),
        "significant": int(frame.significant.sum()),
    }

    # baselines of the same run, for reference
    def baselines():  # type: ignore[no-untyped-def]
        rows = np.asarray(activations, dtype=np.float32).transpose(0, 2, 3, 1).reshape(-1, n_units)
        return position_families(codes, rows, regions, args.layer)

    _, wall, cpu = _timed(baselines)
    results["baselines_families"] = {"wall": wall, "cpu": cpu}

    neuron_cost = results["neurons_masks"]["wall"] + results["neurons_search"]["wall"]
    cluster_cost = sum(results[k]["wall"] for k in ("clusters_clustering", "clusters_masks", "clusters_search"))
    results["neuron_mask_and_search_s"] = neuron_cost
    results["cluster_clustering_mask_and_search_s"] = cluster_cost
    results["ratio"] = cluster_cost / neuron_cost
    if "plain_wall" in results_record and fresh:
        for kind in ("wall", "cpu"):
            extra = results_record[kind] - results_record[f"plain_{kind}"]
            results[f"codes_in_record_pass_{kind}_s"] = extra
        neuron_cpu = results["neurons_masks"]["cpu"] + results["neurons_search"]["cpu"]
        cluster_cpu = sum(results[k]["cpu"] for k in ("clusters_clustering", "clusters_masks", "clusters_search"))
        results["ratio_with_codes_wall"] = (cluster_cost + results["codes_in_record_pass_wall_s"]) / neuron_cost
        results["ratio_with_codes_cpu"] = (cluster_cpu + results["codes_in_record_pass_cpu_s"]) / neuron_cpu
    results["record_stage_s"] = record_seconds
    results["thresholds_s"] = threshold_seconds
    results["load_average"] = os.getloadavg()
    print(json.dumps(results, indent=1, default=float))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
