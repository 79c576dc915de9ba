"""The package's architecture, checked: few top-level entries, layers that only import downwards, no import cycle,
no private name imported from another module, and no public name that means two things."""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cnn_helpers"
# sub-package -> layer: a module may import its own sub-package and lower layers; the techniques never each other
LAYERS = {"core": 0, "nets": 1, "pretrained": 2, "training": 3,
          "attribution": 4, "featurevis": 4, "style": 4, "adversarial": 4}


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (a package's ``__init__`` under the package's name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import of module ``name``, also inside functions."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out.append((base, [alias.name for alias in node.names], node.lineno))
    return out


def _edges() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from pkg import submodule`` counts as the submodule)."""
    edges = defaultdict(set)
    for name in MODULES:
        for module, names, _ in _imports(name):
            if not module.startswith("cnn_helpers"):
                continue
            subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
            edges[name].update(subs or [module])
            if subs and len(subs) < len(names):
                edges[name].add(module)
    return edges


def _topic(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_the_top_level_has_at_most_twelve_entries():
    entries = [p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"]
    assert len(entries) <= 12, entries
    assert set(LAYERS) <= set(entries), "every sub-package exists"


def test_layers_only_import_downwards_and_techniques_never_each_other():
    wrong = []
    for module, targets in _edges().items():
        here = _topic(module)
        for target in targets:
            there = _topic(target)
            if here is None or there is None or here == there:
                continue
            if LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "upward or sideways imports:\n" + "\n".join(wrong)


def test_the_import_graph_has_no_cycle():
    edges, state, cycles = _edges(), {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_imports_a_private_name():
    private = [f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}: {module} import {n}"
               for name in MODULES for module, names, line in _imports(name) for n in names
               if module.startswith("cnn_helpers") and n.startswith("_")]
    assert not private, "\n".join(private)


def _defined_public_names(name: str) -> set[str]:
    """Public names a module defines itself (functions, classes, module-level assignments), not what it imports."""
    tree = ast.parse(MODULES[name].read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for t in ast.walk(target):
                    if isinstance(t, ast.Name):
                        names.add(t.id)
    return {n for n in names if not n.startswith("_")}


def test_no_public_name_is_defined_in_two_modules():
    where = defaultdict(list)
    for name in MODULES:
        for public in _defined_public_names(name):
            where[public].append(name)
    collisions = {n: mods for n, mods in where.items() if len(mods) > 1}
    assert not collisions, f"one name, several meanings: {collisions}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_says_what_it_is_and_exports_what_exists(name):
    module = importlib.import_module(name)
    assert module.__doc__ and module.__doc__.strip(), f"{name} has no docstring"
    for exported in getattr(module, "__all__", []):
        assert hasattr(module, exported), f"{name}.__all__ names {exported!r}, which does not exist"


@pytest.mark.parametrize("topic", sorted(LAYERS))
def test_a_sub_package_re_exports_only_its_own_modules_objects(topic):
    package = importlib.import_module(f"cnn_helpers.{topic}")
    for exported in getattr(package, "__all__", []):
        home = getattr(getattr(package, exported), "__module__", None)
        if home is not None and home.startswith("cnn_helpers."):  # constants and type aliases carry no home
            assert home.startswith(f"cnn_helpers.{topic}"), f"cnn_helpers.{topic} re-exports {exported} from {home}"
