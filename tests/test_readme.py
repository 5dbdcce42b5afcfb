"""The README's Python examples run as written (in a scratch folder holding the data files they name)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_has_python_examples() -> None:
    blocks = _python_blocks()
    assert len(blocks) >= 4
    assert any("dissect(" in b for b in blocks) and any("explain_text(" in b for b in blocks)
    assert any("analyze_network(" in b for b in blocks) and any("analyze(" in b for b in blocks)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_example_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = _python_blocks()[index]
    for module in re.findall(r"^(?:from|import) (\w+)", block, flags=re.MULTILINE):
        pytest.importorskip(module)
    if "load_model(" in block:
        pytest.importorskip("geffnet")
    monkeypatch.chdir(tmp_path)
    words = ["a dog runs", "the cat sleeps", "a dog sleeps", "the bird sings", "a cat runs", "the dog sings"]
    with open("sentences.jsonl", "w", encoding="utf-8") as file:
        for i in range(60):
            file.write(json.dumps({"text": words[i % len(words)]}) + "\n")
    rng = np.random.default_rng(0)
    np.save("activations.npy", rng.normal(size=(60, 4)).astype(np.float32))
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    if "analyze(" in block:
        assert (tmp_path / "runs" / "python-analyze" / "analysis" / "summary.json").is_file()
    elif 'backend="ray"' in block:
        assert (tmp_path / "runs" / "ray" / "results.csv").is_file()
    elif "dissect(" in block:
        assert (tmp_path / "runs" / "python-dissect" / "report" / "index.html").is_file()
    if "explain_text(" in block:
        assert (tmp_path / "runs" / "python-text" / "results.csv").is_file()
