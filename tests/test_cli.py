"""The command line: problem files in packed and sparse form, outputs, and one-line errors."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from logiclens.cli import main
from logiclens.core.formula import canonical, parse
from logiclens.testing import planted_problem

FORMULAS = ["c0", "c1 OR c2", "c3 AND NOT c4"]


def _packed(masks: np.ndarray) -> np.ndarray:
    return np.packbits(masks, axis=1, bitorder="little")


@pytest.fixture
def problem():
    return planted_problem(FORMULAS, n_positions=3001, n_concepts=8, seed=3)


def _write_packed(path: Path, problem, **overrides) -> Path:
    arrays = {
        "concepts": _packed(problem.concept_masks),
        "units": _packed(problem.unit_masks),
        "n_positions": np.array(problem.concept_masks.shape[1]),
        "concept_names": np.array(problem.concepts.names),
        "concept_categories": np.array(problem.concepts.categories),
        "unit_names": np.array(["u0", "u1", "u2"]),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_search_packed_problem_recovers_planted_formulas(tmp_path, problem, capsys) -> None:
    path = _write_packed(tmp_path / "problem.npz", problem)
    out = tmp_path / "results.csv"
    assert main(["search", str(path), "--length", "3", "--beam", "5", "--out", str(out), "-q"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.unit) == ["u0", "u1", "u2"]
    assert {"unit", "formula", "iou", "length"} <= set(frame.columns)
    assert list(frame.iou) == [1.0, 1.0, 1.0]
    assert [canonical(parse(f)) for f in frame.formula] == [canonical(parse(f)) for f in FORMULAS]
    printed = capsys.readouterr().out
    assert "c3 AND NOT c4" in printed and "u2" in printed


def test_search_sparse_problem_matches_packed(tmp_path, problem) -> None:
    def csr(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indptr = np.concatenate([[0], np.cumsum(masks.sum(axis=1))])
        return indptr, np.concatenate([np.flatnonzero(row) for row in masks])

    c_ptr, c_idx = csr(problem.concept_masks)
    u_ptr, u_idx = csr(problem.unit_masks)
    sparse = _write_packed(
        tmp_path / "sparse.npz",
        problem,
        concepts=None,
        units=None,
        concepts_indptr=c_ptr,
        concepts_indices=c_idx,
        units_indptr=u_ptr,
        units_indices=u_idx,
    )
    packed = _write_packed(tmp_path / "packed.npz", problem)
    outs = []
    for path in (sparse, packed):
        out = tmp_path / f"{path.stem}.csv"
        assert main(["search", str(path), "-L", "2", "-B", "3", "-o", str(out), "-q", "--top-k", "2"]) == 0
        outs.append(pd.read_csv(out))
    pd.testing.assert_frame_equal(outs[0], outs[1])


def test_top_out_writes_k_formulas_per_unit(tmp_path, problem) -> None:
    path = _write_packed(tmp_path / "problem.npz", problem)
    top = tmp_path / "top.csv"
    assert main(["search", str(path), "--top-k", "3", "--top-out", str(top), "-q"]) == 0
    frame = pd.read_csv(top)
    assert frame.groupby("unit").size().max() == 3
    assert (frame.groupby("unit")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"units": None}, "missing array 'units'"),
        ({"concept_names": None}, "missing array(s) 'concept_names'"),
        ({"n_positions": np.array(4000)}, "bytes per row but n_positions=4000"),
        ({"concept_names": np.array(["x"] * 3)}, "'concept_names' has 3 entries, expected 8"),
        ({"units": np.zeros((3, 376), np.int64)}, "'units' must be a 2-D uint8 array"),
        ({"unit_names": np.array(["a"])}, "'unit_names' has 1 entries, expected 3"),
        ({"concept_names": np.array(["c0"] * 8)}, "repeated names"),
        ({"n_positions": np.array([1, 2])}, "'n_positions' must be one positive integer"),
    ],
)
def test_bad_problem_files_get_one_line_errors(tmp_path, problem, capsys, overrides, message) -> None:
    path = _write_packed(tmp_path / "bad.npz", problem, **overrides)
    assert main(["search", str(path), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("logiclens: error:")
    assert message in err
    assert len(err.splitlines()) == 1


def test_missing_and_non_npz_files(tmp_path, capsys) -> None:
    assert main(["search", str(tmp_path / "absent.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    assert main(["search", str(junk)]) == 2
    assert "not a readable .npz file" in capsys.readouterr().err


def test_pickled_arrays_are_refused(tmp_path, problem, capsys) -> None:
    path = _write_packed(tmp_path / "pickled.npz", problem, concept_names=np.array(list("abcdefgh"), dtype=object))
    assert main(["search", str(path)]) == 2
    assert "pickled" in capsys.readouterr().err


def test_invalid_option_values_are_reported(tmp_path, problem, capsys) -> None:
    path = _write_packed(tmp_path / "problem.npz", problem)
    assert main(["search", str(path), "--operators", "or,xor", "-q"]) == 2
    assert "operators" in capsys.readouterr().err
    assert main(["search", str(path), "--penalty", "1.5", "-q"]) == 2
    assert "--penalty" in capsys.readouterr().err


def test_demo_runs(capsys) -> None:
    assert main(["demo", "-q", "--length", "2"]) == 0
    captured = capsys.readouterr()
    assert "c3 AND NOT c4" in captured.out
    assert "recovered" in captured.err


def test_examples_enable_heldout_scores_and_the_null(tmp_path, problem, capsys) -> None:
    examples = np.arange(3001) // 10
    examples[-1] = examples[-2]  # 300 examples of 10 positions, the last with 11
    path = _write_packed(tmp_path / "problem.npz", problem, examples=examples)
    out = tmp_path / "results.csv"
    assert main(["search", str(path), "-q", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert frame.heldout_iou.between(0.99, 1.0).all()
    assert "heldout_iou" in capsys.readouterr().out
    assert main(["search", str(path), "-q", "--null", "3"]) == 2
    assert "equal size" in capsys.readouterr().err
    path = _write_packed(tmp_path / "bad.npz", problem, examples=np.arange(5))
    assert main(["search", str(path), "-q"]) == 2
    assert "'examples' must hold one non-negative integer per position" in capsys.readouterr().err


def test_the_command_line_starts_without_heavy_imports() -> None:
    """--help, --version and every COMMAND --help parse without numpy, pandas, scipy or torch (start-up < 0.5 s)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from logiclens.cli import main\n"
        "for argv in (['--version'], ['--help'], ['dissect', '--help'], ['text', 'explain', '--help'],\n"
        "             ['polytope', 'analyze', '--help'], ['search', '--help'], ['report', '--help']):\n"
        "    assert main(argv) == 0\n"
        "heavy = sorted({'numpy', 'pandas', 'scipy', 'torch', 'sklearn', 'matplotlib'} & set(sys.modules))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stderr


