"""``logiclens text``: train the paper's NLI model, and explain text units (:func:`logiclens.text.explain_text`)."""

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
    wide_tables,
)

__all__ = ["register"]


def _min_active(text: str) -> int | float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    if value >= 1 or value == 0:
        if not value.is_integer():
            raise argparse.ArgumentTypeError("a count must be a whole number; a fraction must lie in (0, 1)")
        return int(value)
    return value


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``text`` command (with ``train-nli`` and ``explain``) to the main parser's subparsers."""
    text = subparsers.add_parser(
        "text",
        help="text models: train the paper's NLI model; explain units of sentence, pair or token models",
        description="Sentence-pair (NLI), sentence and token probes after Mu & Andreas (2020, section 3). "
        "See docs/language.md.",
    )
    commands = text.add_subparsers(dest="text_command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train-nli",
        help="train the paper's LSTM NLI model on JSONL pairs",
        description="Train the NLI model of the paper (embedding, unidirectional LSTM, [u, v, u*v, u-v], MLP with "
        "two 1,024-unit ReLU layers, softmax) on JSONL records with premise, hypothesis and gold_label; save a "
        "state dict that loads with torch.load(weights_only=True).",
    )
    train.add_argument("data", type=Path, help="JSONL training pairs")
    train.add_argument("--out", "-o", type=Path, required=True, help="checkpoint file to write (.pt)")
    train.add_argument("--epochs", type=int, default=10, help="default 10")
    train.add_argument("--batch-size", type=int, default=100, help="default 100 (as the reference)")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    train.add_argument("--valid-fraction", type=float, default=0.1, help="held out to pick the epoch (default 0.1)")
    train.add_argument("--tokenizer", choices=("simple", "spacy"), default="simple", help="default simple")
    train.add_argument("--max-vocab", type=int, default=50_000, help="words with ids (default 50000)")
    train.add_argument("--embedding-dim", type=int, default=300)
    train.add_argument("--hidden", type=int, default=512, help="LSTM units (default 512)")
    train.add_argument("--bidirectional", action="store_true", help="BiLSTM (the reference model is unidirectional)")
    train.add_argument("--mlp-hidden", type=int, default=1024, help="units per MLP layer (default 1024)")
    train.add_argument("--limit", type=int, help="read at most this many records")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(handler=_cmd_train_nli)

    explain = commands.add_parser(
        "explain",
        help="explain the units of a saved NLI model (or an .npy activation matrix) on a JSONL file",
        description="Build the paper's concepts for the records of a JSONL file (pairs: premise/hypothesis; "
        "sentences: text), binarise the units (> threshold, or a top quantile), skip rarely active units, "
        "search a formula for every other unit, and (with --out) write a run directory with an HTML report.",
    )
    explain.add_argument("data", type=Path, help="JSONL probing data")
    source = explain.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="checkpoint from `logiclens text train-nli`")
    source.add_argument(
        "--activations", type=Path, help=".npy array: one row per record (or token), one column per unit"
    )
    source.add_argument("--hf-model", metavar="PATH",
                        help="a local Hugging Face model folder, or minilm (the packaged all-MiniLM-L6-v2); "
                        "nothing is downloaded")  # fmt: skip
    explain.add_argument("--layer", help="layer of --model to record (default head.mlp.relu2, the penultimate); "
                         "with --activations, the name the run gives the units (default units)")  # fmt: skip
    explain.add_argument(
        "--pool",
        choices=("mean", "max", "first"),
        default="mean",
        help="--hf-model: pool a word's pieces (token level) or a text's tokens (default mean)",
    )
    explain.add_argument(
        "--sae",
        type=Path,
        metavar="DIR",
        help="--hf-model: a sparse autoencoder in SAELens format; its latents are the units",
    )
    explain.add_argument("--level", choices=("auto", "pair", "sentence", "token"), default="auto",
                         help="positions: pairs or sentences (auto, from the fields) or tokens")  # fmt: skip
    explain.add_argument("--limit", type=positive, help="read at most this many records")
    features = explain.add_argument_group("concepts")
    features.add_argument("--tokenizer", default="spacy", help="spacy (default; tags), simple (no tags), spacy:MODEL")
    features.add_argument("--vocab-size", type=positive, default=2000, help="most common words (default 2000)")
    features.add_argument("--lemmatize", action="store_true", help="lemmas instead of words (spaCy)")
    features.add_argument("--no-tags", action="store_true", help="no part-of-speech concepts")
    features.add_argument("--embeddings", default="none",
                          help="for NEIGHBORS: none (default), minilm, or glove:PATH")  # fmt: skip
    features.add_argument("--neighbors", type=positive, default=5, help="k nearest words (default 5)")
    features.add_argument("--neighbor-space", choices=("embeddings", "vocabulary"), default="embeddings")
    units = explain.add_argument_group("units")
    units.add_argument("--threshold", type=finite, default=0.0, help="active where > this (default 0)")
    units.add_argument("--quantile", type=open_fraction, help="instead: per-unit top fraction q")
    units.add_argument("--min-active", type=_min_active, default=0.05,
                       help="skip units active less: a count, or a fraction (default 0.05: 500 of 10,000)")  # fmt: skip
    output = explain.add_argument_group("output")
    output.add_argument("--out", "-o", type=Path, metavar="DIR",
                        help="run directory: results.csv (one row per unit), top_formulas.csv, the activations, "
                        "concepts and texts, and an HTML report (DIR/report/index.html)")  # fmt: skip
    output.add_argument("--no-report", action="store_true", help="write the run directory without the report")
    output.add_argument("--top-examples", type=count, default=6, metavar="N",
                        help="top-activating examples per unit card (default 6)")  # fmt: skip
    output.add_argument("--show", type=count, default=20, help="best units to print (default 20)")
    add_analyze_after_options(explain)
    add_validation_options(explain, "examples (pairs by premise, sentences)", holdout=0.2, null=0)
    explain.add_argument("--seed", type=int, default=0, help="seed of the held-out split and the null (default 0)")
    add_search_options(explain)
    add_region_options(explain)
    explain.set_defaults(handler=_cmd_explain)
    return text


