"""The recipe wizard: answers → recipe (pure), commented TOML, budget preview, and real prompts over a pipe."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from typer.testing import CliRunner

from mudkd.cli import wizard as cli_wizard
from mudkd.cli.app import app
from mudkd.errors import RecipeError
from mudkd.recipe import Recipe, build_recipe
from mudkd.recipe.load import recipe_to_toml
from mudkd.recipe.wizard import (
    QUESTIONS,
    answers_to_recipe,
    budget_preview,
    complete_answers,
    render_commented_toml,
    split_sets,
)
from tests.helpers import FIXTURE_GLUE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

runner = CliRunner()

ENTER, UP, DOWN, CLEAR, CTRL_C = "\r", "\x1b[A", "\x1b[B", "\x15", "\x03"


# ---------------------------------------------------------------------------------------------------------------
# The questions as data


def test_questions_are_well_formed():
    keys = [question.key for question in QUESTIONS]
    assert len(keys) == len(set(keys))
    recipe_keys = set(_flat(Recipe().model_dump()))
    for question in QUESTIONS:
        assert question.kind in {"text", "select", "confirm", "int", "float"}
        if "." in question.key:
            assert question.key in recipe_keys, question.key
            assert question.help, f"{question.key} has no schema description"
        if question.kind == "select":
            values = [choice.value for choice in question.choices]
            assert question.default_for({}) in values
            assert all(choice.title.startswith(choice.value) for choice in question.choices)
    sections = {question.section for question in QUESTIONS}
    assert {"Task", "Teacher", "Student", "Training", "Knowledge budget", "Output"} <= sections


def test_scheme_choices_explain_the_paper():
    titles = {choice.value: choice.title for question in QUESTIONS for choice in question.choices}
    assert "[SEP]" in titles["attention_no_sep"] and "paper" in titles["attention_no_sep"]
    assert "teacher layer 10" in titles["t_top10"] and "round(l*L_T/L_S)" in titles["standard"]
    assert "largest-magnitude" in titles["importance_mask_dynamic"]
    assert "evenly spaced" in titles["uniform_mask"] and "random" in titles["rand_mask"]


def test_recipe_layer_imports_no_ui_or_torch():
    code = (
        "import sys, mudkd.recipe.wizard\n"
        "print(sorted(m for m in ('torch', 'typer', 'rich', 'questionary', 'prompt_toolkit') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------------------
# answers → recipe


def test_default_answers_give_a_pruned_full_hsk_recipe():
    recipe = answers_to_recipe({})
    assert recipe.task.name == "sst-2" and recipe.task.data_dir == "glue_data/SST-2"
    assert recipe.teacher.pretrained == "bert-base-uncased" and recipe.student.model is None
    assert (recipe.hsk.config_3d, recipe.hsk.keep_layers, recipe.hsk.keep_tokens) == (None, None, None)
    assert recipe.hsk.layer_scheme is None and recipe.hsk.keep_hidden == 1.0
    assert recipe.output.dir == "runs/sst-2-rosita" and recipe.hsk.hsk_store is None


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        pytest.param(
            {
                "student_kind": "pruned",
                "prune.num_layers": 4,
                "prune.keep_heads": 4,
                "prune.ffn_hidden_dim": 512,
                "prune.emb_hidden_dim": -1,
            },
            {
                "student.model": None,
                "prune.num_layers": 4,
                "prune.keep_heads": 4,
                "prune.ffn_hidden_dim": 512,
                "prune.emb_hidden_dim": -1,
                "output.dir": "runs/sst-2-rosita",
            },
            id="pruned-rosita-student",
        ),
        pytest.param(
            {"student_kind": "pretrained", "student.model": "models/tinybert-4l", "prune.num_layers": 3},
            {"student.model": "models/tinybert-4l", "prune.num_layers": 6, "output.dir": "runs/sst-2-tinybert"},
            id="tinybert-student-ignores-prune-answers",
        ),
        pytest.param(
            {"student.model": "models/tinybert-4l"},
            {"student.model": "models/tinybert-4l"},
            id="a-student-model-implies-tinybert",
        ),
        pytest.param(
            {"budget_mode": "3d", "hsk.config_3d": "1l_10t_0.1h"},
            {
                "hsk.config_3d": "1l_10t_0.1h",
                "hsk.layer_scheme": "t_top8",
                "hsk.token_scheme": "attention_no_sep",
                "hsk.hidden_scheme": "importance_mask_dynamic",
                "hsk.keep_tokens": None,
            },
            id="3d-config-readme-schemes",
        ),
        pytest.param(
            {"hsk.config_3d": "2l_20t_1e-2h"},
            {"hsk.config_3d": "2l_20t_1e-2h", "hsk.layer_scheme": "t_top8"},
            id="3d-config-alone-selects-3d-mode",
        ),
        pytest.param(
            {"budget_mode": "custom", "hsk.keep_layers": 1, "layer_scheme": "t_top10"},
            {"hsk.keep_layers": 1, "hsk.layer_scheme": "t_top10", "hsk.keep_tokens": None, "hsk.keep_hidden": 1.0},
            id="depth-only",
        ),
        pytest.param(
            {
                "budget_mode": "custom",
                "hsk.keep_tokens": 10,
                "hsk.token_scheme": "left_first",
                "layer_scheme": "standard",
            },
            {
                "hsk.keep_tokens": 10,
                "hsk.token_scheme": "left_first",
                "hsk.layer_scheme": None,
                "hsk.keep_layers": None,
            },
            id="length-only-standard-mapping",
        ),
        pytest.param(
            {
                "budget_mode": "custom",
                "hsk.keep_hidden": 0.1,
                "hsk.hidden_scheme": "uniform_mask",
                "layer_scheme": "other",
                "layer_scheme_other": "t_top11",
            },
            {"hsk.keep_hidden": 0.1, "hsk.hidden_scheme": "uniform_mask", "hsk.layer_scheme": "t_top11"},
            id="width-only-custom-layer-scheme",
        ),
        pytest.param(
            {
                "task.name": "custom",
                "task.train_file": "d/train.jsonl",
                "task.validation_file": "d/dev.jsonl",
                "task.text_columns": "question, answer",
                "task.label_column": "score",
                "task.task_type": "regression",
            },
            {
                "task.name": "custom",
                "task.train_file": "d/train.jsonl",
                "task.text_columns": ["question", "answer"],
                "task.label_column": "score",
                "task.task_type": "regression",
                "task.data_dir": None,
            },
            id="custom-data-files",
        ),
        pytest.param(
            {"task.name": "rt-snippets", "task.max_seq_length": 64},
            {"task.name": "rt-snippets", "task.data_dir": None, "task.max_seq_length": 64},
            id="offline-demo-needs-no-data",
        ),
        pytest.param(
            {"task.name": "mnli-mm", "batch_size": 16, "hsk.num_train_epochs": 3},
            {
                "task.data_dir": "glue_data/MNLI",
                "finetune.train_batch_size": 16,
                "hsk.train_batch_size": 16,
                "pred.train_batch_size": 16,
                "hsk.num_train_epochs": 3.0,
                "score.train_batch_size": 32,
            },
            id="training-settings",
        ),
        pytest.param(
            {"use_store": True, "output.dir": "out/run/"},
            {
                "cache.output_dir": "out/run/store",
                "hsk.hsk_store": "out/run/store",
                "pred.logits_store": "out/run/store",
            },
            id="teacher-free-store",
        ),
    ],
)
def test_answers_to_recipe(answers, expected):
    recipe = answers_to_recipe(answers)
    values = _flat(recipe.model_dump())
    assert {key: values[key] for key in expected} == expected
    assert build_recipe(None, flags=values) == recipe  # a valid recipe, the same one a command would build


@pytest.mark.parametrize(
    ("answers", "fragments"),
    [
        ({"hsk.keep_tokenz": 10}, ["hsk.keep_tokenz: unknown answer (did you mean 'hsk.keep_tokens'?)"]),
        ({"hsk.keep_tokens": 500}, ["hsk.keep_tokens: must be between 1 and task.max_seq_length = 128"]),
        ({"hsk.keep_layers": 8}, ["hsk.keep_layers: must be between 1 and 7"]),
        ({"hsk.config_3d": "1l_10t"}, ["hsk.config_3d: config_3d: cannot parse"]),
        ({"hsk.config_3d": "1l_300t_0.1h"}, ["hsk.config_3d: must be between 1 and task.max_seq_length"]),
        ({"hsk.keep_hidden": 1.5}, ["hsk.keep_hidden: must be in (0, 1]"]),
        ({"layer_scheme": "other", "layer_scheme_other": "top10", "budget_mode": "custom"}, ["layer_scheme_other"]),
        ({"task.name": "custom", "task.train_file": "train.parquet"}, ["task.train_file: use a .csv"]),
        ({"task.name": "custom", "task.text_columns": "a,b,c"}, ["task.text_columns: give one column"]),
        ({"prune.emb_hidden_dim": 0}, ["prune.emb_hidden_dim: must be >= 1, or -1"]),
        ({"budget_mode": "2d"}, ["budget_mode: must be one of full, 3d, custom"]),
        ({"task.name": "glue"}, ["task.name: must be one of"]),
        ({"prune.num_layers": "six", "batch_size": 0}, ["prune.num_layers: enter a whole number", "batch_size"]),
    ],
)
def test_bad_answers_raise_recipe_error_with_every_problem(answers, fragments):
    with pytest.raises(RecipeError) as caught:
        answers_to_recipe(answers)
    problems = caught.value.problems
    assert len(problems) == len(fragments)
    for problem, fragment in zip(problems, fragments, strict=True):
        assert problem.startswith("wizard answers: ") and fragment in problem


def test_answers_are_coerced_from_set_values():
    answers = complete_answers({"task.max_seq_length": "64", "use_store": "yes", "task.text_columns": ["a"]})
    assert answers["task.max_seq_length"] == 64 and answers["use_store"] is True


def test_split_sets_separates_answers_from_recipe_overrides():
    presets, overrides = split_sets(["student_kind=pretrained", "hsk.keep_tokens=10", "pred.temperature=2.0"])
    assert presets == {"student_kind": "pretrained", "hsk.keep_tokens": 10}
    assert overrides == ["pred.temperature=2.0"]


# ---------------------------------------------------------------------------------------------------------------
# Budget preview (method.md §9, §12)


def test_budget_preview_3d_rosita6():
    preview = budget_preview({"hsk.config_3d": "1l_10t_0.1h"}, teacher_layers=12, teacher_hidden=768, student_layers=6)
    assert preview["layers"] == [{"student": 6, "teacher": 8, "attention": 7}]
    assert preview["keep_tokens"] == 10 and preview["hsk_fraction"] == pytest.approx(0.00112, abs=5e-6)
    assert preview["train_examples"] == 67349 and preview["store_bytes"] == 67349 * preview["bytes_per_example"]


def test_budget_preview_tinybert_t_top10_mapping():
    answers = {"student.model": "tiny", "budget_mode": "custom", "layer_scheme": "t_top10"}
    preview = budget_preview(answers, teacher_layers=12, teacher_hidden=768, student_layers=4)
    assert [layer["teacher"] for layer in preview["layers"]] == [0, 2, 5, 8, 10]
    assert preview["hsk_fraction"] == 1.0


# ---------------------------------------------------------------------------------------------------------------
# Commented TOML


@pytest.mark.parametrize(
    "answers",
    [
        {},
        {"hsk.config_3d": "1l_10t_0.1h", "use_store": True},
        {"student.model": "models/tiny", "budget_mode": "custom", "hsk.keep_tokens": 20, "hsk.keep_hidden": 0.25},
        {
            "task.name": "custom",
            "task.train_file": "a.csv",
            "task.validation_file": "b.csv",
            "task.text_columns": "s1,s2",
        },
    ],
)
def test_commented_toml_parses_back_to_an_equal_recipe(answers, tmp_path):
    recipe = answers_to_recipe(answers)
    path = tmp_path / "sub" / "recipe.toml"
    text = render_commented_toml(recipe, header="written by a test\nsecond line", folder=path.parent)
    path.parent.mkdir()
    path.write_text(text)
    # relative path answers (relative to the working directory) are written relative to the file's folder, so the
    # file, which resolves them against its folder, means the same paths
    assert recipe_to_toml(build_recipe(path)) == recipe_to_toml(recipe)
    assert Recipe.model_validate(tomllib.loads(render_commented_toml(recipe))) == recipe
    lines = text.splitlines()
    assert lines[:2] == ["# written by a test", "# second line"]
    keys = [index for index, line in enumerate(lines) if line and not line.startswith(("#", "["))]
    assert keys
    for index in keys:
        assert lines[index - 1].startswith("# ") and len(lines[index - 1]) > 4, lines[index]
    assert "# Width mask:" in text and "One of: linear, constant, cosine." in text


# ---------------------------------------------------------------------------------------------------------------
# Real prompts over a pipe


@pytest.fixture
def pipe(monkeypatch):
    """Drive the wizard's real questionary prompts with keystrokes; extra prompts hit EOF instead of hanging."""
    with create_pipe_input() as keys:
        monkeypatch.setattr(cli_wizard, "PROMPT_IO", {"input": keys, "output": DummyOutput()})
        yield keys


