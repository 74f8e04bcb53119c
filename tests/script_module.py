"""A file of scripts/ imported as a module, for the tests of the measuring and conversion scripts.

scripts/ is not a package (its files run as ``python scripts/x.py``), so the tests load a script
from its path; imported as a plain module (tests/ is on sys.path under pytest, like tiny).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` executed as a fresh module named ``name`` (not put in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
