"""Declarative commands: one definition per option (with its recipe key), choices in --help, old spellings kept,
and command bodies short enough to read at a glance."""

from __future__ import annotations

import ast
import inspect
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mudkd.cli import options as o
from mudkd.cli.app import app
from tests.helpers import make_teacher_and_student

runner = CliRunner()


def test_overrides_map_given_options_to_recipe_keys():
    def command(
        learning_rate: o.LrOpt = None,
        student_layers: o.StudentLayersOpt = None,
        att_ttop12: o.AttTtop12Opt = None,
        device: o.DeviceOpt = None,
        overwrite: o.OverwriteOpt = False,
        seed: o.SeedOpt = None,
        json_: o.JsonOpt = False,
    ) -> None: ...

    Device = o.schema_choices("training.device")
    values = {
        "learning_rate": 1e-4,
        "student_layers": "0, 2",
        "att_ttop12": "yes",
        "device": Device("cpu"),
        "overwrite": False,
        "seed": None,
        "json_": True,
    }
    assert o.overrides(command, values, stage="hsk") == {
        "hsk.learning_rate": 1e-4,  # {stage} is the command's stage
        "hsk.student_layers": [0, 2],  # converted
        "hsk.att_ttop12": True,
        "training.device": "cpu",  # an Enum choice becomes its plain value
    }  # not given (None, a False flag) and keyless options (--json) set nothing
    assert o.overrides(command, {"overwrite": True}, stage="pred") == {"output.overwrite": True}


def test_choices_come_from_the_recipe_schema():
    from mudkd.recipe.schema import Recipe

    for key in (
        "hsk.token_scheme",
        "hsk.hidden_scheme",
        "hsk.mag_scope",
        "hsk.mask_mode",
        "cache.dtype",
        "training.device",
    ):
        section, name = key.split(".")
        allowed = {str(choice.value) for choice in o.schema_choices(key)}
        for value in allowed:  # every listed choice validates, and nothing else is listed
            Recipe.model_validate({section: {name: value}})
        assert allowed


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["distill", "hsk"], ["left_first", "attention_no_sep", "importance_mask_dynamic", "teacher_only"]),
        (["distill", "cache"], ["float16", "float32", "--teacher-batch-size"]),
        (["finetune"], ["auto", "cuda", "mps"]),
    ],
)
def test_help_lists_the_choices(command, shown):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert all(word in result.stdout for word in shown), result.stdout


def test_a_bad_choice_is_one_error_line_naming_the_choices():
    result = runner.invoke(app, ["distill", "hsk", "--token-scheme", "middle", "--dry-run"])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "middle" in errors[0] and "left_first" in errors[0], result.stderr


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_teacher_and_student(tmp_path_factory.mktemp("options"))


@pytest.mark.parametrize(
    ("new", "old"),
    [
        (["score", "--teacher-model", "{teacher}"], ["score", "--model-name-or-path", "{teacher}"]),
        (
            ["prune", "--teacher-model", "{teacher}", "--scores", "{teacher}"],
            ["prune", "--model-path", "{teacher}", "--scores", "{teacher}"],
        ),
    ],
)
def test_old_spellings_are_hidden_aliases_that_still_work(models, tmp_path, new, old):
    """``--dry-run --json`` shows what a command would do: the old spelling must mean exactly the new one."""

    def plan(words):
        args = [word.format(teacher=models / "teacher") for word in words]
        return runner.invoke(app, [*args, "-o", str(tmp_path / "out"), "--dry-run", "--json"])

    new_result, old_result = plan(new), plan(old)
    assert new_result.exit_code == old_result.exit_code
    assert new_result.stdout == old_result.stdout and new_result.stderr == old_result.stderr


def test_aliases_set_the_same_recipe_keys():
    from mudkd.cli.distill import cache_cli
    from mudkd.cli.prune import prune_cli
    from mudkd.cli.score import score_cli

    assert o.overrides(cache_cli, {"batch_size": 7}) == o.overrides(cache_cli, {"teacher_batch_size": 7})
    assert o.overrides(cache_cli, {"batch_size": 7}) == {"cache.batch_size": 7}
    assert o.overrides(score_cli, {"model_name_or_path": "t"}) == {"teacher.model": "t"}
    assert o.overrides(prune_cli, {"model_path": "t"}) == o.overrides(prune_cli, {"teacher_model": "t"})
    result = runner.invoke(app, ["distill", "cache", "--batch-size", "0", "--dry-run"])
    assert result.exit_code == 2 and "cache.batch_size" in result.stderr


