"""Cost of activation ranges and of SAE encoding, each measured side by side with the plain run.

Part ``ranges``: the default dissection (EfficientNet-Lite0, ``conv_head``, the default
probe, 20 % held out, 20-permutation null) is recorded once; the thresholds, masks and
search stages then run with ``ranges=1`` and ``ranges=5`` on the same recording, in the same
process, one after the other, and each stage is timed.

Part ``sae``: all-MiniLM-L6-v2 token activations (a layer's pieces pooled per word, as
``text explain --hf-model minilm --level token`` records them) on SNLI premises, recorded
with and without a random SAE 8x wider than the layer (encoded piece by piece before
pooling), alternating, best of ``--repeats``.

Usage::

    python benchmarks/ranges_sae.py ranges --images 200 [--out /tmp/bench_ranges]
    python benchmarks/ranges_sae.py sae --sentences 2000 [--layer encoder.layer.3.output]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _timed(function):  # type: ignore[no-untyped-def]
    start, cpu = time.perf_counter(), time.process_time()
    value = function()
    return value, time.perf_counter() - start, time.process_time() - cpu


def ranges(args: argparse.Namespace) -> dict:
    from logiclens.cli.options import explainer_from_args  # noqa: F401 - the defaults come from the CLI's
    from logiclens.core.concepts import ConceptSet
    from logiclens.explain.compositional import CompositionalExplainer
    from logiclens.runs import layout
    from logiclens.runs.directory import RunDirectory
    from logiclens.vision.dissect.masks import masks_stage
    from logiclens.vision.dissect.record import record_stage
    from logiclens.vision.dissect.search import search_stage
    from logiclens.vision.dissect.settings import DissectionSettings
    from logiclens.vision.dissect.split import split_stage
    from logiclens.vision.dissect.thresholds import thresholds_stage
    from logiclens.vision.models import load_model
    from logiclens.vision.probes.registry import open_probe

    model = load_model("efficientnet-lite0")
    probe = open_probe("default", n_images=args.images, seed=0, image_size=model.input_size[0])
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    layer = "conv_head"
    explainer = CompositionalExplainer(holdout=0.2, n_null=20, n_jobs=args.n_jobs, verbose=0)
    report: dict = {"images": len(probe), "layer": layer, "load_start": os.getloadavg()}
    base = DissectionSettings(layers=[layer], explainer=explainer)
    run = RunDirectory(out / "k1")
    record_key, seconds, _ = _timed(lambda: record_stage(run, model, probe, base, 0))
    report["record_s"] = seconds
    shutil.copytree(out / "k1", out / "k5")
    for k in (1, 5):
        settings = DissectionSettings(layers=[layer], explainer=explainer, ranges=k)
        run = RunDirectory(out / f"k{k}")
        concepts = ConceptSet.load(run / layout.CONCEPTS)
        split = split_stage(run, record_key, probe, settings)
        (key, thresholds, cuts), t_s, _ = _timed(
            lambda: thresholds_stage(run, layer, record_key, probe.mask_size, settings, 0)  # noqa: B023
        )
        (masks_key, masks), m_s, m_cpu = _timed(
            lambda: masks_stage(run, layer, key, thresholds, cuts, concepts, split, 0)  # noqa: B023
        )
        frame, s_s, _ = _timed(
            lambda: search_stage(run, layer, masks_key, masks, concepts, thresholds, split, settings, 0)  # noqa: B023
        )
        report[f"ranges_{k}"] = {
            "units": len(frame), "thresholds_s": t_s, "masks_s": m_s, "masks_cpu_s": m_cpu, "search_s": s_s,
            "mean_iou": float(frame.iou.mean()), "significant": int(frame.significant.sum()),
        }  # fmt: skip
    one, five = report["ranges_1"], report["ranges_5"]
    report["masks_ratio"] = five["masks_s"] / one["masks_s"]
    report["search_ratio"] = five["search_s"] / one["search_s"]
    report["load_end"] = os.getloadavg()
    return report


def sae(args: argparse.Namespace) -> dict:
    import torch

    from logiclens.sae import load_sae, save_sae
    from logiclens.text.tokenize import SimpleAnnotator
    from logiclens.text.transformer import load_transformer, record_word_activations

    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines()[: args.sentences]]
    texts = SimpleAnnotator().annotate([row["premise"] for row in rows])
    model, tokenizer = load_transformer("minilm")
    width = dict(model.named_modules())[args.layer]
    d_in = 384 if not args.layer.endswith("intermediate") else 1536
    del width
    rng = np.random.default_rng(0)
    folder = save_sae(Path(tempfile.mkdtemp()) / "sae", rng.normal(size=(d_in, 8 * d_in)) / np.sqrt(d_in),
                      b_enc=np.full(8 * d_in, -0.5), architecture="standard")  # fmt: skip
    encoder = load_sae(folder)
    plain, with_sae = [], []
    for _ in range(args.repeats):
        _, seconds, _ = _timed(lambda: record_word_activations(model, tokenizer, texts, args.layer))
        plain.append(seconds)
        latents, seconds, _ = _timed(
            lambda: record_word_activations(model, tokenizer, texts, args.layer, transform=encoder.encode)
        )
        with_sae.append(seconds)
    words = sum(len(t.words) for t in texts)
    return {
        "sentences": len(texts), "words": words, "layer": args.layer, "d_in": d_in, "d_sae": 8 * d_in,
        "threads": args.threads, "plain_s": plain, "sae_s": with_sae, "overhead": min(with_sae) / min(plain) - 1,
        "active_latents_per_word": float((latents > 0).sum(1).mean()), "load": os.getloadavg(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parts = parser.add_subparsers(dest="part", required=True)
    r = parts.add_parser("ranges")
    r.add_argument("--images", type=int, default=200)
    r.add_argument("--out", default="/tmp/bench_ranges")
    r.add_argument("--n-jobs", type=int, default=2)
    s = parts.add_parser("sae")
    s.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/snli/snli_1.0_dev.jsonl"))
    s.add_argument("--sentences", type=int, default=2000)
    s.add_argument("--layer", default="encoder.layer.3.output")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    report = ranges(args) if args.part == "ranges" else sae(args)
    json.dump(report, sys.stdout, indent=2, default=float)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
