"""README.md and docs/*.md: links resolve, the front page stays short, every quoted command parses.

Commands are read from the ```bash blocks of the pages (the forms ``python -m keras_inst…``,
``keras-inst…`` and ``python scripts/….py``, after any ``VAR=value`` / ``nohup`` / ``nice`` prefix)
and run in this process with ``--help`` appended, the way ``python -m`` / the console script /
``python script.py`` would run them: one TensorFlow import for all of them instead of one per
subprocess. A command passes when it prints its usage and exits 0, and every ``--option`` the page
quotes is one its parser lists: a renamed option or subcommand, a removed script or a module
without ``__main__`` fails here instead of in a reader's shell.
"""

from __future__ import annotations

import re
import runpy
import shlex
import sys
from collections.abc import Callable
from importlib import import_module
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# What may stand before the program on a quoted line: environment assignments and wrappers.
_PREFIX = r"(?:[A-Za-z_]\w*=\S*\s+|nohup\s+|nice(?:\s+-n\s*-?\d+)?\s+|timeout\s+\S+\s+)*"
_COMMAND = re.compile(_PREFIX + r"(python3? -m keras_inst\b|keras-inst\b|python3? scripts/)")
_SHELL_STOP = ("|", "||", "&&", ";", "&", "<", ">", ">>")


def _quickstart_commands() -> list[str]:
    """The two Quickstart one-liners, found the way .ci/run finds them."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^##\s+Quickstart\s*$(.*?)(?=^##\s|\Z)", text, re.M | re.S)
    if m is None:
        return []
    return [
        line.strip()
        for block in re.findall(r"```[^\n]*\n(.*?)```", m.group(1), re.S)
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _prose(text: str) -> str:
    """The page without fenced blocks and inline code (``x[i](y)`` in code is not a link)."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def _relative_links(page: Path) -> list[str]:
    targets = _LINK.findall(_prose(page.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def _argv(line: str) -> list[str] | None:
    """A quoted command line -> ``[program words..., args...]``; None if it quotes no command."""
    m = _COMMAND.match(line)
    if m is None:
        return None
    words = shlex.split(line[m.start(1):], comments=True)
    for i, w in enumerate(words):
        if w in _SHELL_STOP or w.startswith((">", "2>", "<")):
            words = words[:i]
            break
    return [w for w in words if not w.startswith("$")]  # a shell variable: its options are elsewhere


def quoted_commands() -> list[tuple[str, list[str]]]:
    """(``page:line``, argv) of every command in the ```bash blocks of README.md and docs/*.md."""
    skip = set(_quickstart_commands())  # CI runs them itself
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            if m.group(1).strip() not in ("bash", "sh", "shell", "console"):
                continue
            first = text.count("\n", 0, m.start(2)) + 1
            lines = m.group(2).split("\n")
            i = 0
            while i < len(lines):
                start, joined = i, lines[i]
                while joined.rstrip().endswith("\\") and i + 1 < len(lines):
                    i += 1
                    joined = joined.rstrip()[:-1] + " " + lines[i].strip()
                i += 1
                joined = joined.strip()
                argv = None if joined in skip else _argv(joined)
                if argv:
                    found.append((f"{page.relative_to(ROOT)}:{first + start}", argv))
    return found


def _console_scripts() -> dict[str, str]:
    """pyproject.toml's [project.scripts]: name -> "module:function" (no tomllib on Python 3.10)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r"^\[project\.scripts\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    return dict(re.findall(r'^\s*"?([\w.-]+)"?\s*=\s*"([\w.]+:[\w.]+)"', m.group(1) if m else "", re.M))


def _console_script(name: str) -> Callable:
    """``keras-inst…`` -> its entry point, as pip would install it from pyproject.toml."""
    scripts = _console_scripts()
    if name not in scripts:
        pytest.fail(f"{name} is not a console script in pyproject.toml [project.scripts] ({', '.join(scripts)})")
    module, func = scripts[name].split(":")
    return getattr(import_module(module), func)


def _run_help(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int | str | None:
    """Run ``argv + ["--help"]`` as its shell form would; the exit code (None: returned)."""
    if argv[0].startswith("python"):
        if argv[1] == "-m":
            target, args = argv[2], argv[3:]
            monkeypatch.setattr(sys, "argv", [target, *args, "--help"])
            run = lambda: runpy.run_module(target, run_name="__main__", alter_sys=True)  # noqa: E731
        else:
            path, args = ROOT / argv[1], argv[2:]
            if not path.is_file():
                pytest.fail(f"{argv[1]} does not exist")
            monkeypatch.setattr(sys, "argv", [str(path), *args, "--help"])
            run = lambda: runpy.run_path(str(path), run_name="__main__")  # noqa: E731
    else:
        entry, args = _console_script(argv[0]), argv[1:]
        monkeypatch.setattr(sys, "argv", [argv[0], *args, "--help"])
        run = lambda: entry([*args, "--help"])  # noqa: E731
    try:
        result = run()
    except SystemExit as e:
        return e.code
    return result if isinstance(result, int) else None


COMMANDS = quoted_commands()


def test_readme_is_a_front_page():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (> {README_MAX_LINES}): move the manual into docs/"


def test_quickstart_holds_the_two_one_line_commands():
    cmds = _quickstart_commands()
    assert len(cmds) == 2, f"README.md '## Quickstart' must hold exactly two one-line commands (.ci/run reads them): {cmds}"
    assert cmds[0].endswith("python -m keras_inst.train"), cmds[0]  # the main job
    assert cmds[1].endswith("python -m pytest -q"), cmds[1]  # the test suite


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    missing = [t for t in _relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / t.split("#")[0]).resolve() for t in _relative_links(README)}
    orphans = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not orphans, f"docs pages not linked from README.md: {orphans}"


def test_commands_are_found():
    """The collector itself: the forms the pages use are all recognised."""
    assert _argv("python -m keras_inst.predict a.wav --model m  # note") == ["python", "-m", "keras_inst.predict", "a.wav", "--model", "m"]
    assert _argv("KERASTUNER_TUNER_ID=chief nohup nice -n 10 keras-inst tune --dir d > log 2>&1 &") == ["keras-inst", "tune", "--dir", "d"]
    assert _argv("TF_CPP_MIN_LOG_LEVEL=2 python scripts/bench_train.py $S --steps 8") == ["python", "scripts/bench_train.py", "--steps", "8"]
    assert _argv("python3 -m venv .venv && . .venv/bin/activate") is None
    cmds = COMMANDS
    programs = {tuple(a[:3]) if a[0].startswith("python") and a[1] == "-m" else tuple(a[:2]) for _, a in cmds}
    assert len(cmds) >= 20 and len(programs) >= 8, programs


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_quoted_command_runs_its_help(where: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys):
    code = _run_help(argv, monkeypatch)
    out = capsys.readouterr().out
    assert code in (0, None) and "usage:" in out, f"{where}: `{shlex.join(argv)} --help` exited {code!r}:\n{out[-2000:]}"
    listed = set(re.findall(r"--[\w-]+", out))
    unknown = [f for f in (w.split("=")[0] for w in argv if w.startswith("--")) if f not in listed]
    assert not unknown, f"{where}: `{shlex.join(argv)}` quotes options its --help does not list: {unknown}"
