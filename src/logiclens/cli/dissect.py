"""``logiclens dissect``: explain every unit of an image model's layers on a probing set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from logiclens.cli.analyze import add_analyze_after_options, analyze_after
from logiclens.cli.options import (
    add_region_options,
    add_search_options,
    add_validation_options,
    count,
    explainer_from_args,
    finite,
    open_fraction,
    positive,
    print_table,
    region_settings_from_args,
    validation_values,
    wide_tables,
    write_report,
)

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the ``dissect`` command."""
    dissect = commands.add_parser(
        "dissect",
        help="explain every unit of an image model's layers on a probing set",
        description="Record a layer's activations on a probing set, threshold each unit at its top "
        "quantile, and search the formula over the probe's concepts that best matches each unit. "
        "Rerunning with the same options resumes an interrupted run and reuses finished stages.",
    )
    dissect.add_argument("--model", default="efficientnet-lite0", help="efficientnet-lite0 (default), "
                         "resnet18-places365 (with --weights), or module:factory")  # fmt: skip
    dissect.add_argument("--weights", help="weights file for resnet18-places365 or module:factory")
    dissect.add_argument("--activations", type=Path, metavar="FILE.npy",
                         help="activations recorded elsewhere, in the probe's image order, instead of --model: "
                         "(n, C, h, w), (n, tokens, dim), (n, C) or (n, h, w, C) with --channels-last")  # fmt: skip
    dissect.add_argument("--image-size", type=positive, help="probe image size with --activations (default 224)")
    dissect.add_argument("--layer", action="append", help="layer to dissect (repeatable; default: the model's)")
    dissect.add_argument("--probe", default="default", help="default (stamps, else shapes), stamps, shapes, "
                         "broden:PATH or segmentation:PATH")  # fmt: skip
    dissect.add_argument("--images", type=positive, help="number of probe images (generated probes: 2000)")
    dissect.add_argument("--categories", help="Broden categories, comma-separated (e.g. object,part,color)")
    dissect.add_argument("--sources", help="Broden image sources, comma-separated (e.g. ade20k)")
    dissect.add_argument("--class-map", help="Broden: CSV scene,class giving images the model's classes (analysis)")
    dissect.add_argument(
        "--verify-inputs", choices=("stat", "full"), default="stat",
        help="notice edited probe files by size and modification time (default) or by content",
    )  # fmt: skip
    dissect.add_argument("--seed", type=int, default=0, help="seed of generated probes, the split and the null")
    dissect.add_argument(
        "--quantile", type=open_fraction, default=0.005, help="top fraction q per unit (default 0.005)"
    )
    dissect.add_argument("--threshold-mode", choices=("layer", "upsampled"), default="layer",
                         help="quantile over the layer's positions (NetDissect, default) or over upsampled pixels "
                         "(the paper's definition)")  # fmt: skip
    dissect.add_argument("--threshold", type=finite, help="fixed threshold instead of a quantile (e.g. 0)")
    units = dissect.add_argument_group("units")
    units.add_argument("--extra-tokens", type=count, metavar="N",
                       help="token layers (n, tokens, dim): leading tokens that are not patches (default: 1 when "
                       "the rest is a square grid, as a ViT's CLS token)")  # fmt: skip
    units.add_argument("--channels-last", action="store_true", help="4-D layers are (n, h, w, C)")
    units.add_argument("--sae", type=Path, metavar="DIR",
                       help="sparse autoencoder in SAELens format (cfg.json + sae_weights.safetensors): "
                       "its latents are the units")  # fmt: skip
    units.add_argument("--ranges", type=positive, default=1, metavar="K",
                       help="explain K activation ranges per unit (Clustered Compositional Explanations; "
                       "default 1: the top quantile)")  # fmt: skip
    add_validation_options(dissect, "images", holdout=0.2, null=20)
    dissect.add_argument("--holdout-by", choices=("image", "group"), default="image",
                         help="hold out random images (default), or whole groups of the probe (e.g. every image of "
                         "one pasted object: a test of transfer to unseen groups)")  # fmt: skip
    dissect.add_argument(
        "--random-init-control",
        action="store_true",
        help="also dissect a randomly initialised copy, into OUT/random_init",
    )
    dissect.add_argument("--no-report", action="store_true", help="do not write the HTML report (OUT/report)")
    add_analyze_after_options(dissect)
    dissect.add_argument("--batch-size", type=positive, default=32)
    dissect.add_argument("--device", default="cpu", help="cpu or cuda")
    dissect.add_argument("--autocast", choices=("float16", "bfloat16"),
                         help="run the forward pass under torch.autocast in this precision (GPUs; activations "
                         "change slightly, and so may thresholds and IoUs)")  # fmt: skip
    dissect.add_argument("--count-device", metavar="DEVICE",
                         help="upsample and threshold the masks stage in torch on this device (e.g. cuda); "
                         "the counts are the same")  # fmt: skip
    dissect.add_argument("--shard-images", type=positive, default=512, metavar="N",
                         help="with --backend ray: images per record shard (default 512)")  # fmt: skip
    dissect.add_argument("--out", "-o", default="runs/dissect", help="run directory (default runs/dissect)")
    dissect.add_argument("--show", type=count, default=15, help="best units to print (default 15)")
    add_search_options(dissect)
    add_region_options(dissect)
    dissect.set_defaults(handler=run, n_jobs=-1)  # all cores, as `make demo` runs it