def _command_functions():
    for path in sorted(Path(o.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_cli"):
                yield path.name, node


def test_command_bodies_are_a_few_lines():
    """A command declares options and calls one core function; anything longer belongs in a helper or the core."""
    long = []
    for name, node in _command_functions():
        body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body  # without the docstring
        lines = body[-1].end_lineno - body[0].lineno + 1
        if lines > 15:
            long.append(f"{name}:{node.name} ({lines} lines)")
    assert not long, long
    assert len(list(_command_functions())) >= 12


def test_every_recipe_option_is_declared_once():
    """No module but cli/options.py spells a recipe-key option that every command shares."""
    source = Path(o.__file__).parent
    shared = [
        "--teacher-model",
        "--student-model",
        "--task-name",
        "--data-dir",
        "--learning-rate",
        "--seed",
        "--output-dir",
    ]
    for path in source.glob("*.py"):
        if path.name == "options.py":
            continue
        text = path.read_text()
        for flag in shared:
            assert f'"{flag}"' not in text, f"{path.name} declares {flag} again"
    assert inspect.getsource(o).count('"--teacher-model"') == 1


# ---------------------------------------------------------------------------------------------------------------
# Help text: the schema's descriptions and defaults, one source


def _keyed_options():
    """Every option of every command that carries a recipe key: ``(command, parameter, Key, typer OptionInfo)``."""
    import typing

    from mudkd.cli import app as app_module

    del app_module  # imported for its side effect: every command module is loaded
    for name, module in sorted(sys.modules.items()):
        if not name.startswith("mudkd.cli.") or name == "mudkd.cli.options":
            continue
        for attribute in vars(module).values():
            if not (inspect.isfunction(attribute) and attribute.__name__.endswith("_cli")):
                continue
            hints = typing.get_type_hints(attribute, include_extras=True)
            for parameter, hint in hints.items():
                metadata = getattr(hint, "__metadata__", ())
                key = next((m for m in metadata if isinstance(m, o.Key)), None)
                option = next((m for m in metadata if hasattr(m, "param_decls")), None)
                if key is not None and option is not None:
                    yield attribute.__name__, parameter, key, option


def test_every_keyed_option_takes_its_help_from_the_schema():
    """An option's help is its field's description (plus the flag's own note): never a second wording."""
    from mudkd.recipe.schema import Recipe
    from mudkd.recipe.search import SearchSettings
    from mudkd.recipe.sweep import Sweep

    seen = 0
    for command, parameter, key, option in _keyed_options():
        schema = SearchSettings if key.name.startswith("search.") else Sweep if "." not in key.name else Recipe
        description = next(iter(o.schema_fields(key.name, schema).values())).description
        assert description and option.help.startswith(description), (command, parameter, option.help)
        seen += 1
    assert seen > 100  # every stage command, search and sweep


def test_help_shows_each_default_from_the_schema():
    assert o.schema_help("task.max_seq_length") == ("Tokens per example after padding/truncation.", "128")
    assert o.schema_help("hsk.token_scheme")[1] == "attention_no_sep"
    assert o.schema_help("hsk.keep_tokens")[1] is False  # no default (None = all tokens): none shown
    # an option of the command's stage lists every stage's default where they differ
    assert o.schema_help("{stage}.learning_rate")[1] == "finetune 2e-05, hsk 5e-05, pred 2e-05"
    assert o.schema_help("{stage}.train_batch_size")[1] == "32"
    result = runner.invoke(app, ["finetune", "--help"], env={"COLUMNS": "200"})
    assert "Tokens per example after padding/truncation. [default: (128)]" in result.stdout


def test_search_and_sweep_flags_are_keyed_options():
    from mudkd.cli.search import search_cli
    from mudkd.cli.sweep import sweep_cli

    given = {"tolerance": 1.0, "seeds": 2, "output_dir": "out", "train_final": True}
    assert o.overrides(search_cli, given) == {"search.tolerance": 1.0, "search.seeds": 2, "search.output_dir": "out"}
    flags = o.overrides(sweep_cli, {"output_dir": "out", "text_columns": "a,b", "max_train_samples": 8})
    assert flags == {"output_dir": "out", "task.text_columns": ["a", "b"], "task.max_train_samples": 8}


@pytest.mark.parametrize("command", [["finetune"], ["pipeline"], ["push"], ["outputs", "adopt"], ["predict"]])
def test_flags_that_take_no_value_show_no_type(command):
    """typer prints "<bool>" beside a flag unless told otherwise; only typer's own --help keeps it."""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    shown = [line for line in result.stdout.splitlines() if "<bool>" in line]
    assert all("--help" in line for line in shown), shown


def test_pipeline_takes_max_seq_length():
    result = runner.invoke(app, ["pipeline", "--help"], env={"COLUMNS": "200"})
    assert "--max-seq-length" in result.stdout


def test_recipe_list_summaries_are_whole_sentences():
    result = runner.invoke(app, ["recipe", "list", "--json"])
    summaries = {row["name"]: row["summary"] for row in json.loads(result.stdout)["recipes"]}
    assert summaries and all(text.endswith((".", "?", ")")) for text in summaries.values()), summaries
    assert summaries["glue_rosita"].endswith("then prediction distillation.")  # three comment lines, one sentence
