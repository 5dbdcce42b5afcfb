"""scikit-learn-style estimators that explain units with formulas over concepts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike

from logiclens.core.concepts import ConceptSet
from logiclens.core.formula import Formula
from logiclens.core.masks import UnitMasks
from logiclens.core.parallel import check_backend
from logiclens.core.search.beam import BeamSettings, PrimitiveTable, UnitResult, iou_of
from logiclens.core.search.metrics import METRICS
from logiclens.core.search.run import certified_all, certify_all, search_all
from logiclens.explain.base import BaseEstimator, check_is_fitted
from logiclens.explain.validation import (
    VALIDATION_COLUMNS,
    Variants,
    add_heldout_columns,
    add_null_columns,
    check_validation_params,
    variants_from_positions,
)

__all__ = ["RESULT_COLUMNS", "AtomicExplainer", "CompositionalExplainer", "as_unit_masks"]

RESULT_COLUMNS = [
    "unit", "formula", "iou", "length", "score", "precision", "recall", "f1", "n_active",
    "formula_size", "intersection", "n_negations", "reference_length", "best_atomic",
    "best_atomic_iou", "category", "formula_categories", "status",
    "upper_bound", "beam_gap", "ceiling", "certificate", "beam_formula", "beam_iou",
]  # fmt: skip
SEARCHES = ("beam", "optimal")


class CompositionalExplainer(BaseEstimator):
    """Explain each unit by the logical formula over concepts whose mask best matches it.

    The beam search of Mu & Andreas (2020), exact and computed on signature counts (rules
    and tie-breaking in ``docs/search.md``). ``max_length=1`` is NetDissect.

    Parameters
    ----------
    max_length : int, default 3
        Maximum number of concept leaves in a formula (the paper's N).
    beam_size : int, default 10
        Formulas kept at each step (the paper's B; the reference vision code uses 5).
    operators : sequence of {"or", "and", "and_not", "or_not"}, default ("or", "and", "and_not")
        How a beam formula F is extended with a primitive C: ``F OR C``, ``F AND C``,
        ``F AND NOT C``, ``F OR NOT C``.
    beam_mode : {"reference", "paper"}, default "reference"
        ``"reference"``: the previous beam competes with the new formulas at each step, as
        in the authors' code, so the answer may be shorter than ``max_length``.
        ``"paper"``: only the new formulas are kept at each step, as the paper's text
        says. Either way the answer is the best formula that entered a beam.
    metric : {"iou", "precision", "recall", "f1"}, default "iou"
        What the search maximises. Every metric is reported whatever is searched.
    complexity_penalty : float in [0, 1), default 0.0
        A formula of length L scores ``metric * (1 - complexity_penalty) ** (L - 1)``.
        The reference code's ``FORMULA_COMPLEXITY_PENALTY = p`` corresponds to ``1 - p``
        (there, NOT also counts towards L).
    min_support : int, default 1
        Concepts covering fewer positions are left out of the search.
    max_expansion_concepts : int or None, default None
        Extend beam formulas only with the best this-many primitives of the unit (the
        reference's ``BEAM_SEARCH_LIMIT``); None uses every primitive.
    top_k : int, default 1
        Distinct formulas reported per unit in ``top_formulas_``.
    use_neighbors : bool, default True
        Add ``NEIGHBORS(c)`` primitives when the concept set carries a neighbour relation.
    holdout : float, default 0.2
        With ``examples`` given to :meth:`fit`: the fraction of examples (images,
        sentences; never single pixels or tokens) held out. The search runs on the rest and
        every formula is also scored on the held-out examples; 0 disables the split.
    n_null : int, default 0
        With ``examples`` given to :meth:`fit`: permutations of a null in which each unit's
        per-example masks are reassigned to other examples (of equal size) of the search
        part. Each unit gets a p-value for its best score, and ``significant`` flags units
        whose Benjamini-Hochberg-adjusted p-value is at most ``alpha``.
    alpha : float, default 0.05
        False-discovery rate for ``significant``.
    random_state : int, default 0
        Seed of the split and the permutations.
    n_jobs : int, default 1
        Processes over which units are spread (-1: all cores).
    verbose : int, default 1
        0 is silent; 1 shows a progress bar on a terminal.
    search : {"beam", "optimal"}, default "beam"
        ``"beam"``: the beam search, with a cheap certificate of how far its answer may be from
        the best formula of the space. ``"optimal"``: the certified branch and bound of
        ``docs/search.md`` (seeded with the beam; ``metric="iou"`` without complexity penalty
        only), which returns the best formula of the beam's space, or under a budget the best
        found with a proven bound.
    budget_seconds : float or None, default None
        With ``search="optimal"``: wall seconds per unit for the branch and bound (the seeding
        beam not counted); None is unlimited. Results then depend on the machine.
    max_nodes : int or None, default None
        With ``search="optimal"``: expanded formulas per unit (a reproducible budget).
    backend : {"local", "ray"}, default "local"
        Where batches of units are searched: ``n_jobs`` local processes, or the tasks of a
        Ray cluster (:mod:`logiclens.core.parallel`); the results are the same.
    ray_address : str or None, default None
        With ``backend="ray"``: the cluster's ``host:port`` (default ``RAY_ADDRESS``, else a
        Ray instance started on this machine).

    Attributes
    ----------
    explanations_ : pandas.DataFrame
        One row per unit: ``unit, formula, iou, length, score, precision, recall, f1,
        n_active, formula_size, intersection, n_negations, reference_length, best_atomic,
        best_atomic_iou, category, formula_categories, status, upper_bound, beam_gap,
        ceiling, certificate, beam_formula, beam_iou``. ``status`` is ``"ok"``, ``"empty"``
        (never active) or ``"no_match"`` (no concept overlaps) for either search. The
        certificate columns: ``upper_bound``, no formula of the search space has a higher
        IoU (for a beam run the cheap bound of ``docs/search.md``, NaN unless the IoU is
        searched without penalty); ``beam_gap = upper_bound - iou``; ``ceiling``, the best IoU
        of any union of concept signatures (of any formula of any length); ``certificate``,
        ``"optimal"`` when the answer is proven best (``upper_bound == iou``), ``"budget"``
        when an optimal search ran out of budget, ``"unproven"`` for a beam answer the cheap
        bound does not prove, empty for units without formula; ``beam_formula`` and
        ``beam_iou``, the beam's answer (equal to ``formula``, ``iou`` for a beam run).
    top_formulas_ : pandas.DataFrame
        Up to ``top_k`` rows per unit: ``unit, rank, formula, score, iou, length``.
    best_by_length_ : pandas.DataFrame
        Per unit (rows) and exact formula length (columns 1..max_length), the best metric
        value among the formulas the search scored.
    formulas_by_length_ : pandas.DataFrame
        The same shape: the formula of that value, as text (None where none was scored).
    formulas_ : list of Formula or None
        The best formula of each unit, as objects.
    n_units_ : int
    split_ : (search examples, held-out examples)
        After a validated fit (``examples`` given, or :meth:`fit_variants`).
    null_values_ : ndarray (U, n_null)
        Each unit's best score under each permutation of the null, when there was one;
        ``null_by_length_`` (U, n_null, max_length) per exact formula length.

    Examples
    --------
    >>> import numpy as np
    >>> from logiclens import CompositionalExplainer, ConceptSet
    >>> concepts = ConceptSet.from_dense(
    ...     np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]], bool), ["a", "b", "c"])
    >>> unit = np.array([[1, 1, 1, 0]], bool)
    >>> CompositionalExplainer(max_length=2, verbose=0).fit(unit, concepts).explanations_.formula[0]
    'a OR b'
    """

    def __init__(
        self,
        max_length: int = 3,
        beam_size: int = 10,
        operators: Sequence[str] = ("or", "and", "and_not"),
        beam_mode: str = "reference",
        metric: str = "iou",
        complexity_penalty: float = 0.0,
        min_support: int = 1,
        max_expansion_concepts: int | None = None,
        top_k: int = 1,
        use_neighbors: bool = True,
        holdout: float = 0.2,
        n_null: int = 0,
        alpha: float = 0.05,
        random_state: int = 0,
        n_jobs: int = 1,
        verbose: int = 1,
        search: str = "beam",
        budget_seconds: float | None = None,
        max_nodes: int | None = None,
        backend: str = "local",
        ray_address: str | None = None,
    ) -> None:
        self.max_length = max_length
        self.beam_size = beam_size
        self.operators = operators
        self.beam_mode = beam_mode
        self.metric = metric
        self.complexity_penalty = complexity_penalty
        self.min_support = min_support
        self.max_expansion_concepts = max_expansion_concepts
        self.top_k = top_k
        self.use_neighbors = use_neighbors
        self.holdout = holdout
        self.n_null = n_null
        self.alpha = alpha
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.search = search
        self.budget_seconds = budget_seconds
        self.max_nodes = max_nodes
        self.backend = backend
        self.ray_address = ray_address

    def _check_search_params(self, settings: BeamSettings) -> None:
        """Validate ``search``, ``budget_seconds`` and ``max_nodes`` (at fit time, as scikit-learn does)."""
        if self.search not in SEARCHES:
            raise ValueError(f"search must be one of {SEARCHES}, got {self.search!r}")
        budget = self.budget_seconds
        if budget is not None and not (isinstance(budget, (int, float)) and np.isfinite(budget) and budget >= 0):
            raise ValueError(f"budget_seconds must be None or a finite number >= 0, got {budget!r}")
        nodes = self.max_nodes
        if nodes is not None and not (isinstance(nodes, (int, np.integer)) and not isinstance(nodes, bool)):
            raise ValueError(f"max_nodes must be None or an integer >= 0, got {nodes!r}")
        if nodes is not None and nodes < 0:
            raise ValueError(f"max_nodes must be None or an integer >= 0, got {nodes!r}")
        if self.search == "optimal" and (settings.metric != "iou" or settings.complexity_penalty != 0.0):
            raise ValueError("search='optimal' needs metric='iou' and complexity_penalty=0")

    def check_params(self) -> BeamSettings:
        """Validate every parameter (as :meth:`fit` does first) and return the core's settings."""
        check_validation_params(self.holdout, self.n_null, self.alpha)
        check_backend(self.backend, self.ray_address)
        settings = self.beam_settings()
        self._check_search_params(settings)
        return settings

    def beam_settings(self) -> BeamSettings:
        """The search's settings, as the core takes them."""
        return BeamSettings(
            max_length=self.max_length,
            beam_size=self.beam_size,
            operators=tuple(self.operators),
            beam_mode=self.beam_mode,
            metric=self.metric,
            complexity_penalty=float(self.complexity_penalty),
            min_support=self.min_support,
            max_expansion_concepts=self.max_expansion_concepts,
            top_k=self.top_k,
            use_neighbors=self.use_neighbors,
        )

    # -------------------------------------------------------------- fitting
    def fit(
        self,
        units: UnitMasks | ArrayLike | sp.sparray | sp.spmatrix,
        concepts: ConceptSet,
        unit_names: Sequence[str] | None = None,
        examples: ArrayLike | None = None,
        groups: Sequence[object] | None = None,
    ) -> CompositionalExplainer:
        """Search the best formula for every unit.

        Parameters
        ----------
        units : UnitMasks, bool array (U, N) or scipy sparse (U, N)
            Binary unit masks over the concept set's N positions.
        concepts : ConceptSet
        unit_names : sequence of str, optional
            Names for array input (``UnitMasks`` carry their own).
        examples : int array (N,), optional
            The example (image, sentence) each position belongs to, numbered from 0.
            Enables the held-out split and the permutation null (see ``holdout``,
            ``n_null``); needs per-position unit masks.
        groups : sequence, optional
            A group key per example; a group's examples stay on one side of the split.

        Returns
        -------
        self
        """
        if not isinstance(concepts, ConceptSet):
            raise TypeError(f"concepts must be a ConceptSet, got {type(concepts).__name__}")
        self.check_params()
        if examples is not None and (self.holdout or self.n_null):
            variants = variants_from_positions(
                units, concepts, examples, holdout=self.holdout, n_null=self.n_null,
                random_state=self.random_state, unit_names=unit_names, groups=groups,
            )  # fmt: skip
            return self.fit_variants(variants)
        masks = as_unit_masks(units, concepts, unit_names)
        masks.check_compatible(concepts)
        self._search(masks, concepts)
        return self

    def fit_variants(self, variants: Variants) -> CompositionalExplainer:
        """Search on precomputed variants, score on their held-out part, and run their null.

        The estimator's own validated :meth:`fit` builds the variants from per-position
        masks; a pipeline that counts them itself (the vision dissection counts every variant
        in one pass over the activation maps) passes them here.

        Parameters
        ----------
        variants : Variants
            The units' counts on the search part and, optionally, on the held-out part and
            under the permutations of the null (see :mod:`logiclens.explain.validation`).

        Returns
        -------
        self
            With ``explanations_`` extended by the validation columns (``heldout_iou``,
            ``auto_length``, ``auto_formula``, ``auto_heldout_iou``, ``null_mean``,
            ``p_value``, ``p_empirical``, ``q_value``, ``significant``; NaN where a part is
            missing), ``split_``, and with a null ``null_values_`` (U, R) and
            ``null_by_length_`` (U, R, L).
        """
        settings = self.check_params()
        table = self._search(variants.search, variants.search_concepts)
        if variants.split is not None:
            self.split_ = variants.split
        if not variants.validated:
            return self
        for column in VALIDATION_COLUMNS:
            self.explanations_[column] = np.nan
        if variants.heldout is not None and variants.heldout_concepts is not None:
            heldout = self.evaluate(variants.heldout, variants.heldout_concepts)
            add_heldout_columns(self.explanations_, self.results_, heldout, settings.max_length)
        if variants.null:
            n_units, n_null = len(variants.search), len(variants.null)
            stacked = UnitMasks(sp.vstack([m.counts for m in variants.null], format="csr"))  # one parallel run
            results, _ = self._search_units(table, stacked, settings, certify=False)
            best = np.array([r.best.value if r.best is not None else np.nan for r in results])
            by_length = np.array(
                [r.best_by_length if r.best_by_length is not None else [np.nan] * settings.max_length for r in results],
                dtype=float,
            )
            self.null_values_ = best.reshape(n_null, n_units).T
            self.null_by_length_ = by_length.reshape(n_null, n_units, settings.max_length).transpose(1, 0, 2)
            add_null_columns(self.explanations_, self.results_, self.null_values_, self.alpha)
        return self

    def _search(self, masks: UnitMasks, concepts: ConceptSet) -> PrimitiveTable:
        """Search every unit and store the fitted attributes; returns the primitive table."""
        settings = self.beam_settings()  # checked by fit / fit_variants
        table = PrimitiveTable(concepts, settings.min_support, settings.use_neighbors)
        results, certificates = self._search_units(table, masks, settings)
        self._store(results, masks, concepts, settings, certificates)
        return table

    def _search_units(
        self, table: PrimitiveTable, masks: UnitMasks, settings: BeamSettings, certify: bool = True
    ) -> tuple[list[UnitResult], list[dict[str, Any]]]:
        """Results (the certified answer first for an optimal search) and per unit the certificate columns.

        ``certify=False`` skips the beam's certificates (the null needs only the answers).
        """
        from logiclens.core.search.optimal import as_unit_result

        if self.search == "optimal":
            found = certified_all(
                table, masks, settings, self.budget_seconds, self.max_nodes, self.n_jobs, self.verbose,
                self.backend, self.ray_address,
            )  # fmt: skip
            results = [as_unit_result(r) for r in found]
            certificates = [
                {
                    "upper_bound": r.upper_bound,
                    "ceiling": r.ceiling,
                    "certificate": r.status if r.best is not None else None,
                    "beam": r.beam.best,
                }
                for r in found
            ]
            return results, certificates
        results = search_all(table, masks, settings, self.n_jobs, self.verbose, self.backend, self.ray_address)
        if not certify:
            return results, [{} for _ in results]
        bounds = certify_all(table, masks, results, settings, self.n_jobs, 0, self.backend, self.ray_address)
        certificates = []
        for result, (upper, top) in zip(results, bounds, strict=True):
            certificate = None
            if result.best is not None and not np.isnan(upper):
                certificate = "optimal" if upper <= iou_of(result.best, result.n_active) else "unproven"
            certificates.append({"upper_bound": upper, "ceiling": top, "certificate": certificate, "beam": result.best})
        return results, certificates

    def evaluate(self, units: UnitMasks | ArrayLike | sp.sparray | sp.spmatrix, concepts: ConceptSet) -> pd.DataFrame:
        """Score the fitted formulas on other data (e.g. held-out images).

        Parameters
        ----------
        units : UnitMasks, bool array (U, N) or sparse (U, N)
            The same units, in the same order, over the positions of ``concepts``.
        concepts : ConceptSet
            Concepts with the same names (and neighbour relation) as in :meth:`fit`.

        Returns
        -------
        pandas.DataFrame
            Per unit: ``unit, n_active, iou, precision, recall, f1`` of its answer, and
            ``iou_length_<l>``: the IoU of its best formula of exactly ``l`` leaves.
        """
        check_is_fitted(self, "results_")
        masks = as_unit_masks(units, concepts, None)
        if len(masks) != len(self.results_):
            raise ValueError(f"{len(masks)} units given, {len(self.results_)} were fitted")
        rows = []
        for u, result in enumerate(self.results_):
            start, stop = masks.counts.indptr[u], masks.counts.indptr[u + 1]
            unit_sigs, unit_counts = masks.counts.indices[start:stop], masks.counts.data[start:stop]
            n_active = int(unit_counts.sum())
            row: dict[str, Any] = {"unit": masks.names[u], "n_active": n_active}
            if result.best is not None:
                counts = _formula_counts(result.best.formula, concepts, unit_sigs, unit_counts)
                row.update({name: float(metric(*counts, n_active)) for name, metric in METRICS.items()})
            for length, candidate in enumerate(result.per_length, start=1):
                if candidate is not None:
                    counts = _formula_counts(candidate.formula, concepts, unit_sigs, unit_counts)
                    row[f"iou_length_{length}"] = float(METRICS["iou"](*counts, n_active))
            rows.append(row)
        max_length = self.beam_settings().max_length
        columns = ["unit", "n_active", *METRICS, *(f"iou_length_{n}" for n in range(1, max_length + 1))]
        return pd.DataFrame(rows, columns=columns)

    def _store(
        self,
        results: list[UnitResult],
        masks: UnitMasks,
        concepts: ConceptSet,
        settings: BeamSettings,
        certificates: list[dict[str, Any]] | None = None,
    ) -> None:
        category = dict(zip(concepts.names, concepts.categories))
        rows, top_rows = [], []
        if certificates is None:
            certificates = [{} for _ in results]
        for name, result, certificate in zip(masks.names, results, certificates, strict=True):
            best, atomic = result.best, result.atomic
            row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
            row.update(unit=name, n_active=result.n_active, status=result.status)
            row.update(
                upper_bound=certificate.get("upper_bound", np.nan),
                ceiling=certificate.get("ceiling", np.nan),
                certificate=certificate.get("certificate"),
            )
            beam = certificate.get("beam")
            if beam is not None:
                row.update(beam_formula=str(beam.formula), beam_iou=iou_of(beam, result.n_active))
            if best is not None and atomic is not None:
                counts = (best.intersection, best.size, result.n_active)
                leaves = best.formula.concept_names()
                row.update(
                    formula=str(best.formula),
                    iou=iou_of(best, result.n_active),
                    length=best.length,
                    score=best.score,
                    precision=float(METRICS["precision"](*counts)),
                    recall=float(METRICS["recall"](*counts)),
                    f1=float(METRICS["f1"](*counts)),
                    formula_size=best.size,
                    intersection=best.intersection,
                    n_negations=best.formula.n_negations,
                    reference_length=best.formula.reference_length,
                    best_atomic=str(atomic.formula),
                    best_atomic_iou=iou_of(atomic, result.n_active),
                    category=category[atomic.formula.concept_names()[0]],
                    formula_categories=",".join(dict.fromkeys(category[leaf] for leaf in leaves)),
                )
                for rank, candidate in enumerate(result.top, start=1):
                    top_rows.append(
                        dict(
                            unit=name,
                            rank=rank,
                            formula=str(candidate.formula),
                            score=candidate.score,
                            iou=iou_of(candidate, result.n_active),
                            length=candidate.length,
                        )
                    )
            rows.append(row)
        frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        for column in ("upper_bound", "ceiling", "iou", "beam_iou"):
            frame[column] = frame[column].astype(float)
        frame["beam_gap"] = frame["upper_bound"] - frame["iou"]
        frame.attrs["search"] = self.search
        for column in ("length", "formula_size", "intersection", "n_negations", "reference_length"):
            frame[column] = frame[column].astype("Int64")
        frame.attrs["metric"] = settings.metric
        self.explanations_ = frame
        self.top_formulas_ = pd.DataFrame(top_rows, columns=["unit", "rank", "formula", "score", "iou", "length"])
        self.best_by_length_ = pd.DataFrame(
            [r.best_by_length for r in results],
            index=pd.Index(masks.names, name="unit"),
            columns=pd.RangeIndex(1, settings.max_length + 1, name="length"),
        )
        self.formulas_by_length_ = pd.DataFrame(
            [_formula_texts(r.per_length, settings.max_length) for r in results],
            index=self.best_by_length_.index,
            columns=self.best_by_length_.columns,
            dtype=object,
        )
        self.formulas_: list[Formula | None] = [r.best.formula if r.best else None for r in results]
        self.results_ = results
        self.n_units_ = len(results)


