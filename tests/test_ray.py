"""The Ray backend on a local Ray instance of 2 CPUs: the same results as the local backend, resumable shards."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from logiclens import CompositionalExplainer
from logiclens.core.parallel import WorkerLostError, connect_ray, map_batches
from logiclens.testing import PlantedProbe, planted_model
from logiclens.vision.dissect import DissectionSettings, dissect

ray = pytest.importorskip("ray", reason="Ray is not installed here (pip install 'logiclens[ray]')")

#: every file of a run that must not depend on where it was computed
RESULT_FILES = [
    "results.csv", "results_relu.csv", "results.jsonl", "top_formulas_relu.csv", "best_by_length_relu.csv",
    "split.npz", "thresholds_relu.npz", "concepts.npz", "units_relu.npz", "record/relu.npy", "record/signatures.npy",
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _settings(backend: str, **overrides) -> DissectionSettings:
    explainer = CompositionalExplainer(max_length=3, beam_size=5, holdout=0.25, n_null=10, verbose=0)
    values = {"layers": ["relu"], "threshold_mode": "layer", "top_fraction": 0.2, "batch_size": 4,
              "checkpoint_seconds": 0.0, "backend": backend, "shard_images": 8}  # fmt: skip
    return DissectionSettings(**{**values, **overrides}, explainer=explainer)


def _read(run: Path, name: str) -> bytes:
    return (run / name).read_bytes()


def test_map_batches_returns_batch_results_in_order() -> None:
    batches = [range(0, 3), range(3, 4), range(4, 10)]
    assert list(map_batches(sum, batches, "ray")) == [3, 3, 39]
    assert list(map_batches(sum, batches, "ray")) == list(map_batches(sum, batches, "local", n_jobs=2))


def test_an_error_in_a_job_is_raised_unchanged() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        list(map_batches(int, ["1", "x"], "ray"))


def test_a_worker_that_keeps_dying_is_retried_then_reported_on_one_line() -> None:
    die = functools.partial(os._exit)
    with pytest.raises(WorkerLostError, match="died 3 times"):
        list(map_batches(die, [3], "ray"))


def test_an_unreachable_cluster_is_one_line_before_anything_is_written(tmp_path) -> None:
    with pytest.raises(ValueError, match="no Ray cluster answers") as error:
        connect_ray("127.0.0.1:9")
    assert "\n" not in str(error.value)
    settings = _settings("ray", ray_address="127.0.0.1:9")
    with pytest.raises(ValueError, match=r"127\.0\.0\.1:9"):
        dissect(planted_model(), PlantedProbe(), tmp_path / "run", settings, verbose=0)
    assert not (tmp_path / "run").exists()


def test_ray_run_is_byte_identical_to_the_local_run(tmp_path) -> None:
    local = dissect(planted_model(), PlantedProbe(n_images=40), tmp_path / "local", _settings("local"), verbose=0)
    on_ray = dissect(planted_model(), PlantedProbe(n_images=40), tmp_path / "ray", _settings("ray"), verbose=0)
    assert local.equals(on_ray)
    assert (local.heldout_iou.notna()).all() and "null_mean" in local  # the split and the null ran
    for name in RESULT_FILES:
        assert _read(tmp_path / "local", name) == _read(tmp_path / "ray", name), name
    assert not (tmp_path / "ray" / "record" / "shards").exists()  # merged and removed
    config = json.loads((tmp_path / "ray" / "config.json").read_text())
    assert config["settings"]["backend"] == "ray"


def test_killed_ray_recording_keeps_finished_shards_and_records_only_the_rest(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    settings = _settings("ray", shard_images=4)
    with pytest.raises(OSError, match="simulated failure at image 21"):  # a shard's job failed: raised here
        dissect(planted_model(), PlantedProbe(n_images=40, fail_at=21, failure=OSError), run, settings, verbose=0)
    assert not (run / "record" / "signatures.npy").exists()  # nothing merged
    shards = run / "record" / "shards"
    finished = sorted(p.parent.name for p in shards.glob("*/done.json"))
    assert "00005" not in finished and len(finished) >= 1
    capsys.readouterr()
    resumed = dissect(planted_model(), PlantedProbe(n_images=40), run, settings, verbose=0)
    assert f"reusing {len(finished)} of 10 recorded shards" in capsys.readouterr().err
    whole = dissect(planted_model(), PlantedProbe(n_images=40), tmp_path / "whole", _settings("local"), verbose=0)
    assert resumed.equals(whole)
    for name in RESULT_FILES:
        assert _read(run, name) == _read(tmp_path / "whole", name), name
    assert not shards.exists()


def test_a_damaged_shard_is_recorded_again(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    settings = _settings("ray", shard_images=4)
    with pytest.raises(OSError):
        dissect(planted_model(), PlantedProbe(n_images=16, fail_at=13, failure=OSError), run, settings, verbose=0)
    shards = run / "record" / "shards"
    finished = sorted(p.parent for p in shards.glob("*/done.json"))
    assert finished
    with open(finished[0] / "record" / "relu.npy", "r+b") as damaged:
        damaged.seek(-4, os.SEEK_END)
        damaged.write(b"\x00\x00\x80\x7f")
    capsys.readouterr()
    resumed = dissect(planted_model(), PlantedProbe(n_images=16), run, settings, verbose=0)
    assert f"reusing {len(finished) - 1} of 4 recorded shards" in capsys.readouterr().err
    whole = dissect(planted_model(), PlantedProbe(n_images=16), tmp_path / "whole", _settings("local"), verbose=0)
    np.testing.assert_array_equal(np.load(run / "record" / "relu.npy"), np.load(tmp_path / "whole/record/relu.npy"))
    assert resumed.equals(whole)


def test_the_command_line_gives_the_same_outputs_on_ray(tmp_path) -> None:
    from logiclens.cli import main
    from logiclens.testing import planted_problem

    problem = planted_problem(["c0", "c1 OR c2", "c3 AND NOT c4"], n_positions=3001, n_concepts=8, seed=3)
    np.savez(
        tmp_path / "problem.npz",
        concepts=np.packbits(problem.concept_masks, axis=1, bitorder="little"),
        units=np.packbits(problem.unit_masks, axis=1, bitorder="little"),
        n_positions=np.array(problem.concept_masks.shape[1]),
        concept_names=np.array(problem.concepts.names),
    )
    texts = tmp_path / "texts.jsonl"
    words = ["a dog runs", "a cat sleeps", "nobody runs", "a dog sleeps", "the cat runs"] * 8
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in words), encoding="utf-8")
    np.save(tmp_path / "acts.npy", np.random.default_rng(0).gamma(1.0, size=(len(words), 6)))
    commands = {
        "search.csv": ["search", str(tmp_path / "problem.npz"), "-L", "3", "-B", "5", "-q"],
        "text": ["text", "explain", str(texts), "--activations", str(tmp_path / "acts.npy"), "--tokenizer", "simple",
                 "--min-active", "1", "--length", "2", "--null", "5", "-q", "--no-report"],
    }  # fmt: skip
    for name, argv in commands.items():
        for backend in ("local", "ray"):
            assert main([*argv, "--out", str(tmp_path / backend / name), "--backend", backend]) == 0, (name, backend)
        results = name if name.endswith(".csv") else f"{name}/results.csv"
        assert _read(tmp_path / "local", results) == _read(tmp_path / "ray", results), name
    argv = ["dissect", "--model", "logiclens.testing:planted_model", "--probe", "shapes", "--images", "8", "-q",
            "--backend", "ray", "--ray-address", "127.0.0.1:9", "--out", str(tmp_path / "unreachable")]  # fmt: skip
    assert main(argv) == 2
    assert not (tmp_path / "unreachable").exists()


class _ThreadCount(torch.nn.Module):
    """A layer whose activation is the number of threads torch runs on (what CPU kernels' sums depend on)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * 0 + torch.get_num_threads()


def test_shards_run_torch_on_the_drivers_threads(tmp_path) -> None:
    from logiclens.runs.directory import RunDirectory
    from logiclens.vision.dissect.record import record_stage
    from logiclens.vision.models.base import ModelAdapter

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    module = torch.nn.Sequential()
    module.add_module("count", _ThreadCount())
    model = ModelAdapter(module, "threads", input_size=(16, 16), mean=(0.0,) * 3, std=(1.0,) * 3,
                         default_layers=["count"])  # fmt: skip
    for backend in ("local", "ray"):
        settings = _settings(backend, layers=["count"], shard_images=4)
        record_stage(RunDirectory(tmp_path / backend), model, PlantedProbe(n_images=12), settings, 0)
    local, on_ray = (np.load(tmp_path / b / "record" / "count.npy") for b in ("local", "ray"))
    assert (local == torch.get_num_threads()).all()
    np.testing.assert_array_equal(on_ray, local)
