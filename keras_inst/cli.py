"""One command for every tool: ``keras-inst <verb> [options]`` (also ``python -m keras_inst <verb>``).

Each verb is the command line of one module, which keeps its own parser and ``main(argv)``; this
file only names the verbs and dispatches. The verb's module is imported when it runs, so
``keras-inst --help`` and every TFLite-only verb start without importing TensorFlow. The module
forms (``python -m keras_inst.train``, ...) keep working and take the same options.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

PROG = "keras-inst"
EXIT_BAD_ARGUMENTS = 2


@dataclass(frozen=True)
class Verb:
    """A verb: the module holding its ``main(argv)``, its module form and one line of help."""

    module: str
    module_form: str  # what `python -m ...` runs (documented before the verbs existed)
    summary: str


VERBS: dict[str, Verb] = {
    "train": Verb("keras_inst.training.train", "keras_inst.train",
                  "train a model (no arguments: the main job on the embedded corpus)"),
    "evaluate": Verb("keras_inst.training.evaluate", "keras_inst.evaluate",
                     "judge a trained model or export on a dataset (ROC-AUC, PR-AUC, F1 per class)"),
    "tune": Verb("keras_inst.training.tune", "keras_inst.tune", "keras-tuner grid search over p_musical (paper §3.2, Fig. 2)"),
    "pretrain": Verb("keras_inst.training.pretrain", "keras_inst.pretrain",
                     "pre-train the backbone on MTG-Jamendo auto-tagging for transfer learning"),
    "export": Verb("keras_inst.deploy.export", "keras_inst.export",
                   "export a model to SavedModel and TFLite (float32, float16, int8), each checked"),
    "predict": Verb("keras_inst.deploy.predict", "keras_inst.predict",
                    "recognise instruments in audio files (TFLite needs no TensorFlow)"),
    "serve": Verb("keras_inst.deploy.serve", "keras_inst.serve",
                  "the in-browser app: recognise instruments in your files with LiteRT.js (nothing uploaded)"),
    "release": Verb("keras_inst.deploy.release", "keras_inst.release",
                    "train the release recipe, check its exports and ship the model inside the package"),
    "data": Verb("keras_inst.data.cli", "keras_inst.data",
                 "datasets: inspect, cache, render the embedded corpus, preview training mixes"),
    "taxonomy": Verb("keras_inst.taxonomy", "keras_inst.taxonomy", "print the instrument taxonomy (docs/taxonomy.md)"),
    "levels": Verb("keras_inst.corpus.levels", "keras_inst.corpus.levels",
                   "measure the sample sources' levels per program x velocity (corpus/source_levels.json)"),
}


def verb_list() -> str:
    """The verbs with their one-line help, one per line."""
    width = max(map(len, VERBS))
    return "\n".join(f"  {name:<{width}}  {v.summary}" for name, v in VERBS.items())


def usage() -> str:
    return (f"usage: {PROG} <verb> [options]   ({PROG} <verb> --help: the verb's options)\n\n"
            "Multi-instrument recognition: one command for every tool "
            "(also python -m keras_inst <verb>).\n\n"
            f"verbs:\n{verb_list()}\n\n"
            f"exit status: 0 success, 1 failure, 2 bad arguments, 130 interrupted (predict)\n")


@contextlib.contextmanager
def program_name(name: str) -> Iterator[None]:
    """Parsers built inside this block call themselves ``name`` (usage lines, errors, --help).

    The verb modules set their module form as ``prog`` (``python -m keras_inst.data``); the first
    parser built is the verb's own and takes ``name``, and a sub-command parser whose name starts
    with that parser's takes ``name`` in its place (``keras-inst data inspect``).
    """
    init = argparse.ArgumentParser.__init__
    top: list[str] = []

    def renamed_init(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        if not top:
            top.append(self.prog)
            self.prog = name
        elif self.prog.startswith(top[0] + " "):
            self.prog = name + self.prog[len(top[0]):]

    argparse.ArgumentParser.__init__ = renamed_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.__init__ = init  # type: ignore[method-assign]


def verb_main(verb: str) -> Callable[[Sequence[str] | None], int | None]:
    """The ``main(argv)`` of a verb (imports its module)."""
    return importlib.import_module(VERBS[verb].module).main


def main(argv: Sequence[str] | None = None) -> int:
    """``keras-inst <verb> [options]``: run the verb's ``main`` on the options; its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        (sys.stdout if args else sys.stderr).write(usage())
        return 0 if args else EXIT_BAD_ARGUMENTS
    if args[0] == "--version":
        from keras_inst import __version__

        print(f"{PROG} {__version__}")
        return 0
    verb, rest = args[0], args[1:]
    if verb not in VERBS:
        sys.stderr.write(f"{PROG}: unknown verb {verb!r}; the verbs are:\n{verb_list()}\n")
        return EXIT_BAD_ARGUMENTS
    run = verb_main(verb)
    with program_name(f"{PROG} {verb}"):
        status = run(rest)
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
