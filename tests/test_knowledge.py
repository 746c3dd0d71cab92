"""One vocabulary of "which knowledge": every command shows the same bytes, and no module spells the facts again.

The byte test runs the real wizard functions and the real ``distill hsk`` / ``distill cache`` commands on tiny
models (tests/helpers.py) and a tiny SST-2-format data set written here; nothing outside the repository is needed.
The source scans are the grep a reviewer would run: scheme names, the budget regexes and the int16 limit are
spelled in :mod:`mudkd.knowledge` only.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.knowledge import (
    HiddenScheme,
    MagScope,
    MaskMode,
    StoreDtype,
    TokenScheme,
    budget_summary,
    config_num_labels,
    model_shape,
    summary_rows,
    task_num_labels,
)
from mudkd.knowledge.layout import INT16_MAX
from mudkd.recipe.overrides import apply_overrides
from mudkd.recipe.wizard import answers_to_recipe, recipe_budget
from tests.helpers import REPO_ROOT, budget_of, make_teacher_and_student, write_sst2_slice

runner = CliRunner()
PACKAGE = REPO_ROOT / "mudkd"
TRAIN_ROWS, TRAIN_SAMPLES, SEQ_LENGTH = 24, 20, 24


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("knowledge")
    make_teacher_and_student(root / "models")
    return {"models": root / "models", "data": write_sst2_slice(root / "SST-2", TRAIN_ROWS, 8), "root": root}


# The same budget three ways: wizard answers, command-line flags.
BUDGETS = {
    "3d-mag": (
        {"budget_mode": "3d", "hsk.config_3d": "1l_10t_0.1h"},
        ["--config-3d", "1l_10t_0.1h"],
    ),
    "uniform-left": (
        {
            "budget_mode": "custom",
            "hsk.keep_tokens": 8,
            "hsk.token_scheme": "left_first",
            "hsk.keep_hidden": 0.25,
            "hsk.hidden_scheme": "uniform_mask",
        },
        [
            "--keep-tokens",
            "8",
            "--token-scheme",
            "left_first",
            "--keep-hidden",
            "0.25",
            "--hidden-scheme",
            "uniform_mask",
        ],
    ),
    "full": ({"budget_mode": "full"}, []),
}


def wizard_summary(setup, answers) -> dict:
    """The budget summary the wizard shows for these answers, for the tiny teacher and student."""
    models = setup["models"]
    recipe = answers_to_recipe(
        {
            "task.name": "sst-2",
            "task.data_dir": str(setup["data"]),
            "task.max_seq_length": SEQ_LENGTH,
            "teacher.pretrained": str(models / "teacher"),
            "prune.num_layers": 2,
            "layer_scheme": "standard",
            "output.dir": str(setup["root"] / "wizard-out"),
            **answers,
        }
    )
    recipe = apply_overrides(recipe, {"task.max_train_samples": TRAIN_SAMPLES})
    teacher = model_shape(json.loads((models / "teacher" / "config.json").read_text()))
    student = model_shape(json.loads((models / "student" / "config.json").read_text()))
    return recipe_budget(
        recipe, teacher_layers=teacher.layers, teacher_hidden=teacher.hidden, student_layers=student.layers
    )


def distill(setup, stage: str, flags: list[str], out: Path, *extra: str):
    """Run ``mudkd distill STAGE`` on the tiny models and data with the budget ``flags``."""
    models = setup["models"]
    data = ["--task-name", "sst-2", "--data-dir", str(setup["data"]), "--max-train-samples", str(TRAIN_SAMPLES)]
    args = ["distill", stage, "--teacher-model", str(models / "teacher"), "--student-model", str(models / "student")]
    args += [*data, "--max-seq-length", str(SEQ_LENGTH), *flags, "-o", str(out), *extra, "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def dry_run(setup, stage: str, flags: list[str]) -> dict:
    return distill(setup, stage, flags, setup["root"] / f"out-{stage}", "--dry-run")["budget"]


COMPARED = (
    "layers",
    "keep_tokens",
    "keep_hidden",
    "elements_per_example",
    "hsk_fraction",
    "num_labels",
    "value_dtype",
    "hsk_bytes_per_example",
    "logits_bytes_per_example",
    "bytes_per_example",
    "num_train_examples",
    "train_set_bytes",
)


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_wizard_hsk_dry_run_and_cache_dry_run_show_the_same_bytes(setup, name):
    answers, flags = BUDGETS[name]
    wizard = wizard_summary(setup, answers)
    hsk = dry_run(setup, "hsk", flags)
    cache = dry_run(setup, "cache", flags)
    for key in COMPARED:
        assert wizard[key] == hsk[key] == cache[key], key
    # The logits are counted everywhere: 2 classes of float32 per example, for every training example used.
    assert hsk["num_labels"] == 2 and hsk["logits_bytes_per_example"] == 8
    assert hsk["bytes_per_example"] == hsk["hsk_bytes_per_example"] + 8
    assert hsk["num_train_examples"] == TRAIN_SAMPLES
    assert hsk["train_set_bytes"] == TRAIN_SAMPLES * hsk["bytes_per_example"]
    assert wizard["store_bytes"] == hsk["train_set_bytes"] and wizard["train_examples"] == TRAIN_SAMPLES


def test_the_summary_counts_what_the_store_really_holds(setup):
    """The bytes every summary shows are the bytes per example of the store ``distill cache`` writes."""
    flags = BUDGETS["3d-mag"][1]
    planned = dry_run(setup, "cache", flags)
    store = setup["root"] / "store"
    document = distill(setup, "cache", flags, store)
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["bytes_per_example"] == planned["bytes_per_example"]
    assert document["budget"]["bytes_per_example"] == planned["bytes_per_example"]
    assert document["bytes_per_example"] == planned["bytes_per_example"]  # measured: store bytes / examples


# -- one rule per fact ---------------------------------------------------------------------------------------------


def test_the_task_table_is_the_one_source_of_task_facts():
    from mudkd.core.data import GLUE as LOADER_TABLE
    from mudkd.knowledge.tasks import GLUE, TASK_NAMES, TASK_TITLES, TRAIN_SIZES
    from mudkd.recipe.schema import TaskConfig
    from mudkd.recipe.wizard.questions import TASK_CHOICES, glue_dir

    assert LOADER_TABLE is GLUE  # the loader reads the table itself, not a copy
    assert GLUE["mnli-mm"].dev_files == {"dev": "dev_mismatched.tsv"} and GLUE["mnli-mm"].labels == GLUE["mnli"].labels
    assert (GLUE["sts-b"].num_labels, GLUE["mnli"].num_labels, GLUE["cola"].selection) == (1, 3, "mcc")
    assert TRAIN_SIZES["sst-2"] == 67349 and TRAIN_SIZES["rt-snippets"] == 9544 and "custom" not in TRAIN_SIZES
    assert [choice.value for choice in TASK_CHOICES] == list(TASK_NAMES) and list(TASK_TITLES) == list(TASK_NAMES)
    assert (
        glue_dir({"task.name": "mnli-mm"}) == "glue_data/MNLI"
        and glue_dir({"task.name": "custom"}) == "glue_data/SST-2"
    )
    assert all(TaskConfig(name=name).name == name for name in TASK_NAMES if name != "custom")  # custom needs files
    assert "cola, sst-2, mrpc" in TaskConfig.model_fields["name"].description


def test_label_count_rules_of_tasks_and_configs():
    assert task_num_labels("sst-2") == 2 and task_num_labels("mnli") == task_num_labels("mnli-mm") == 3
    assert task_num_labels("sts-b") == 1  # regression: one output
    assert task_num_labels("custom", "regression") == 1 and task_num_labels("rt-snippets") == 2
    assert config_num_labels({"id2label": {"0": "a", "1": "b", "2": "c"}}) == 3
    assert config_num_labels({"num_labels": 1}) == 1 and config_num_labels({}) == 2


def test_label_count_of_a_saved_config_is_what_transformers_reports(tmp_path):
    from transformers import AutoConfig, BertConfig

    for labels in (1, 2, 3):
        BertConfig(num_labels=labels).save_pretrained(tmp_path / str(labels))
        saved = json.loads((tmp_path / str(labels) / "config.json").read_text())
        assert config_num_labels(saved) == AutoConfig.from_pretrained(tmp_path / str(labels)).num_labels == labels


def test_recipe_choices_are_the_knowledge_enums():
    from mudkd.recipe.schema import CacheConfig, HskConfig
    from mudkd.recipe.sweep import GridBlock

    assert HskConfig.model_fields["token_scheme"].annotation is TokenScheme
    assert HskConfig.model_fields["hidden_scheme"].annotation is HiddenScheme
    assert HskConfig.model_fields["mag_scope"].annotation is MagScope
    assert HskConfig.model_fields["mask_mode"].annotation is MaskMode
    assert CacheConfig.model_fields["dtype"].annotation is StoreDtype
    assert GridBlock.model_fields["token_scheme"].annotation == list[TokenScheme] | None
    # values stay plain strings: comparisons, JSON and TOML see "attention", never "TokenScheme.ATTENTION"
    hsk = HskConfig(token_scheme="attention")
    assert hsk.token_scheme == "attention" and type(hsk.token_scheme) is str
    assert hsk.model_dump(mode="json")["token_scheme"] == "attention"
    assert f"{TokenScheme.ATTENTION}" == str(TokenScheme.ATTENTION) == "attention"


def test_wizard_choices_are_every_scheme():
    from mudkd.recipe.wizard import QUESTIONS

    choices = {q.key: [c.value for c in q.choices] for q in QUESTIONS if q.choices}
    assert sorted(choices["hsk.token_scheme"]) == sorted(TokenScheme.values())
    assert sorted(choices["hsk.hidden_scheme"]) == sorted(HiddenScheme.values())


def test_budget_validation_reports_every_problem_at_once():
    from mudkd.errors import BudgetError

    with pytest.raises(BudgetError) as info:
        budget_of(
            num_student_layers=6,
            num_teacher_layers=12,
            teacher_hidden=768,
            max_seq_length=128,
            keep_layers=9,
            keep_tokens=500,
            token_scheme="cls",
            keep_hidden=2.0,
        )
    problems = info.value.problems
    assert len(problems) == 4 and info.value.message == problems[0]
    assert [p.split(" ")[0].rstrip(":") for p in problems] == [
        "keep_layers",
        "keep_tokens",
        "token_scheme",
        "keep_hidden",
    ]


def test_summary_rows_show_the_summary_bytes():
    budget = budget_of(
        num_student_layers=6, num_teacher_layers=12, teacher_hidden=768, max_seq_length=128, config_3d="1l_10t_0.1h"
    )
    summary = budget_summary(budget, 67349)
    assert summary["bytes_per_example"] == 3100 and summary["logits_bytes_per_example"] == 8
    rows = dict(summary_rows(summary))
    assert rows["stored bytes per example (float16 HSK + indices + 2 logits)"] == "3.03 KiB (3,100 B)"
    assert rows["store for 67,349 training examples"] == "199 MiB"


# -- nothing spelled twice ------------------------------------------------------------------------------------------

#: Scheme names that can only mean a knowledge scheme (generic words such as "attention" or "batch" are not scanned).
SCHEME_NAMES = {
    TokenScheme.LEFT_FIRST.value,
    TokenScheme.ATTENTION_NO_SEP.value,
    HiddenScheme.RAND_MASK.value,
    HiddenScheme.UNIFORM_MASK.value,
    HiddenScheme.IMPORTANCE_MASK_DYNAMIC.value,
    MaskMode.TEACHER_ONLY.value,
}


def _code_literals(path: Path) -> list[tuple[int, object]]:
    """Every string and number constant of a module's code (docstrings excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and id(node) not in docstrings
    ]