def _cmd_train_nli(args: argparse.Namespace) -> int:
    from logiclens.text.checkpoint import save_nli_model
    from logiclens.text.data import read_pairs
    from logiclens.text.lstm import train_nli

    pairs = read_pairs(args.data, limit=args.limit, labelled_only=True)
    tokenizer = {"annotator": args.tokenizer, "lowercase": True}
    print(f"training on {len(pairs):,} labelled pairs from {args.data}", file=sys.stderr)
    model, index, history = train_nli(
        pairs, tokenizer=tokenizer, max_vocab=args.max_vocab, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, valid_fraction=args.valid_fraction, seed=args.seed, verbose=True,
        embedding_dim=args.embedding_dim, hidden=args.hidden, bidirectional=args.bidirectional,
        mlp_hidden=args.mlp_hidden,
    )  # fmt: skip
    save_nli_model(args.out, model, index, tokenizer)
    print(
        f"kept epoch {history.best_epoch} (validation accuracy {history.best_valid_accuracy:.3f}); "
        f"wrote {args.out} ({len(index):,} token ids)",
        file=sys.stderr,
    )
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    import numpy as np

    from logiclens.cli.options import CommandError
    from logiclens.runs.summary import summarize
    from logiclens.text.pipeline import TextConceptSettings, TextSettings, explain_text

    if args.analyze and args.out is None:
        raise CommandError("--analyze needs --out: the analysis is written into the run directory")

    concepts = TextConceptSettings(
        tokenizer=args.tokenizer, vocab_size=args.vocab_size, lemmatize=args.lemmatize, tags=not args.no_tags,
        embeddings=args.embeddings, n_neighbors=args.neighbors, neighbor_space=args.neighbor_space,
    )  # fmt: skip
    settings = TextSettings(
        level=args.level, concepts=concepts, threshold=args.threshold, quantile=args.quantile,
        min_active=args.min_active, explainer=explainer_from_args(args, seed=args.seed), limit=args.limit,
        units=args.units, regions=region_settings_from_args(args, seed=args.seed),
        pool=args.pool, sae=None if args.sae is None else str(args.sae),
    )  # fmt: skip
    result = explain_text(
        args.data, model=args.model, hf_model=args.hf_model, activations=args.activations, layer=args.layer,
        settings=settings, out=args.out,
    )  # fmt: skip
    wrapper = result.explainer
    frame = wrapper.explanations_
    print(
        f"{result.concepts}; {len(frame)} units, {len(wrapper.skipped_)} skipped (active on fewer than "
        f"{wrapper.min_active_:,} positions)",
        file=sys.stderr,
    )
    searched = frame[frame.status == "ok"].assign(layer=result.layer)
    if len(searched):
        print(summarize(searched).to_string(float_format=lambda x: f"{x:.4f}"), file=sys.stderr)
    if result.correct is not None:
        labelled = np.isfinite(result.correct)
        r, p, n = result.accuracy_correlation()
        print(
            f"model accuracy {np.nanmean(result.correct):.3f} on {labelled.sum():,} labelled pairs; IoU vs accuracy "
            f"when active over {n} units: Pearson r = {r:.3f} (p = {p:.2g})",
            file=sys.stderr,
        )
    if "dead" in frame:
        print(f"{int(frame.dead.sum())} of {len(frame)} SAE latents never active on the probe (dead)", file=sys.stderr)
    shown = frame[frame.status != "skipped"].sort_values("iou", ascending=False).head(args.show)
    print_table(shown, ["unit", "formula", "iou", "heldout_iou", "significant", "length", "n_active",
                        "accuracy_when_active"])  # fmt: skip
    if result.comparison is not None:
        print(f"size-matched comparison of {result.layer}'s unit families:")
        with wide_tables():
            print(result.comparison.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    status = 0
    if args.out is not None:
        print(f"wrote {args.out / 'results.csv'}", file=sys.stderr)
        status = analyze_after(args, args.out)
        if not args.no_report:
            from logiclens.report.build import build_report

            report = build_report(args.out, top_examples=args.top_examples, verbose=0 if args.quiet else 1)
            print(f"report: {report / 'index.html'}", file=sys.stderr)
    return status