def test_search_optimal_with_a_budget_and_the_certificate_columns(tmp_path, problem, capsys) -> None:
    path = _write_packed(tmp_path / "problem.npz", problem)
    out = tmp_path / "results.csv"
    argv = ["search", str(path), "--search", "optimal", "--budget", "5s", "--max-nodes", "1000", "-o", str(out), "-q"]
    assert main(argv) == 0
    frame = pd.read_csv(out)
    assert list(frame.iou) == [1.0, 1.0, 1.0] and list(frame.certificate) == ["optimal"] * 3
    assert (frame.upper_bound == frame.iou).all() and (frame.beam_gap == 0).all() and (frame.ceiling == 1).all()
    assert "certificate" in capsys.readouterr().out
    assert main(["search", str(path), "-o", str(out), "-q"]) == 0  # a beam run is certified too
    frame = pd.read_csv(out)
    assert list(frame.status) == ["ok"] * 3 and list(frame.certificate) == ["optimal"] * 3
    for bad in (["--budget", "soon"], ["--budget", "-1"], ["--max-nodes", "-3"], ["--search", "exhaustive"]):
        assert main(["search", str(path), *bad, "-q"]) == 2
    capsys.readouterr()
    assert main(["search", str(path), "--search", "optimal", "--metric", "f1", "-q"]) == 2
    err = capsys.readouterr().err
    assert "search='optimal'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("text", "seconds"), [("5", 5.0), ("5s", 5.0), ("250ms", 0.25), ("2m", 120.0), ("0", 0.0)])
def test_budget_durations(text, seconds) -> None:
    from logiclens.cli.options import duration

    assert duration(text) == seconds