class AtomicExplainer(CompositionalExplainer):
    """NetDissect: explain each unit by the single concept that best matches it.

    Same parameters and attributes as :class:`CompositionalExplainer`, with
    ``max_length=1``.
    """

    def __init__(
        self,
        metric: str = "iou",
        min_support: int = 1,
        top_k: int = 1,
        use_neighbors: bool = True,
        n_jobs: int = 1,
        verbose: int = 1,
        backend: str = "local",
        ray_address: str | None = None,
    ) -> None:
        super().__init__(
            max_length=1, metric=metric, min_support=min_support, top_k=top_k, use_neighbors=use_neighbors,
            n_jobs=n_jobs, verbose=verbose, backend=backend, ray_address=ray_address,
        )  # fmt: skip

    def beam_settings(self) -> BeamSettings:
        """The search's settings: one leaf, a beam as wide as ``top_k``."""
        return replace(super().beam_settings(), max_length=1, beam_size=max(1, self.top_k))


def _formula_texts(per_length: Sequence[Any], max_length: int) -> list[str | None]:
    """The per-length formulas of a unit as text, padded with None to ``max_length``."""
    texts = [None if c is None else str(c.formula) for c in per_length[:max_length]]
    return texts + [None] * (max_length - len(texts))


def _formula_counts(
    formula: Formula, concepts: ConceptSet, unit_signatures: np.ndarray, unit_counts: np.ndarray
) -> tuple[int, int]:
    """(|M AND F|, |F|) of a formula on a concept set, for one unit's counts."""
    inside = concepts.signature_mask(formula)
    return int(unit_counts[inside[unit_signatures]].sum()), int(concepts.signature_weights[inside].sum())


def as_unit_masks(units: Any, concepts: ConceptSet, names: Sequence[str] | None = None) -> UnitMasks:
    """Unit masks in count form, from ``UnitMasks``, a bool array (U, N) or a sparse (U, N) matrix."""
    if isinstance(units, UnitMasks):
        return units
    if sp.issparse(units):
        return UnitMasks.from_sparse(units, concepts, names)
    return UnitMasks.from_dense(np.asarray(units), concepts, names)
