"""Dependencies flow one way: core -> explain -> runs -> torch -> polytope -> pipelines -> analysis -> report -> cli.

Every ``import`` of every module is read (module level and inside functions) and checked
against the layers below; any import cycle between logiclens modules fails, as does torch in
the torch-free layers and the command line imported from outside it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "logiclens"

#: layers from the bottom up; a module may import its own layer and the layers below it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("logiclens._version", "logiclens.core")),
    ("explain", ("logiclens.explain",)),
    ("runs", ("logiclens.runs",)),
    ("torch", ("logiclens.hooks", "logiclens.checkpoints", "logiclens.sae")),
    ("polytope", ("logiclens.polytope",)),
    ("vision", ("logiclens.vision",)),
    ("text", ("logiclens.text",)),
    ("testing", ("logiclens.testing",)),
    ("analysis", ("logiclens.analysis",)),
    ("report", ("logiclens.report",)),
    ("cli", ("logiclens.cli",)),
    ("facade", ("logiclens",)),
]
#: the pipelines stand side by side: none imports another. The polytope lens is a library
#: below them (codes, regions, baselines: what code-cluster units need in both pipelines)
PIPELINES = ("vision", "text")
#: layers that must run without torch
TORCH_FREE = ("core", "explain", "runs")


def _module_name(path: Path) -> str:
    parts = ("logiclens", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The logiclens module an imported name refers to (its longest prefix that is a module)."""
    modules = _modules()
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def _imports(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(logiclens modules, other top-level packages) that ``module`` imports anywhere in its code."""
    path = _modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    internal, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            names = [f"{origin}.{alias.name}" for alias in node.names]  # a module, or a name of ``origin``
        for name in names:
            if name == "logiclens" or name.startswith("logiclens."):
                target = _resolve(name)
                if target is not None and target != module:
                    internal.add(target)
            elif name:
                external.add(name.split(".")[0])
    return frozenset(internal), frozenset(external)


def _layer(module: str) -> str:
    best = ""
    layer = ""
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, layer = prefix, name
    assert layer, f"{module} belongs to no layer; add it to LAYERS in tests/test_architecture.py"
    return layer


def _rank(layer: str) -> int:
    return [name for name, _ in LAYERS].index(layer)


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_imports_flow_down_the_layers() -> None:
    wrong = []
    for module in _modules():
        here = _layer(module)
        for target in _imports(module)[0]:
            there = _layer(target)
            sideways = here != there and here in PIPELINES and there in PIPELINES
            if _rank(there) > _rank(here) or sideways:
                wrong.append(f"{module} ({here}) imports {target} ({there})")
    assert not wrong, "imports against the flow:\n" + "\n".join(sorted(wrong))


def test_nothing_imports_the_command_line_or_the_facade() -> None:
    wrong = [
        f"{module} imports {target}"
        for module in _modules()
        for target in _imports(module)[0]
        if (_layer(target) == "cli" and _layer(module) != "cli") or (target == "logiclens" and module != "logiclens")
    ]
    assert not wrong, "\n".join(sorted(wrong))


@pytest.mark.parametrize("layer", TORCH_FREE)
def test_torch_free_layers_never_import_torch(layer: str) -> None:
    heavy = {"torch", "torchvision", "transformers", "timm", "spacy"}
    wrong = [
        f"{module} imports {', '.join(sorted(_imports(module)[1] & heavy))}"
        for module in _modules()
        if _layer(module) == layer and _imports(module)[1] & heavy
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = {module: {t for t in _imports(module)[0] if _layer(t) != "facade"} for module in _modules()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target] if target in trail else [node, target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_checks_see_a_planted_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above fail on code that breaks the rules (so they are not vacuous)."""
    (tmp_path / "core").mkdir()
    (tmp_path / "cli").mkdir()
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "core" / "__init__.py").write_text("")
    (tmp_path / "core" / "a.py").write_text("def f():\n    import torch\n    from logiclens.cli import b\n")
    (tmp_path / "cli" / "__init__.py").write_text("")
    (tmp_path / "cli" / "b.py").write_text("from logiclens.core.a import f\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    for function in (_modules, _imports):
        function.cache_clear()
    try:
        assert _imports("logiclens.core.a") == (frozenset({"logiclens.cli.b"}), frozenset({"torch"}))
        with pytest.raises(AssertionError, match="imports against the flow"):
            test_imports_flow_down_the_layers()
        with pytest.raises(AssertionError, match="import cycles"):
            test_no_import_cycles()
        with pytest.raises(AssertionError, match="torch"):
            test_torch_free_layers_never_import_torch("core")
        with pytest.raises(AssertionError, match=r"logiclens\.core\.a imports logiclens\.cli"):
            test_nothing_imports_the_command_line_or_the_facade()
    finally:
        for function in (_modules, _imports):
            function.cache_clear()
