"""The package's layering: imports run one way, function-level imports included.

Order, bottom to top (a module may import its own layer and those below)::

    keras_inst, atomic, compat -> config -> taxonomy -> data / augment / models / corpus
    -> runtime -> training -> deploy -> the command lines (keras_inst/<name>.py)

Within the data / augment / models / corpus layer, the packages import each other one way too
(no cycle between packages), and no two modules anywhere import each other, directly or round
a longer loop. Every ``import`` statement counts, wherever it stands (module level, function,
``if __name__ == "__main__"``), since a function-level import is a dependency all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import keras_inst

PKG = Path(keras_inst.__file__).parent
LAYERS = (
    ("keras_inst", "keras_inst.atomic", "keras_inst.compat"),
    ("keras_inst.config",),
    ("keras_inst.taxonomy",),
    ("keras_inst.data", "keras_inst.augment", "keras_inst.models", "keras_inst.corpus"),
    ("keras_inst.runtime",),
    ("keras_inst.training",),
    ("keras_inst.deploy",),
)
PEERS = 3  # the layer whose packages must not form a cycle among themselves


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[int, str]]:
    """(line, imported keras_inst module) of every import statement in ``module``."""
    path = MODULES[module]
    base = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")[: len(base.split(".")) - node.level + 1]
                mod = ".".join(parts + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [f"{mod}.{a.name}" for a in node.names] + [mod]
        else:
            continue
        found = {_resolve(n) for n in names if n.split(".")[0] == "keras_inst"} - {None, module}
        # a module importing its own package's __init__ is not a dependency on a sibling
        out += [(node.lineno, t) for t in sorted(found) if not module.startswith(t + ".")]
    return out


EDGES = {m: _imports(m) for m in MODULES}


def _rank(module: str) -> tuple[int, str]:
    """(layer index, layer package) of a module; command lines sit above every layer."""
    best = None
    for i, layer in enumerate(LAYERS):
        for pkg in layer:
            if (module == pkg or module.startswith(pkg + ".")) and (best is None or len(pkg) > len(best[1])):
                best = (i, pkg)
    if best and best[1] == "keras_inst" and module != "keras_inst":
        return len(LAYERS), "command line"  # keras_inst/train.py and the other entry points
    assert best is not None, module
    return best


def test_every_module_is_in_a_layer():
    assert len(MODULES) > 80
    for m in MODULES:
        _rank(m)


def test_no_import_runs_upward():
    upward = []
    for m, edges in EDGES.items():
        (lm, pm) = _rank(m)
        for line, t in edges:
            (lt, pt) = _rank(t)
            if lt > lm:
                rel = MODULES[m].relative_to(PKG.parent)
                upward.append(f"{rel}:{line} imports {t} ({pt}, layer {lt}) from {pm} (layer {lm})")
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_no_import_cycle_between_modules():
    graph = {m: {t for _, t in edges} for m, edges in EDGES.items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_import_cycle_between_the_packages_of_one_layer():
    peers = LAYERS[PEERS]
    graph: dict[str, set[str]] = {p: set() for p in peers}
    where: dict[tuple[str, str], str] = {}
    for m, edges in EDGES.items():
        pm = _rank(m)[1]
        for line, t in edges:
            pt = _rank(t)[1]
            if pm in peers and pt in peers and pm != pt:
                graph[pm].add(pt)
                where.setdefault((pm, pt), f"{MODULES[m].relative_to(PKG.parent)}:{line} imports {t}")
    cycles = _cycles(graph)
    named = [" <-> ".join(c) + " (" + "; ".join(v for (a, b), v in where.items() if a in c and b in c) + ")"
             for c in cycles]
    assert not cycles, "package cycles in the data/augment/models/corpus layer:\n" + "\n".join(named)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    """The parser itself: an import inside a function and a relative import are both found."""
    fake = tmp_path / "keras_inst" / "data" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from keras_inst.training import train\n\nfrom ..models import auc\n")
    monkeypatch.setitem(MODULES, "keras_inst.data.x", fake)
    got = dict((t, line) for line, t in _imports("keras_inst.data.x"))
    assert {"keras_inst.training.train": 2, "keras_inst.models.auc": 4}.items() <= got.items()
    assert _rank("keras_inst.training.train")[0] > _rank("keras_inst.data.x")[0]
