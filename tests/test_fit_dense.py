"""A narrower (TinyBERT-style) student's fit_dense projection starts from the one its checkpoint carries.

General TinyBERT checkpoints ship a trained ``fit_dense`` (Linear 312 → 768) in their weights (method.md §7); mudkd
saves its own beside the model as ``hsk_projection.safetensors``. Either is loaded for HSK distillation; without
one the projection starts fresh (N(0, 0.02), zero bias); one of the wrong shape is refused with exit 2.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mudkd.cli.app import app
from tests.helpers import make_teacher_and_student, make_tiny_bert

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny teacher of width 32 (3 layers)."""
    return make_teacher_and_student(tmp_path_factory.mktemp("fit_dense")) / "teacher"


def known_projection(rows=32, cols=16):
    """A weight and bias no initialiser draws: w[i, j] = (i - j) / 100, b[i] = i / 10."""
    import torch

    weight = (torch.arange(rows)[:, None] - torch.arange(cols)[None, :]).float() / 100
    return weight, torch.arange(rows).float() / 10


def narrow_student(directory, **fit_dense):
    """A tiny BERT of width 16 whose model.safetensors also holds the given ``fit_dense.*`` tensors."""
    from safetensors.torch import load_file, save_file

    make_tiny_bert(directory, layers=2, hidden=16, heads=2, intermediate=32, seed=3)
    weights = load_file(directory / "model.safetensors")
    weights |= {f"fit_dense.{name}": tensor.contiguous() for name, tensor in fit_dense.items()}
    save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def hsk(teacher, student, out, glue_dir, *extra):
    args = ["distill", "hsk", "--teacher-model", teacher, "--student-model", student, "--task-name", "sst-2"]
    args += ["--data-dir", glue_dir / "SST-2", "--max-train-samples", "16", "--max-seq-length", "16"]
    args += ["--train-batch-size", "8", "--max-steps", "1", *extra, "-o", out, "--json"]
    return runner.invoke(app, [str(a) for a in args])


def test_load_fit_dense_reads_the_checkpoint_projection_exactly(tmp_path):
    import torch

    from mudkd.core.models import load_classifier, load_fit_dense
    from mudkd.core.stages.distill import HskStudent

    weight, bias = known_projection()
    student_dir = narrow_student(tmp_path / "tinybert", weight=weight, bias=bias)
    loaded, source = load_fit_dense(str(student_dir), student_hidden=16, teacher_hidden=32)
    assert source == f"{student_dir / 'model.safetensors'} (fit_dense)"
    model = HskStudent(load_classifier(str(student_dir)), 32, "both", loaded)
    assert torch.equal(model.projection.weight, weight) and torch.equal(model.projection.bias, bias)
    # without fit_dense in the weights: nothing to load, a fresh N(0, 0.02) projection with a zero bias
    plain = narrow_student(tmp_path / "plain")
    assert load_fit_dense(str(plain), student_hidden=16, teacher_hidden=32) is None
    torch.manual_seed(0)
    fresh = HskStudent(load_classifier(str(plain)), 32, "both", None).projection
    assert torch.equal(fresh.bias, torch.zeros(32)) and 0.01 < float(fresh.weight.detach().std()) < 0.03


def test_mudkd_own_saved_projection_is_loaded_too(tmp_path):
    from safetensors.torch import save_file

    from mudkd.core.models import load_fit_dense

    weight, bias = known_projection()
    student_dir = narrow_student(tmp_path / "hsk_output")
    save_file({"weight": weight, "bias": bias}, student_dir / "hsk_projection.safetensors")
    loaded, source = load_fit_dense(str(student_dir), student_hidden=16, teacher_hidden=32)
    assert source.endswith("hsk_projection.safetensors (hsk projection)")
    assert (loaded["weight"] == weight).all() and (loaded["bias"] == bias).all()


def test_hsk_starts_from_the_checkpoint_fit_dense(teacher, glue_dir, tmp_path):
    from safetensors.torch import load_file

    weight, bias = known_projection()
    student_dir = narrow_student(tmp_path / "tinybert", weight=weight, bias=bias)
    # one update at a learning rate of 1e-9 moves every value by about 1e-9 (AdamW): what is saved is where it began
    result = hsk(teacher, student_dir, tmp_path / "hsk", glue_dir, "--learning-rate", "1e-9")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["projection"] == f"{student_dir / 'model.safetensors'} (fit_dense)"
    assert "fit_dense: starting from the trained projection" in result.stderr
    saved = load_file(tmp_path / "hsk" / "hsk_projection.safetensors")
    assert (saved["weight"] - weight).abs().max() < 1e-6 and (saved["bias"] - bias).abs().max() < 1e-6


def test_hsk_without_fit_dense_starts_fresh(teacher, glue_dir, tmp_path):
    result = hsk(teacher, narrow_student(tmp_path / "plain"), tmp_path / "hsk", glue_dir)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["projection"] == "fresh"


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"weight": (32, 8), "bias": (32,)}, "its fit_dense projection maps width 8 to 32"),
        ({"weight": (24, 16), "bias": (24,)}, "its fit_dense projection maps width 16 to 24"),
        ({"weight": (32, 16)}, "the fit_dense projection has no bias"),
    ],
)
def test_a_fit_dense_of_the_wrong_shape_is_refused(teacher, glue_dir, tmp_path, tensors, message):
    import torch

    student_dir = narrow_student(tmp_path / "wrong", **{name: torch.zeros(shape) for name, shape in tensors.items()})
    result = hsk(teacher, student_dir, tmp_path / "hsk", glue_dir)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and message in result.stderr  # refused before anything loads
    assert "Hint: " in result.stderr
    assert not (tmp_path / "hsk").exists() and not (tmp_path / "hsk.partial").exists()