def _outside_knowledge() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "knowledge" not in p.relative_to(PACKAGE).parts]


def test_scheme_names_are_spelled_only_in_mudkd_knowledge():
    found = []
    for path in _outside_knowledge():
        relative = path.relative_to(REPO_ROOT).as_posix()
        for line, value in _code_literals(path):
            if isinstance(value, str) and value in SCHEME_NAMES:
                found.append(f"{relative}:{line}: {value!r}")
    assert not found, "import the scheme from mudkd.knowledge instead:\n" + "\n".join(found)


def test_budget_regexes_and_byte_constants_live_only_in_mudkd_knowledge():
    found = []
    for path in _outside_knowledge():
        relative = path.relative_to(REPO_ROOT).as_posix()
        for line, value in _code_literals(path):
            if value == INT16_MAX or (isinstance(value, str) and ("t_top(" in value or "l_(" in value)):
                found.append(f"{relative}:{line}: {value!r}")
    assert not found, "use mudkd.knowledge (schemes.parse_*, layout.INT16_MAX) instead:\n" + "\n".join(found)


def test_no_module_outside_knowledge_reads_a_model_shape_from_config_keys():
    """Depth, width and labels come from mudkd.knowledge.shapes (prune's per-layer head/FFN shape is its own)."""
    allowed = {
        "mudkd/core/stages/prune.py",
        "mudkd/cli/wizard.py",
        "mudkd/core/stages/export.py",
        "mudkd/core/pruning.py",
    }
    found = []
    for path in _outside_knowledge():
        relative = path.relative_to(REPO_ROOT).as_posix()
        if relative in allowed or relative.startswith("mudkd/core/modeling_"):
            continue
        text = path.read_text(encoding="utf-8")
        for key in ('["num_hidden_layers"]', '["hidden_size"]', '.get("num_labels")', '.get("id2label"'):
            if key in text:
                found.append(f"{relative}: {key}")
    assert not found, "read shapes with mudkd.core.models.read_shape:\n" + "\n".join(found)


def test_knowledge_is_pure_and_imports_only_errors_from_mudkd():
    for path in sorted((PACKAGE / "knowledge").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"torch", "numpy", "transformers", "datasets"}, (path, name)
                if name.startswith("mudkd"):
                    assert name == "mudkd.errors" or name.startswith("mudkd.knowledge"), (path, name)
    code = (
        "import sys, mudkd.knowledge, mudkd.recipe.schema; print([m for m in ('torch', 'numpy') if m in sys.modules])"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert output.stdout.strip() == "[]"
