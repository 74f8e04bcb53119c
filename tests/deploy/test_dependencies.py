"""The documented install (``pip install .``, no extras) has everything the deploy commands import.

Every module the export and predict commands can reach (imports inside functions included) is
found by reading the sources, without importing them; each third-party module must belong to
a distribution in pyproject's core ``dependencies``. Before ai-edge-litert became a core
dependency, ``python -m keras_inst.export`` failed after the Quickstart install.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
REPO = Path(__file__).resolve().parents[2]


def _module_file(name: str) -> Path | None:
    """keras_inst.a.b -> keras_inst/a/b.py or keras_inst/a/b/__init__.py (None: not a module)."""
    base = REPO.joinpath(*name.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def third_party_imports(entry: str) -> dict[str, set[str]]:
    """Top-level third-party module -> the keras_inst modules importing it, over every
    keras_inst module reachable from ``entry`` (parent packages included)."""
    seen: set[str] = set()
    todo, found = [entry], {}
    while todo:
        name = todo.pop()
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parents run __init__
        if name in seen or (f := _module_file(name)) is None:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for n in names:
                top = n.split(".")[0]
                if top == "keras_inst":
                    todo.append(n)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, set()).add(name)
    return found


def core_distributions() -> set[str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    return {re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}


@pytest.mark.parametrize("entry", ["keras_inst.export", "keras_inst.predict"])
def test_deploy_commands_need_only_core_dependencies(entry):
    core = core_distributions()
    dists = metadata.packages_distributions()
    imports = third_party_imports(entry)
    assert {"ai_edge_litert", "numpy", "soundfile"} <= set(imports)  # the scan reaches the runtime
    missing = {
        mod: sorted(users)
        for mod, users in imports.items()
        if not {d.lower().replace("_", "-") for d in dists.get(mod, [mod])} & core
    }
    assert missing == {}, f"imported by {entry}'s modules but not a core dependency in pyproject.toml: {missing}"