def run(args: argparse.Namespace) -> int:
    from logiclens.runs.summary import summarize
    from logiclens.vision.dissect import ActivationFile, DissectionSettings, dissect, random_init_copy
    from logiclens.vision.models import load_model
    from logiclens.vision.probes.registry import open_probe

    if args.activations is not None:
        model = ActivationFile(args.activations, (args.layer or ["activations"])[0])
        image_size = args.image_size or 224
    else:
        model = load_model(args.model, weights=args.weights)
        image_size = args.image_size or model.input_size[0]
    layers = args.layer or model.default_layers
    probe = open_probe(
        args.probe,
        n_images=args.images,
        seed=args.seed,
        image_size=image_size,
        categories=args.categories.split(",") if args.categories else None,
        sources=args.sources.split(",") if args.sources else None,
        class_map=args.class_map,
        verify=args.verify_inputs,
    )
    settings = DissectionSettings(
        layers=list(layers),
        explainer=explainer_from_args(args, seed=args.seed),
        holdout_by=args.holdout_by,
        top_fraction=args.quantile,
        threshold_mode="fixed" if args.threshold is not None else args.threshold_mode,
        fixed_threshold=0.0 if args.threshold is None else args.threshold,
        batch_size=args.batch_size,
        device=args.device,
        units=args.units,
        regions=region_settings_from_args(args, seed=args.seed),
        extra_tokens=args.extra_tokens,
        channels_last=args.channels_last,
        sae=None if args.sae is None else str(args.sae),
        ranges=args.ranges,
        backend=args.backend,
        ray_address=args.ray_address,
        shard_images=args.shard_images,
        autocast=args.autocast,
        count_device=args.count_device,
    )
    print(
        f"dissecting {model.name} layers {', '.join(layers)} on {len(probe)} images of the "
        f"{probe.config().get('kind', args.probe)} probe ({len(probe.concept_names)} concepts) into {args.out}",
        file=sys.stderr,
    )
    verbose = 0 if args.quiet else 1
    results = dissect(model, probe, args.out, settings, verbose=verbose)
    columns = ["layer", "unit", "formula", "iou", "heldout_iou", "significant", "best_atomic", "best_atomic_iou"]
    with wide_tables():
        print(summarize(results).to_string(float_format=lambda x: f"{x:.4f}"))
    holdout, null = validation_values(args)
    if holdout:
        print(f"held-out: {holdout:.0%} of the images, split by {args.holdout_by} (seed {args.seed}); "
              f"null: {null} permutations", file=sys.stderr)  # fmt: skip
    print_table(results.sort_values("iou", ascending=False).head(args.show), columns)
    if args.units == "code-clusters":
        _print_comparisons(args.out, layers)
    if "dead" in results:
        latents = results.drop_duplicates(["layer", "unit"])
        print(f"{int(latents.dead.sum())} of {len(latents)} SAE latents never active on the probe (dead)",
              file=sys.stderr)  # fmt: skip
    if args.random_init_control and args.activations is None:
        control_out = Path(args.out) / "random_init"
        print(f"control: the same dissection of a randomly initialised copy, into {control_out}", file=sys.stderr)
        control = dissect(random_init_copy(model), probe, control_out, settings, verbose=verbose)
        with wide_tables():
            print("randomly initialised copy:")
            print(summarize(control).to_string(float_format=lambda x: f"{x:.4f}"))
    status = analyze_after(args, args.out, model=model, probe=probe)
    if not args.no_report:
        write_report(args.out, probe, args.n_jobs, verbose)
    print(f"results: {Path(args.out) / 'results.csv'}", file=sys.stderr)
    return status


def _print_comparisons(out: str | Path, layers: list[str]) -> None:
    import pandas as pd

    from logiclens.runs import layout

    for layer in layers:
        path = Path(out) / layout.comparison_file(layer)
        if path.exists():
            print(f"size-matched comparison of {layer}'s unit families ({path.name}):")
            with wide_tables():
                print(pd.read_csv(path).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
