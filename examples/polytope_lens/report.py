"""Write the study's tables (CSV), figures (PNG) and ``summary.md`` with the verdicts on the two claims."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["markdown_table", "write_report"]

GROUP_COLORS = {
    "polytope regions": "tab:red",
    "exact polytopes": "tab:pink",
    "activation clusters": "tab:orange",
    "directions": "tab:blue",
    "control": "tab:gray",
}


def markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """A GitHub markdown table of some columns (floats rounded)."""
    columns = list(columns) if columns is not None else list(frame.columns)

    def cell(value: Any) -> str:
        if isinstance(value, float | np.floating):
            return "-" if not np.isfinite(value) else f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in frame[columns].itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _group(family: str, kind: str) -> str:
    from polytope_lens.experiments import _group as group

    return group(family, kind)


def _plot_monosemanticity(folder: Path, tables: dict[str, pd.DataFrame], models: list[str]) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        scores = tables[f"scores_{model}"]
        iou = [c for c in scores.columns if c.startswith("iou_")][-1]
        groups = [_group(f, k) for f, k in zip(scores["family"], scores["kind"])]
        for group, color in GROUP_COLORS.items():
            part = scores[np.asarray(groups) == group]
            if len(part):
                ax.scatter(part["size"], part[iou], s=9, alpha=0.6, color=color, label=f"{group} ({len(part)})")
        null = tables[f"null_{model}"]
        ax.plot(null["size"], null[iou], color="k", lw=1.2, label="random subsets (chance)")
        ax.set_xscale("log")
        ax.set_xlabel("unit size (probing inputs)")
        ax.set_ylabel(f"best-formula IoU (length <= {iou.split('_')[1]})")
        ax.set_title(model)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(folder / "monosemanticity.png", dpi=110)
    plt.close(fig)


def _plot_density(folder: Path, aligned: dict[str, dict[str, pd.DataFrame]]) -> None:
    plt = _plt()
    models = list(aligned)
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        for name, frame in aligned[model].items():
            ok = frame["paths"] >= 3
            ax.plot(frame["offset"][ok], frame["relative_density"][ok], label=name, lw=1.2)
        ax.axhline(1.0, color="k", lw=0.6, ls=":")
        ax.axvline(0.0, color="k", lw=0.6, ls=":")
        ax.set_xlabel("t - t*  (fraction of the path; t* = first change of the predicted class)")
        ax.set_ylabel("boundary density / path mean")
        ax.set_title(model)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "density_aligned.png", dpi=110)
    plt.close(fig)


def _plot_scaling(folder: Path, tables: dict[str, pd.DataFrame], models: list[str]) -> None:
    plt = _plt()
    fig, axes = plt.subplots(2, len(models), figsize=(5.2 * len(models), 6.4), squeeze=False)
    for j, model in enumerate(models):
        curves, crossings = tables[f"scaling_{model}"], tables[f"scaling_crossings_{model}"]
        for run, part in curves.groupby("run", sort=False):
            axes[0, j].plot(part["alpha"], part["class_change"], marker=".", label=run)
        for run, part in crossings.groupby("run", sort=False):
            centre = np.sqrt(part["alpha_lo"] * part["alpha_hi"])
            axes[1, j].plot(centre, part["crossings_per_unit_alpha"], marker=".", label=run)
        for ax in axes[:, j]:
            ax.set_xscale("log")
            ax.axvline(1.0, color="k", lw=0.6, ls=":")
            ax.legend(fontsize=7)
        axes[0, j].set_title(model)
        axes[0, j].set_ylabel("fraction whose class changes")
        axes[1, j].set_ylabel("exact crossings per unit alpha")
        axes[1, j].set_yscale("symlog", linthresh=0.1)
        axes[1, j].set_ylim(bottom=0)
        axes[1, j].set_xlabel("alpha (scale of the layer's activations)")
    fig.tight_layout()
    fig.savefig(folder / "scaling.png", dpi=110)
    plt.close(fig)


def _plot_complexity(folder: Path, tables: dict[str, pd.DataFrame], models: list[str]) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        frame = tables[f"complexity_{model}"]
        for (name, points), part in frame.groupby(["model", "points"], sort=False):
            style = "--" if "random-init" in name else "-"
            ax.plot(part["radius"], part["mean_lc"], style, marker=".", label=f"{name}: {points}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("radius r")
        ax.set_ylabel("mean local complexity (hyperplanes)")
        ax.set_title(model)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(folder / "local_complexity.png", dpi=110)
    plt.close(fig)


def _claim2_verdict(row: dict[str, Any]) -> str:
    ratio, p = row.get("mean_window_ratio", np.nan), row.get("shuffled_p", np.nan)
    if not np.isfinite(ratio):
        return "no decision changes"
    if ratio > 1 and p < 0.05:
        return "held"
    if ratio > 1:
        return "not significant"
    return "did not hold"


def _claim1_verdict(verdict: dict[str, Any], other: str) -> str:
    compared = verdict.get(f"bins compared with {other}", 0)
    wins = verdict.get(f"bins where polytopes beat {other}", 0)
    significant = verdict.get(f"bins significant vs {other} (p<0.05)", 0)
    if not compared:
        return "no shared size bins"
    if wins == compared and 2 * significant > compared:
        return f"held ({wins}/{compared} bins, {significant} significant)"
    if wins > compared / 2:
        return f"partly ({wins}/{compared} bins, {significant} significant)"
    return f"did not hold ({wins}/{compared} bins, {significant} significant)"


def write_report(folder: Path, results: dict[str, Any]) -> None:
    """Write CSV tables, figures and ``summary.md`` into ``folder``."""
    tables: dict[str, pd.DataFrame] = results.get("tables", {})
    models = list(results["models"])
    for name, frame in tables.items():
        # per-unit score tables are long: gzip them (pandas reads them back with read_csv)
        target = folder / (f"{name}.csv.gz" if name.startswith("scores_") else f"{name}.csv")
        frame.drop(columns=[c for c in frame.columns if c.startswith("_")]).to_csv(target, index=False)
    _plot_monosemanticity(folder, tables, models)
    _plot_density(folder, results.get("aligned", {}))
    _plot_scaling(folder, tables, models)
    _plot_complexity(folder, tables, models)
    from logiclens.polytope.demo import run_demo

    results["demo"] = run_demo(folder / "partition_2d.png")
    (folder / "summary.md").write_text(_summary(results, tables, models))


def _summary(results: dict[str, Any], tables: dict[str, pd.DataFrame], models: list[str]) -> str:
    lines = ["# Polytope-lens study: results", ""]
    timing = results["timing"]
    lines += [
        f"Generated by `examples/polytope_study.py` (quick={results['settings']['quick']}); "
        f"{timing['total_wall_s']:.0f} s wall, {timing['total_cpu_s']:.0f} s CPU (main process).",
        "",
        "## Verdicts",
        "",
        "| model | claim 1: polytope regions beat directions (size-matched) | claim 1': ... beat activation clusters "
        "| claim 2: density peaks at the decision change (input / first path kind) |",
        "|---|---|---|---|",
    ]
    for model in models:
        facts = results["models"][model]
        density = facts["density"]
        first = next(iter(density.values()))
        lines.append(
            f"| {model} | {_claim1_verdict(facts['claim_regions'], 'directions')} | "
            f"{_claim1_verdict(facts['claim_regions'], 'activation clusters')} | "
            f"{_claim2_verdict(first)} (ratio {first['mean_window_ratio']:.2f}, "
            f"null {first['shuffled_mean_window_ratio']:.2f}, p {first['shuffled_p']:.3f}) |"
        )
    lines.append("")
    for model in models:
        facts = results["models"][model]
        lines += [f"## {model}", ""]
        if "accuracy" in facts:
            lines += [f"Accuracy: {json_line(facts['accuracy'])}.", ""]
        lines += ["### Exact polytopes", "", markdown_table(pd.DataFrame(facts["polytopes"])), ""]
        lines += [f"### Unit families (layer {facts['unit_layer']})", ""]
        summary = tables[f"families_{model}"]
        columns = [
            "family",
            "kind",
            "units",
            "scored_units",
            "median_size",
            "coverage",
            "noise_fraction",
            "median_iou_1",
            "median_iou_3",
            "median_excess",
            "above_chance",
            "median_purity",
        ]
        lines += [markdown_table(summary, [c for c in columns if c in summary.columns]), ""]
        scores = tables[f"scores_{model}"]
        regions = scores[scores["family"].str.startswith("polytope") & (scores["size"] >= 20)]
        regions = regions.sort_values("excess", ascending=False).head(8)
        lines += ["Best-explained polytope regions (code clusters of at least 20 inputs, by excess over chance):", ""]
        lines += [markdown_table(regions, ["unit", "size", "formula", "iou_1", "iou_3", "null_iou", "purity"]), ""]
        lines += ["Size-matched (median best-formula IoU, length <= 3, per size bin):", ""]
        lines += [markdown_table(tables[f"claim_regions_{model}"].drop(columns="model")), ""]
        facets = tables[f"facets_{model}"]
        if len(facets):
            agg = facets.groupby("consensus").agg(
                regions=("region", "size"),
                median_consensus_bits=("n_consensus", "median"),
                median_region_iou=("region_iou", "median"),
                median_facet_and_iou=("facet_and_iou", "median"),
                median_polytope_iou=("polytope_iou", "median"),
                median_facet_and_top_iou=("facet_and_top_iou", "median"),
                median_polytope_top_iou=("polytope_top_iou", "median"),
                median_best_facet_iou=("best_facet_iou", "median"),
                region_beats_facets=("region_beats_facets", "mean"),
            )
            lines += ["Region versus the AND of its consensus facets' explanations:", ""]
            lines += [markdown_table(agg.reset_index()), ""]
            examples = facets[facets["consensus"] == 1.0].sort_values("region_iou", ascending=False).head(3)
            lines += ["Examples (consensus 1.0, best-explained regions):", ""]
            lines += [
                markdown_table(
                    examples, ["region", "size", "region_formula", "region_iou", "top_facets", "facet_and_top_iou"]
                ),
                "",
            ]
        lines += ["### Boundary density", ""]
        density = tables[f"density_{model}"]
        cols = [
            "setting",
            "paths",
            "with_decision",
            "mean_crossings",
            "mean_density",
            "mean_window_ratio",
            "fraction_window_above_1",
            "pooled_window_ratio",
            "mean_midpoint_ratio",
            "shuffled_mean_window_ratio",
            "shuffled_p",
            "spearman_peak_decision",
        ]
        lines += [markdown_table(density, cols), ""]
        lines += ["### Scaling", "", markdown_table(pd.DataFrame(facts["scaling"]).T.reset_index()), ""]
        lc = tables[f"complexity_{model}"]
        cols = [c for c in ["model", "points", "radius", "n", "mean_lc", "spearman_lc_margin"] if c in lc.columns]
        lines += ["### Local complexity", "", markdown_table(lc, cols), ""]
    if "demo" in results:
        lines += ["## 2-D demonstration", "", json_line(results["demo"]), ""]
    lines += ["## Timing", "", markdown_table(pd.DataFrame(timing["stages"]), digits=1), ""]
    return "\n".join(lines)


def json_line(value: dict[str, Any]) -> str:
    """``key: value`` pairs on one line (floats rounded)."""
    parts = []
    for key, item in value.items():
        text = f"{item:.4g}" if isinstance(item, float) else str(item)
        parts.append(f"{key} {text}")
    return ", ".join(parts)