def _send(keys, *strokes):
    keys.send_text("".join(strokes))
    keys.close()  # no more input: a prompt the test did not expect raises EOFError


def test_ask_accepts_every_default_with_enter(pipe):
    applicable = [q for q in QUESTIONS if q.applies(complete_answers({}))]
    _send(pipe, ENTER * len(applicable))
    answers = cli_wizard.ask(QUESTIONS, input=pipe, output=DummyOutput())
    assert answers_to_recipe(answers) == answers_to_recipe({})


def test_ask_tinybert_custom_budget_with_arrows_and_a_re_asked_answer(pipe):
    _send(
        pipe,
        ENTER,  # task: sst-2
        ENTER,  # data dir
        CLEAR,
        "abc",
        ENTER,
        CLEAR,
        "64",
        ENTER,  # max_seq_length: invalid, re-asked, then 64
        ENTER,  # teacher
        DOWN,
        ENTER,  # student: pretrained (TinyBERT-style)
        CLEAR,
        "models/tiny",
        ENTER,
        ENTER,
        ENTER,
        ENTER,
        ENTER,  # epochs x3, batch size
        DOWN,
        DOWN,
        ENTER,  # budget: custom
        ENTER,  # layer scheme: t_top10
        CLEAR,
        "2",
        ENTER,  # keep layers
        CLEAR,
        "300",
        ENTER,
        CLEAR,
        "16",
        ENTER,  # keep tokens: > max_seq_length is re-asked
        DOWN,
        DOWN,
        ENTER,  # token scheme: left_first
        CLEAR,
        "0.5",
        ENTER,  # keep hidden
        DOWN,
        ENTER,  # hidden scheme: uniform_mask
        ENTER,  # output dir
        ENTER,  # store: no
    )
    answers = cli_wizard.ask(QUESTIONS, input=pipe, output=DummyOutput())
    recipe = answers_to_recipe(answers)
    assert recipe.task.max_seq_length == 64 and recipe.student.model == "models/tiny"
    assert (recipe.hsk.layer_scheme, recipe.hsk.keep_layers, recipe.hsk.keep_tokens) == ("t_top10", 2, 16)
    assert (recipe.hsk.token_scheme, recipe.hsk.keep_hidden, recipe.hsk.hidden_scheme) == (
        "left_first",
        0.5,
        "uniform_mask",
    )
    assert recipe.output.dir == "runs/sst-2-tinybert"


