"""Issue 22, items 5 and 6: imports at module top except where a measured start-up cost keeps them lazy, and the
stage plans and results as types whose ``to_dict()`` is the document the CLI prints."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys

from typer.testing import CliRunner

from mudkd.cli.app import app
from tests.helpers import REPO_ROOT

runner = CliRunner()

#: Modules imported on paths that must not pay for torch (~1.5 s), transformers' models (~3-5 s), sklearn (~2.3 s)
#: or scipy (~1.3 s): the sweep's and the search's --dry-run, `mudkd recipe`, `mudkd outputs`, and predict's model
#: check (stages.evaluate, which imports training and models).
TORCH_FREE = (
    "mudkd.core.sweep",
    "mudkd.core.search",
    "mudkd.core.stages.evaluate",
    "mudkd.core.datacheck",
    "mudkd.core.outputs",
    "mudkd.core.ownership",
    "mudkd.core.training",
    "mudkd.core.models",
)
HEAVY = ("torch", "transformers", "sklearn", "scipy", "matplotlib", "onnx", "onnxruntime", "huggingface_hub")


def test_modules_on_torch_free_paths_import_no_heavy_library():
    code = f"import sys, {', '.join(TORCH_FREE)}\nprint([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_function_re_imports_what_its_module_imports_at_the_top():
    """A function-level import is kept only for its cost; one that repeats a top-level import is noise."""
    repeats = []
    for path in sorted((REPO_ROOT / "mudkd").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {
            (getattr(node, "module", None), alias.name, alias.asname)
            for node in tree.body
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    repeats += [
                        f"{path.relative_to(REPO_ROOT)}:{node.lineno} {alias.name}"
                        for alias in node.names
                        if (getattr(node, "module", None), alias.name, alias.asname) in top
                    ]
    assert not repeats, repeats


def test_a_dry_run_prints_the_stage_plan_type_field_by_field(tiny_bert_dir, glue_dir, tmp_path):
    from mudkd.core.stages.finetune import FinetunePlan

    args = ["finetune", "--model-name-or-path", str(tiny_bert_dir), "--task-name", "sst-2"]
    args += ["--data-dir", str(glue_dir / "SST-2"), "-o", str(tmp_path / "out"), "--dry-run", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert list(document) == ["dry_run", "stage", *(field.name for field in dataclasses.fields(FinetunePlan))]
    assert document["stage"] == "finetune" and document["model"] == str(tiny_bert_dir)
    assert not (tmp_path / "out").exists()


def test_typed_results_serialise_in_their_declared_order():
    from mudkd.core.push import PushPlan, PushResult
    from mudkd.core.stages.evaluate import Evaluation

    planned = PushPlan(folder="f", repo_id="o/n", made_by_command="export", files=[], bytes=0, card=None)
    result = PushResult(**dataclasses.asdict(planned), private=True)
    assert list(result.to_dict()) == [*dataclasses.asdict(planned), "url", "sent", "private", "revision"]
    assert result.to_dict()["sent"] is False and result.to_dict()["private"] is True
    evaluation = Evaluation(model="m", task="sst-2", data=[], metric="accuracy", labels=None, splits={})
    assert list(evaluation.to_dict()) == ["model", "task", "data", "metric", "labels", "splits", "teacher"]
