"""Run the whole polytope-lens study and write its tables, figures and summary.

Three models, all offline:

* ``mlp``: ReLU MLP 64-128-128-64-10 on scikit-learn's digits (plus its random initialisation
  and a bias-free twin as controls);
* ``cnn``: a small ReLU CNN on the same digits (plus its random initialisation);
* ``efficientnet``: EfficientNet-Lite0's head on the built-in shapes probe.

For each: the unit-family comparison (claim 1), boundary density along paths (claim 2), the
scaling experiment and local complexity. ``quick=True`` shrinks every sample (a smoke run).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logiclens.core.concepts import ConceptSet
from logiclens.explain.compositional import CompositionalExplainer
from logiclens.polytope.codes import PolytopeCodes, hard_code
from logiclens.polytope.facets import RegionFacets
from logiclens.polytope.monosemanticity import MonosemanticityScorer
from logiclens.polytope.network import PiecewiseLinearNetwork
from logiclens.polytope.paths import pick_pairs
from logiclens.polytope.regions import CodeClusters
from logiclens.polytope.scaling import ScalingExperiment
from logiclens.polytope.units import UnitFamily
from polytope_lens import experiments as ex
from polytope_lens.digits import DigitsData

__all__ = ["StudySettings", "run_study"]


@dataclass
class StudySettings:
    """Sizes and seeds of the study (``quick`` shrinks them for a smoke run)."""

    quick: bool = False
    skip_efficientnet: bool = False
    models: tuple[str, ...] = ("mlp", "cnn", "efficientnet")
    seed: int = 0
    mlp_epochs: int = 100
    cnn_epochs: int = 40
    n_pairs: int = 150
    n_same_pairs: int = 50
    n_scaling: int = 200
    n_complexity: int = 300
    head_images: int = 400
    head_positions: int = 4
    head_pairs: int = 30
    head_scaling: int = 30
    head_complexity: int = 40
    max_length: int = 3
    beam_size: int = 5
    min_unit_size: int = 5
    cache_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.models) - {"mlp", "cnn", "efficientnet"}
        if unknown:
            raise ValueError(f"unknown study models {sorted(unknown)}; choose from mlp, cnn, efficientnet")
        if self.skip_efficientnet:
            self.models = tuple(m for m in self.models if m != "efficientnet")
        if self.quick:
            self.n_pairs, self.n_same_pairs, self.n_scaling, self.n_complexity = 30, 10, 40, 60
            self.head_images, self.head_pairs, self.head_scaling, self.head_complexity = 60, 6, 6, 12


class _Clock:
    """Wall-clock and CPU time per stage."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.rows: list[dict[str, Any]] = []
        self.log = log

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        self.log(f"[polytope study] {name} ...")
        yield
        row = {"stage": name, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
        self.rows.append(row)
        self.log(f"[polytope study] {name}: {row['wall_s']:.1f} s wall, {row['cpu_s']:.1f} s CPU")


def _explainer(settings: StudySettings) -> CompositionalExplainer:
    return CompositionalExplainer(max_length=settings.max_length, beam_size=settings.beam_size, verbose=0)


def _score_families(
    families: list[UnitFamily], concepts: ConceptSet, labels: np.ndarray, settings: StudySettings, model: str
) -> tuple[MonosemanticityScorer, pd.DataFrame, dict[str, Any]]:
    scorer = MonosemanticityScorer(_explainer(settings), min_size=settings.min_unit_size, random_state=0)
    scorer.fit(families, concepts, labels)
    table, verdict = ex.claim_regions(scorer.scores_)
    table.insert(0, "model", model)
    return scorer, table, verdict


def _facets(
    codes: PolytopeCodes, concepts: ConceptSet, settings: StudySettings, model: str, min_cluster_size: int = 10
) -> pd.DataFrame:
    clusters = CodeClusters("hdbscan", "hamming", min_cluster_size).fit(codes).family()
    rows = []
    for consensus in (1.0, 0.95):
        facets = RegionFacets(consensus, _explainer(settings)).fit(
            clusters, codes.unpack(), concepts, codes.bit_names()
        )
        frame = facets.results_.copy()
        frame.insert(0, "consensus", consensus)
        frame.insert(0, "model", model)
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def _digits_model(
    kind: str, data: DigitsData, concepts: ConceptSet, settings: StudySettings, clock: _Clock, results: dict[str, Any]
) -> dict[str, Any]:
    """Everything for one digits model (``mlp`` or ``cnn``)."""
    from logiclens.polytope.torch_adapter import from_torch
    from polytope_lens.models import accuracy, input_shape, train_model

    out: dict[str, Any] = {}
    x_all = data.flat
    train, test = data.train, data.test
    with clock.stage(f"{kind}: train"):
        epochs = settings.mlp_epochs if kind == "mlp" else settings.cnn_epochs
        model, info = train_model(
            kind, x_all[train], data.labels[train], epochs, seed=settings.seed, cache_dir=settings.cache_dir
        )
        random_model, _ = train_model(kind, x_all[train], data.labels[train], 0, seed=settings.seed + 1)
        shape = input_shape(kind)
        net = from_torch(model, shape)
        random_net = from_torch(random_model, shape)
        out["accuracy"] = {
            "train": accuracy(model, x_all[train], data.labels[train], kind),
            "test": accuracy(model, x_all[test], data.labels[test], kind),
        }
        out["training"] = {"seconds": info["train_seconds"], "cached": info["cached"], **info["config"]}
        bias_free = None
        if kind == "mlp":
            free_model, _free_info = train_model(
                kind,
                x_all[train],
                data.labels[train],
                settings.mlp_epochs,
                bias=False,
                seed=settings.seed,
                cache_dir=settings.cache_dir,
            )
            bias_free = from_torch(free_model, shape)
            out["accuracy"]["bias_free_test"] = accuracy(free_model, x_all[test], data.labels[test], kind)
    # --------------------------------------------------------------- claim 1: units
    with clock.stage(f"{kind}: codes and unit families"):
        pre = net.preactivations(x_all)
        coded = net.coded_layers
        last = coded[-1]
        layer_name = net.layers[last].name
        codes_all = net.codes(x_all)
        out["polytopes"] = _polytope_facts(net, codes_all, data.labels)
        codes_last = codes_all.layer(layer_name)
        activations = net.layers[last].activation(pre[last])
        families, facts = ex.unit_families(
            codes_last, activations, pre[last], max_neurons=256 if kind == "cnn" else None, random_state=settings.seed
        )
        extra = CodeClusters("hdbscan", "hamming", 10).fit(codes_all).family("polytope hdbscan/hamming [all layers]")
        families.append(extra)
        # control: the same clustering of the randomly initialised network's codes
        random_codes = random_net.codes(x_all).layer(layer_name)
        control = CodeClusters("kmedoids", "hamming", 1, n_clusters=30).fit(random_codes)
        families.append(control.family("random-init polytope kmedoids/hamming k=30"))
        families[-1].kind = "control"
        if kind == "cnn":
            channels = net.layers[last].shape[0]
            centre = pre[last].reshape(len(x_all), channels, 8, 8)[:, :, 4, 4]
            centre_codes = PolytopeCodes.from_bits([hard_code(centre)], [f"{layer_name}@(4,4)"])
            families.append(
                CodeClusters("hdbscan", "hamming", 10)
                .fit(centre_codes)
                .family("polytope hdbscan/hamming [position (4,4)]")
            )
        out["unit_layer"] = layer_name
        out["unit_layer_facts"] = facts
    with clock.stage(f"{kind}: monosemanticity search"):
        scorer, claim_table, verdict = _score_families(families, concepts, data.labels, settings, kind)
        out["claim_regions"] = verdict
        results.setdefault("tables", {})[f"scores_{kind}"] = scorer.scores_.assign(model=kind)
        results["tables"][f"families_{kind}"] = scorer.summary_.assign(model=kind)
        results["tables"][f"by_size_{kind}"] = scorer.by_size_.assign(model=kind)
        results["tables"][f"null_{kind}"] = scorer.null_.assign(model=kind)
        results["tables"][f"claim_regions_{kind}"] = claim_table
    with clock.stage(f"{kind}: facets versus regions"):
        results["tables"][f"facets_{kind}"] = _facets(codes_last, concepts, settings, kind)
    # --------------------------------------------------------------- claim 2: density
    with clock.stage(f"{kind}: boundary density"):
        predicted = net.predict(x_all)
        correct = test[predicted[test] == data.labels[test]]
        pairs = pick_pairs(data.labels, settings.n_pairs, seed=settings.seed, candidates=correct)
        same = pick_pairs(data.labels, settings.n_same_pairs, same=True, seed=settings.seed, candidates=correct)
        center = x_all[train].mean(axis=0)
        runs = [
            {"name": "input lerp", "path": "lerp"},
            {"name": "input slerp", "path": "slerp", "center": center, "n_chords": 16},
            {"name": f"hidden lerp after {net.layers[coded[0]].name}", "path": "lerp", "space": coded[0]},
            {"name": "random-init input lerp", "path": "lerp", "network": random_net},
        ]
        table, fitted = ex.density_runs(net, x_all, pairs, runs, kind)
        same_table, _same_fitted = ex.density_runs(net, x_all, same, [{"name": "same-class input lerp"}], kind)
        table = pd.concat([table, same_table], ignore_index=True)
        results["tables"][f"density_{kind}"] = table
        results.setdefault("aligned", {})[kind] = {name: d.aligned_ for name, d in fitted.items()}
        out["density"] = {row["setting"]: row for row in table.to_dict("records")}
        boundary = ex.boundary_points(net, x_all, fitted["input lerp"], pairs)
    # --------------------------------------------------------------- scaling
    with clock.stage(f"{kind}: scaling"):
        sample = test[: settings.n_scaling]
        rows_curves, rows_cross = [], []
        scalings = [(f"trained, scale {net.layers[coded[0]].name}", net, coded[0])]
        if len(coded) > 2:  # a second layer that still has coded layers after it
            scalings.append((f"trained, scale {net.layers[coded[1]].name}", net, coded[1]))
        if bias_free is not None:
            scalings.append((f"bias-free, scale {bias_free.layers[coded[0]].name}", bias_free, coded[0]))
        scaling_facts = {}
        for name, model_net, layer in scalings:
            experiment = ScalingExperiment(layer).fit(model_net, x_all[sample])
            rows_curves.append(experiment.curves_.assign(model=kind, run=name))
            rows_cross.append(experiment.crossings_.assign(model=kind, run=name))
            scaling_facts[name] = {
                "mean_ray_crossings": float(experiment.ray_crossings_.mean()),
                "class_change_anywhere": experiment.class_change_anywhere_,
                "class_change_at_0.25": _at(experiment.curves_, 0.25, "class_change"),
                "class_change_at_4": _at(experiment.curves_, 4.0, "class_change"),
            }
        results["tables"][f"scaling_{kind}"] = pd.concat(rows_curves, ignore_index=True)
        results["tables"][f"scaling_crossings_{kind}"] = pd.concat(rows_cross, ignore_index=True)
        out["scaling"] = scaling_facts
    # --------------------------------------------------------------- local complexity
    with clock.stage(f"{kind}: local complexity"):
        rng = np.random.default_rng(settings.seed)
        points = {
            "data": x_all[test[: settings.n_complexity]],
            "decision boundary": boundary[: settings.n_complexity],
            "uniform random": rng.random((settings.n_complexity, x_all.shape[1])),
        }
        margins = ex.logit_margins(net, points["data"])
        lc = ex.complexity_runs(net, points, (0.05, 0.2, 0.5), model_name=kind, margins=margins)
        lc_random = ex.complexity_runs(
            random_net,
            points,
            (0.05, 0.2, 0.5),
            model_name=f"{kind} random-init",
            margins=ex.logit_margins(random_net, points["data"]),
        )
        results["tables"][f"complexity_{kind}"] = pd.concat([lc, lc_random], ignore_index=True)
    return out


def _at(curves: pd.DataFrame, alpha: float, column: str) -> float:
    index = int(np.argmin(np.abs(curves["alpha"].to_numpy() - alpha)))
    return float(curves[column].iloc[index])


def _polytope_facts(net: PiecewiseLinearNetwork, codes: PolytopeCodes, labels: np.ndarray) -> list[dict[str, Any]]:
    """Exact polytopes per layer and across layers: how many, how shared, how label-pure."""
    from logiclens.polytope.regions import ExactPolytopes

    rows = []
    for name in [*codes.layer_names, "all layers"]:
        sub = codes if name == "all layers" else codes.layer(name)
        exact = ExactPolytopes(min_size=2).fit(sub)
        shared = exact.sizes_[exact.labels_] > 1
        purity = np.nan
        if shared.any():
            groups = pd.DataFrame({"polytope": exact.labels_[shared], "label": labels[shared]})
            purity = float(groups.groupby("polytope")["label"].agg(lambda s: s.value_counts().iloc[0] / len(s)).mean())
        rows.append(
            {
                "layer": name,
                "bits": sub.n_bits,
                "inputs": len(sub),
                "polytopes": exact.n_polytopes_,
                "sharing_rate": exact.sharing_rate_,
                "shared_polytope_purity": purity,
            }
        )
    return rows


def _efficientnet(settings: StudySettings, clock: _Clock, results: dict[str, Any]) -> dict[str, Any]:
    """The head of EfficientNet-Lite0 on the shapes probe."""
    from polytope_lens.shapes_head import load_shapes_head

    out: dict[str, Any] = {}
    with clock.stage("efficientnet: forward pass on the shapes probe"):
        data = load_shapes_head(settings.head_images, settings.head_positions, seed=settings.seed)
    head = data.head
    concepts = ConceptSet.from_dense(data.concept_masks, data.concept_names, data.concept_categories)
    scenes = [i for i, c in enumerate(data.concept_categories) if c == "scene"]
    scene_label = np.argmax(data.concept_masks[scenes], axis=0)
    with clock.stage("efficientnet: codes and unit families"):
        codes = PolytopeCodes.from_bits([hard_code(data.preactivations, (0.0, 6.0))], ["act2"])
        activations = np.clip(data.preactivations, 0.0, 6.0)
        families, facts = ex.unit_families(
            codes, activations, data.preactivations, max_neurons=256, random_state=settings.seed
        )
        out["unit_layer"] = "act2 (per position)"
        out["unit_layer_facts"] = facts
        out["polytopes"] = _polytope_facts_codes(codes, scene_label)
        out["n_concepts"] = len(data.concept_names)
    with clock.stage("efficientnet: monosemanticity search"):
        scorer, claim_table, verdict = _score_families(families, concepts, scene_label, settings, "efficientnet")
        out["claim_regions"] = verdict
        tables = results.setdefault("tables", {})
        tables["scores_efficientnet"] = scorer.scores_.assign(model="efficientnet")
        tables["families_efficientnet"] = scorer.summary_.assign(model="efficientnet")
        tables["by_size_efficientnet"] = scorer.by_size_.assign(model="efficientnet")
        tables["null_efficientnet"] = scorer.null_.assign(model="efficientnet")
        tables["claim_regions_efficientnet"] = claim_table
    with clock.stage("efficientnet: facets versus regions"):
        tables["facets_efficientnet"] = _facets(codes, concepts, settings, "efficientnet")
    with clock.stage("efficientnet: boundary density in the head"):
        x = data.features
        pairs = pick_pairs(data.predicted, settings.head_pairs, seed=settings.seed)
        same = pick_pairs(data.predicted, max(2, settings.head_pairs // 2), same=True, seed=settings.seed)
        runs = [
            {"name": "blocks lerp", "path": "lerp", "decision": 256},
            {"name": "blocks slerp", "path": "slerp", "n_chords": 8, "decision": 64, "center": x.mean(axis=0)},
        ]
        table, fitted = ex.density_runs(head, x, pairs, runs, "efficientnet")
        same_table, _ = ex.density_runs(
            head, x, same, [{"name": "same-class blocks lerp", "decision": 256}], "efficientnet"
        )
        table = pd.concat([table, same_table], ignore_index=True)
        tables["density_efficientnet"] = table
        results.setdefault("aligned", {})["efficientnet"] = {name: d.aligned_ for name, d in fitted.items()}
        out["density"] = {row["setting"]: row for row in table.to_dict("records")}
        boundary = ex.boundary_points(head, x, fitted["blocks lerp"], pairs)
    with clock.stage("efficientnet: scaling the head's input"):
        experiment = ScalingExperiment(None).fit(head, x[: settings.head_scaling], decision=256)
        tables["scaling_efficientnet"] = experiment.curves_.assign(model="efficientnet", run="scale blocks output")
        tables["scaling_crossings_efficientnet"] = experiment.crossings_.assign(
            model="efficientnet", run="scale blocks output"
        )
        out["scaling"] = {
            "scale blocks output": {
                "mean_ray_crossings": float(experiment.ray_crossings_.mean()),
                "class_change_anywhere": experiment.class_change_anywhere_,
                "class_change_at_0.25": _at(experiment.curves_, 0.25, "class_change"),
                "class_change_at_4": _at(experiment.curves_, 4.0, "class_change"),
            }
        }
    with clock.stage("efficientnet: local complexity"):
        sample = x[: settings.head_complexity]
        gaps = np.linalg.norm(sample[:, None, :] - sample[None, :, :], axis=-1)
        scale = float(np.median(gaps[np.triu_indices(len(sample), 1)]))
        points = {"data": sample, "decision boundary": boundary[: settings.head_complexity]}
        # 40 vertices, as Humayun et al. use for ResNet-18 on CIFAR-10; radii relative to the data's spread
        lc = ex.complexity_runs(
            head,
            points,
            tuple(f * scale for f in (0.01, 0.05)),
            n_directions=20,
            model_name="efficientnet",
            margins=ex.logit_margins(head, sample),
        )
        lc["radius_fraction_of_median_distance"] = lc["radius"] / scale
        tables["complexity_efficientnet"] = lc
    return out


def _polytope_facts_codes(codes: PolytopeCodes, labels: np.ndarray) -> list[dict[str, Any]]:
    from logiclens.polytope.regions import ExactPolytopes

    exact = ExactPolytopes(min_size=2).fit(codes)
    return [
        {
            "layer": codes.layer_names[0],
            "bits": codes.n_bits,
            "inputs": len(codes),
            "polytopes": exact.n_polytopes_,
            "sharing_rate": exact.sharing_rate_,
            "shared_polytope_purity": np.nan,
        }
    ]


def run_study(
    out: str | Path, settings: StudySettings | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the study and write ``out/`` (tables as CSV, figures as PNG, ``summary.md``, ``results.json``).

    Returns
    -------
    dict
        The headline numbers (also in ``results.json``).
    """
    from polytope_lens.digits import digit_concepts, load_digits_data
    from polytope_lens.report import write_report

    settings = settings or StudySettings()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    clock = _Clock(log)
    results: dict[str, Any] = {"settings": asdict(settings), "models": {}}
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    digits = [kind for kind in ("mlp", "cnn") if kind in settings.models]
    if digits:
        with clock.stage("digits: data and concepts"):
            data = load_digits_data(seed=settings.seed)
            masks, names, categories = digit_concepts(data.images, data.labels)
            concepts = ConceptSet.from_dense(masks, names, categories)
    for kind in digits:
        results["models"][kind] = _digits_model(kind, data, concepts, settings, clock, results)
    if "efficientnet" in settings.models:
        results["models"]["efficientnet"] = _efficientnet(settings, clock, results)
    results["timing"] = {
        "stages": clock.rows,
        "total_wall_s": time.perf_counter() - start_wall,
        "total_cpu_s": time.process_time() - start_cpu,
    }
    with clock.stage("report"):
        write_report(folder, results)
    results["timing"]["total_wall_s"] = time.perf_counter() - start_wall
    results["timing"]["total_cpu_s"] = time.process_time() - start_cpu
    headline = {k: v for k, v in results.items() if k not in ("tables", "aligned")}
    (folder / "results.json").write_text(json.dumps(headline, indent=1, default=_jsonable) + "\n")
    return headline


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
