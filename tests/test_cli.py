"""keras-inst <verb>: the verb list, each verb's own help under its new name, exit statuses, the
module forms (python -m keras_inst.<verb>) and a dispatcher that imports no TensorFlow."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import subprocess
import sys

import pytest
import tomllib

from keras_inst import cli

OLD_SCRIPTS = ("train", "data", "evaluate", "pretrain", "tune", "export", "predict")


def test_help_lists_every_verb_with_one_line(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: keras-inst <verb> [options]")
    listed = [line.split()[0] for line in out.split("verbs:\n")[1].split("\n\n")[0].splitlines()]
    assert listed == list(cli.VERBS) == ["train", "evaluate", "tune", "pretrain", "export", "predict", "serve", "release", "data", "taxonomy", "levels"]
    for name, verb in cli.VERBS.items():
        assert f"  {name:<8}  {verb.summary}\n" in out


def test_no_verb_or_an_unknown_verb_exits_2_with_the_list(capsys):
    assert cli.main([]) == 2
    assert "verbs:\n  train " in capsys.readouterr().err
    assert cli.main(["predcit", "x.wav"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-inst: unknown verb 'predcit'; the verbs are:\n  train ")
    assert "  predict   recognise instruments" in err


@pytest.mark.parametrize("verb", list(cli.VERBS))
def test_every_verb_shows_its_own_help_under_its_new_name(verb, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([verb, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: keras-inst {verb} ")
    assert "python -m" not in out.split("\n\n")[0]  # the usage block names the verb, not the module
    assert argparse.ArgumentParser(prog="other").prog == "other"  # the renaming ended with the call


def test_sub_commands_and_argument_errors_carry_the_verb(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["data", "inspect", "--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("usage: keras-inst data inspect ")
    with pytest.raises(SystemExit) as done:
        cli.main(["predict", "song.wav", "--hop", "soon"])  # argparse's exit 2
    assert done.value.code == 2
    assert "keras-inst predict: error: argument --hop: invalid float value: 'soon'" in capsys.readouterr().err


def test_the_verbs_exit_status_is_returned(tmp_path, capsys):
    missing = tmp_path / "missing.wav"
    assert cli.main(["predict", str(missing), "--model", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {missing} does not exist\n"
    assert cli.main(["taxonomy", "--markdown"]) == 0  # a main returning 0
    assert capsys.readouterr().out.startswith("# Instrument taxonomy\n")


def test_the_name_is_restored_when_a_verb_raises():
    with pytest.raises(RuntimeError), cli.program_name("keras-inst x"):
        assert argparse.ArgumentParser(prog="python -m x").prog == "keras-inst x"
        assert argparse.ArgumentParser(prog="python -m x sub").prog == "keras-inst x sub"
        assert argparse.ArgumentParser(prog="unrelated").prog == "unrelated"
        raise RuntimeError
    assert argparse.ArgumentParser(prog="python -m x").prog == "python -m x"


@pytest.mark.parametrize("verb", list(cli.VERBS))
def test_the_module_forms_keep_working(verb):
    """`python -m <module form>` runs the same main as the verb (a package needs a __main__)."""
    form = cli.VERBS[verb].module_form
    spec = importlib.util.find_spec(form)
    assert spec is not None, form
    if spec.submodule_search_locations is not None:  # a package: python -m runs its __main__
        assert importlib.util.find_spec(f"{form}.__main__") is not None, f"{form} has no __main__"
        assert importlib.import_module(cli.VERBS[verb].module).main is cli.verb_main(verb)
    else:
        assert importlib.import_module(form).main is cli.verb_main(verb)


def test_python_m_taxonomy_markdown_prints_the_docs_page(repo_dir):
    """docs/taxonomy.md gives this command; the package had no __main__, so it failed."""
    want = (repo_dir / "docs" / "taxonomy.md").read_text(encoding="utf-8")
    for command in (["-m", "keras_inst.taxonomy", "--markdown"], ["-m", "keras_inst", "taxonomy", "--markdown"]):
        proc = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=120, cwd=repo_dir)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == want, command


def test_the_dispatcher_imports_no_tensorflow(repo_dir):
    code = (
        "import sys\n"
        "from keras_inst import cli\n"
        "heavy = lambda: sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'})\n"
        "before = heavy()\n"
        "try:\n"
        "    cli.main(['predict', '--help'])\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "print('RESULT', before, code, heavy())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "RESULT [] 0 []"
    proc = subprocess.run([sys.executable, "-m", "keras_inst", "nope"], capture_output=True, text=True, timeout=120, cwd=repo_dir)
    assert proc.returncode == 2 and "unknown verb 'nope'" in proc.stderr


def test_pyproject_installs_the_command_and_keeps_the_old_scripts(repo_dir):
    scripts = tomllib.loads((repo_dir / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["keras-inst"] == "keras_inst.cli:main"
    for name in OLD_SCRIPTS:
        module, func = scripts[f"keras-inst-{name}"].split(":")
        assert importlib.util.find_spec(module) is not None and func == "main", name