def test_wizard_command_through_prompts_writes_a_valid_commented_recipe(pipe, tmp_path):
    target = tmp_path / "conf" / "cola.toml"
    _send(
        pipe,
        UP,
        ENTER,  # task: cola
        CLEAR,
        str(FIXTURE_GLUE / "CoLA"),
        ENTER,  # data dir: an existing CoLA folder (recipe validate checks it)
        ENTER,  # max_seq_length 128
        ENTER,  # teacher bert-base-uncased
        ENTER,  # student: pruned
        ENTER,
        ENTER,
        ENTER,
        ENTER,  # layers, heads, FFN, embedding rank
        ENTER,
        ENTER,
        ENTER,
        ENTER,  # epochs x3, batch size
        DOWN,
        ENTER,  # budget: 3d
        ENTER,  # 1l_10t_0.1h
        ENTER,  # layer scheme: t_top8
        ENTER,
        ENTER,  # token and hidden scheme
        CLEAR,
        str(tmp_path / "runs"),
        ENTER,
        "y",  # teacher-free store
        "y",  # write?
    )
    result = runner.invoke(app, ["wizard", "-o", str(target), "--set", "pred.temperature=2.0"])
    assert result.exit_code == 0, result.output
    assert f"Wrote {target}" in result.stdout and f"mudkd pipeline {target}" in result.stdout
    assert "Knowledge budget" in result.stdout and "0.112%" in result.stdout
    recipe = build_recipe(target)
    assert recipe.task.name == "cola" and recipe.hsk.config_3d == "1l_10t_0.1h"
    assert recipe.hsk.hsk_store == f"{tmp_path / 'runs'}/store" and recipe.pred.temperature == 2.0
    assert runner.invoke(app, ["recipe", "validate", str(target)]).exit_code == 0
    assert [p.name for p in target.parent.iterdir()] == ["cola.toml"]  # no temporary file left


def test_ctrl_c_aborts_and_writes_nothing(pipe, tmp_path):
    target = tmp_path / "recipe.toml"
    _send(pipe, ENTER, ENTER, CTRL_C)
    result = runner.invoke(app, ["wizard", "-o", str(target)])
    assert result.exit_code == 130
    assert "Aborted." in result.stderr
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_declining_the_confirmation_writes_nothing(pipe, tmp_path):
    target = tmp_path / "recipe.toml"
    applicable = [q for q in QUESTIONS if q.applies(complete_answers({}))]
    _send(pipe, ENTER * len(applicable), "n")
    result = runner.invoke(app, ["wizard", "-o", str(target)])
    assert result.exit_code == 1 and "Nothing written." in result.stderr
    assert not target.exists()


def test_end_of_input_aborts_instead_of_hanging(pipe, tmp_path):
    _send(pipe, ENTER)
    result = runner.invoke(app, ["wizard", "-o", str(tmp_path / "r.toml")])
    assert result.exit_code == 130 and not (tmp_path / "r.toml").exists()


def _flat(data, prefix=""):
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
