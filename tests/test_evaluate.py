"""`mudkd evaluate` and `mudkd predict` as a user meets them (issue 15): JSON documents, JSON lines, exit codes.

The models are tiny BERTs built from a config; the expected metrics are recomputed here from the model's own
logits, one example at a time without padding, and counted by hand into a confusion matrix.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mudkd.cli.app import app
from tests.helpers import make_tiny_bert, snapshot

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny SST-2-shaped BERTs (labels "0"/"1" as mudkd finetune names them), a 3-class one (a, b, c), a
    ham/spam one and a neg/pos one whose id2label is not in sorted order (pos is class 0)."""
    root = tmp_path_factory.mktemp("eval_models")
    named = [("model", 0, ["0", "1"]), ("teacher", 5, ["0", "1"]), ("three", 2, ["a", "b", "c"])]
    named += [("hamspam", 3, ["ham", "spam"]), ("posneg", 4, ["pos", "neg"])]
    for name, seed, labels in named:
        model = make_tiny_bert(root / name, num_labels=len(labels), seed=seed)
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {label: index for index, label in enumerate(labels)}
        model.config.save_pretrained(root / name)
    return root


def direct_logits(model_dir, texts):
    """The model's logits, one unpadded example at a time (no mudkd code involved)."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = BertForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return np.stack([model(**tokenizer(text, return_tensors="pt")).logits[0].numpy() for text in texts])


def sst2_dev(glue_dir):
    rows = (glue_dir / "SST-2" / "dev.tsv").read_text().splitlines()[1:]
    return [row.split("\t")[0] for row in rows], np.array([int(row.split("\t")[1]) for row in rows])


def test_evaluate_json_matches_the_models_own_predictions(models, glue_dir, tmp_path):
    before = snapshot(models)
    result = runner.invoke(
        app,
        ["evaluate", str(models / "model"), "--task-name", "sst-2", "--data-dir", str(glue_dir / "SST-2")]
        + ["--teacher", str(models / "teacher"), "--batch-size", "5", "--json"],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"model", "task", "data", "metric", "labels", "splits", "teacher"}
    assert document["metric"] == "accuracy" and document["labels"] == ["0", "1"]
    dev = document["splits"]["dev"]
    assert set(dev) == {"examples", "metrics", "per_class", "confusion_matrix"}
    assert list(dev["metrics"]) == ["accuracy", "macro_f1"]  # SST-2: the official accuracy, plus macro-F1

    texts, gold = sst2_dev(glue_dir)
    for report, directory in ((dev, "model"), (document["teacher"]["splits"]["dev"], "teacher")):
        predicted = direct_logits(models / directory, texts).argmax(axis=1)
        counted = [[int(((gold == g) & (predicted == p)).sum()) for p in (0, 1)] for g in (0, 1)]
        assert report["confusion_matrix"] == counted
        assert sum(map(sum, report["confusion_matrix"])) == report["examples"] == len(texts) == 32
        assert report["metrics"]["accuracy"] == pytest.approx(float((predicted == gold).mean()))
        f1 = [2 * counted[c][c] / (sum(counted[c]) + counted[0][c] + counted[1][c]) for c in (0, 1)]
        seen = [f for c, f in enumerate(f1) if sum(counted[c]) or counted[0][c] + counted[1][c]]
        assert report["metrics"]["macro_f1"] == pytest.approx(sum(seen) / len(seen))
        assert report["per_class"]["1"]["f1"] == pytest.approx(f1[1])
        assert report["per_class"]["0"]["support"] == int((gold == 0).sum())
    assert snapshot(models) == before  # read-only


def test_evaluate_agrees_with_compute_metrics_and_renders_tables(models, tmp_path):
    """A 3-class custom file: per-class F1 for every class, the table output, and the same numbers as
    compute_metrics on the same predictions."""
    from mudkd.core.metrics import compute_metrics

    texts = ["good fun film", "awful boring plot", "the story", "great actors", "bad acting", "one day", "love it"]
    gold = ["a", "b", "c", "a", "b", "c", "a"]
    path = tmp_path / "dev.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "stars"])
        writer.writerows(zip(texts, gold, strict=True))
    base = ["evaluate", str(models / "three"), "--task-name", "custom", "--validation-file", str(path)]
    base += ["--text-columns", "review", "--label-column", "stars"]
    result = runner.invoke(app, [*base, "--metric", "macro_f1", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    dev = document["splits"]["dev"]
    assert document["metric"] == "macro_f1"
    assert list(dev["metrics"]) == ["accuracy", "macro_f1", "f1[a]", "f1[b]", "f1[c]"]
    logits = direct_logits(models / "three", texts)
    expected = compute_metrics(tuple(dev["metrics"]), logits, np.array(["abc".index(g) for g in gold]), ["a", "b", "c"])
    assert dev["metrics"] == pytest.approx(expected)
    assert sum(map(sum, dev["confusion_matrix"])) == 7

    table = runner.invoke(app, base)
    assert table.exit_code == 0, table.output
    for text in ("macro_f1", "f1[c]", "precision", "confusion matrix", "gold \\ predicted"):
        assert text in table.stdout


def test_predict_reads_stdin_and_writes_json_lines(models):
    texts = ["a really good movie", "awful and too long", "the plot"]
    result = runner.invoke(app, ["predict", str(models / "three")], input="\n".join(texts) + "\n\n")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == texts  # input order, the blank line skipped
    logits = direct_logits(models / "three", texts)
    for line, row in zip(lines, logits, strict=True):
        assert set(line["probabilities"]) == {"a", "b", "c"}  # the model's id2label
        assert sum(line["probabilities"].values()) == pytest.approx(1.0)
        assert line["label"] == "abc"[int(row.argmax())]
        softmax = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        assert [line["probabilities"][k] for k in "abc"] == pytest.approx(softmax.tolist(), abs=1e-5)


def test_predict_tsv_pairs_and_json_document(models, tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("premise\thypothesis\nthe film\tgood\na plot\tbad acting\n")
    result = runner.invoke(app, ["predict", str(models / "model"), str(path), "--text-columns", "premise,hypothesis"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["text"], line["text_pair"]) for line in lines] == [("the film", "good"), ("a plot", "bad acting")]
    result = runner.invoke(app, ["predict", str(models / "model"), "--json"], input="good\n")
    document = json.loads(result.stdout)
    assert document["predictions"][0]["label"] in {"0", "1"}


@pytest.mark.parametrize(
    ("words", "stdin", "message"),
    [
        (["predict", "{missing}"], "text\n", "directory not found"),
        (["predict", "{model}"], "", "no text to predict"),
        (["predict", "{model}"], "\n\n", "no text to predict"),
        (["predict", "{model}", "{missing}/in.txt"], None, "input file not found"),
        (["evaluate", "{missing}", "--task-name", "sst-2", "--data-dir", "{glue}"], None, "directory not found"),
        (
            ["evaluate", "{model}", "--task-name", "sst-2", "--data-dir", "{glue}", "--metric", "mcc"],
            None,
            "'mcc' is not a metric of task 'sst-2' (it reports: accuracy, macro_f1)",
        ),
        (
            ["evaluate", "{model}", "--task-name", "sst-2", "--data-dir", "{glue}", "--metric", "bogus"],
            None,
            "unknown metric 'bogus' (allowed: accuracy, macro_f1, f1, acc_and_f1, mcc, pearson, spearman, corr",
        ),
        (["evaluate", "{three}", "--task-name", "sst-2", "--data-dir", "{glue}"], None, "the model has 3 labels"),
    ],
)
def test_bad_input_exits_2_with_one_error(models, glue_dir, tmp_path, words, stdin, message):
    names = {"missing": tmp_path / "nope", "model": models / "model", "three": models / "three"}
    args = [word.format(glue=glue_dir / "SST-2", **names) for word in words]
    result = runner.invoke(app, args, input=stdin)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""


def test_task_metric_is_checked_in_a_finetune_plan(tiny_bert_dir, glue_dir, tmp_path):
    args = ["finetune", "--model-name-or-path", str(tiny_bert_dir), "--task-name", "cola"]
    args += ["--data-dir", str(glue_dir / "CoLA"), "-o", str(tmp_path / "out"), "--dry-run"]
    assert runner.invoke(app, [*args, "--set", "task.metric=mcc"]).exit_code == 0
    refused = runner.invoke(app, [*args, "--set", "task.metric=f1[1]"])
    assert refused.exit_code == 2
    assert "it reports: mcc, accuracy, macro_f1" in refused.stderr


def test_progress_shows_a_binary_tasks_positive_f1_and_a_multiclass_macro_f1(capsys):
    from mudkd.cli.common import make_events

    events = make_events()
    events.on_start("finetune", 4)
    events.on_eval(2, {"loss": 0.69, "accuracy": 0.73, "f1[spam]": 0.5, "macro_f1": 0.6})
    events.on_eval(4, {"loss": 0.5, "accuracy": 0.8, "macro_f1": 0.7, "f1[a]": 0.9, "f1[b]": 0.0})
    lines = capsys.readouterr().err.splitlines()
    assert "finetune step 2: dev accuracy=0.7300 dev f1[spam]=0.5000 dev loss=0.6900" in lines
    assert "finetune step 4: dev accuracy=0.8000 dev macro_f1=0.7000 dev loss=0.5000" in lines


def test_evaluate_names_the_positive_class_from_the_training_labels(models, tmp_path):
    """spam is the minority in training (2 of 7) but the majority of the evaluated file (3 of 4): f1[spam]."""
    (tmp_path / "train.csv").write_text("text,label\n" + "hi,ham\n" * 5 + "win cash,spam\n" * 2)
    (tmp_path / "test.csv").write_text("text,label\nhi,ham\n" + "win cash,spam\n" * 3)
    base = ["evaluate", str(models / "hamspam"), "--task-name", "custom", "--text-columns", "text", "--json"]
    base += ["--validation-file", str(tmp_path / "test.csv")]
    with_train = runner.invoke(app, [*base, "--train-file", str(tmp_path / "train.csv")])
    assert with_train.exit_code == 0, with_train.output
    assert list(json.loads(with_train.stdout)["splits"]["dev"]["metrics"]) == ["accuracy", "f1[spam]", "macro_f1"]
    file_only = runner.invoke(app, base)  # no training file: the file's own minority class
    assert file_only.exit_code == 0, file_only.output
    assert list(json.loads(file_only.stdout)["splits"]["dev"]["metrics"]) == ["accuracy", "f1[ham]", "macro_f1"]
    chosen = runner.invoke(app, [*base, "--positive-label", "spam", "--metric", "f1[spam]"])
    assert json.loads(chosen.stdout)["metric"] == "f1[spam]"


def test_a_sweeps_untrained_level_reports_the_same_task_metrics_as_evaluate(models, tmp_path):
    """distill.evaluate_student (a sweep's "untrained" point) on a custom binary task: the named positive class,
    and the same values `mudkd evaluate` prints for the same model and data."""
    from mudkd.core.stages import distill
    from mudkd.recipe import build_recipe

    (tmp_path / "train.csv").write_text("text,label\n" + "the film,ham\n" * 5 + "win cash,spam\n" * 2)
    (tmp_path / "dev.csv").write_text("text,label\ngood fun,ham\nawful plot,ham\nwin cash now,spam\nthe day,ham\n")
    sets = [
        "task.name=custom",
        f"task.train_file={tmp_path / 'train.csv'}",
        f"task.validation_file={tmp_path / 'dev.csv'}",
        'task.text_columns=["text"]',
        "task.metric=f1[spam]",
    ]
    recipe = build_recipe(None, flags={"student.model": str(models / "hamspam")}, sets=sets)
    result = distill.evaluate_student(recipe)
    assert result.details["selection"] == "f1[spam]"
    evaluated = runner.invoke(app, ["evaluate", str(models / "hamspam"), "--json", *(f"--set={s}" for s in sets)])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout)["splits"]["dev"]["metrics"]
    assert list(metrics) == ["accuracy", "f1[spam]", "macro_f1"]
    assert {k: v for k, v in result.metrics.items() if k != "loss"} == pytest.approx(metrics)


# ---------------------------------------------------------------------------------------------------------------
# Labels go through the model's own id2label (issue 23)


def write_csv(path, rows, header=("text", "label")):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def custom_eval(model, validation, *extra):
    return ["evaluate", str(model), "--task-name", "custom", "--text-columns", "text"] + [
        "--validation-file",
        str(validation),
        *extra,
    ]


def test_evaluate_scores_each_class_by_the_models_own_name(models, tmp_path):
    """posneg's class 0 is "pos": a gold "pos" is right when the model predicts class 0, whatever sorted names say."""
    texts = ["good fun film", "awful boring plot", "the story", "great actors", "bad acting"]
    gold = ["pos", "neg", "neg", "pos", "neg"]
    path = write_csv(tmp_path / "dev.csv", zip(texts, gold, strict=True))
    result = runner.invoke(app, [*custom_eval(models / "posneg", path), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["labels"] == ["pos", "neg"]
    predicted = direct_logits(models / "posneg", texts).argmax(axis=1)
    expected = np.mean([["pos", "neg"][p] == g for p, g in zip(predicted, gold, strict=True)])
    assert document["splits"]["dev"]["metrics"]["accuracy"] == pytest.approx(expected)


def test_data_labels_the_model_does_not_know_exit_2_naming_them(models, tmp_path):
    """A {neg, pos} model on {neutral, pos} data: before, it exited 0 and scored "neg" as "neutral"."""
    path = write_csv(tmp_path / "dev.csv", [("good", "pos"), ("so so", "neutral"), ("fine", "pos")])
    result = runner.invoke(app, [*custom_eval(models / "posneg", path), "--json"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "'neutral'" in errors[0] and "pos, neg" in errors[0] and str(path) in errors[0]
    assert result.stdout == ""


def test_a_teacher_with_other_label_names_is_refused(models, tmp_path):
    path = write_csv(tmp_path / "dev.csv", [("good", "pos"), ("bad", "neg")])
    result = runner.invoke(app, [*custom_eval(models / "posneg", path), "--teacher", str(models / "hamspam")])
    assert result.exit_code == 2, result.output
    assert "the teacher's labels (ham, spam) are not those evaluated (pos, neg)" in result.stderr


@pytest.mark.parametrize("which", ["train", "validation", "tsv"])
def test_an_empty_label_cell_is_an_error_naming_file_and_line(models, tmp_path, which):
    """Before, an empty label cell silently became a third class ("")."""
    good = write_csv(tmp_path / "good.csv", [("good", "pos"), ("bad", "neg"), ("fine", "pos")])
    broken = [("good", "pos"), ('a "quoted"\nline', "neg"), ("bad", ""), ("fine", "pos"), ("meh", " ")]
    if which == "tsv":
        broken_path = tmp_path / "broken.tsv"
        broken_path.write_text("text\tlabel\ngood\tpos\n\nbad\t\nfine\tpos\n")
        line = 4  # the blank line 3 is skipped, as the loader skips it
    else:
        broken_path = write_csv(tmp_path / "broken.csv", broken)
        line = 5  # the header, "good", a quoted cell spanning lines 3-4, then "bad"
    extra = ["--train-file", str(broken_path)] if which == "train" else []
    validation = good if which == "train" else broken_path
    result = runner.invoke(app, [*custom_eval(models / "posneg", validation), *extra])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert f"{broken_path}: line {line}: the label cell (column 'label') is empty" in errors[0]


def test_an_unterminated_quote_names_the_file_and_the_line_it_opens(models, tmp_path):
    path = tmp_path / "dev.csv"
    path.write_text('text,label\ngood,pos\n"bad,neg\nfine,pos\n')
    result = runner.invoke(app, custom_eval(models / "posneg", path))
    assert result.exit_code == 2, result.output
    expected = f'Error: {path}: line 3: a quoted cell opened here is never closed (unterminated ")'
    assert result.stderr.splitlines()[0] == expected
    assert result.stderr.splitlines()[1].startswith("Hint:") and len(result.stderr.splitlines()) == 2


# ---------------------------------------------------------------------------------------------------------------
# Models with nan weights, and outputs that are not finite


@pytest.fixture(scope="module")
def broken_models(models, tmp_path_factory):
    """posneg with one nan weight, and posneg whose classifier overflows to inf logits (finite weights)."""
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("broken_models")
    for name, edit in (("nan", "nan"), ("overflow", "huge")):
        target = root / name
        target.mkdir()
        for source in (models / "posneg").iterdir():
            (target / source.name).write_bytes(source.read_bytes())
        weights = load_file(target / "model.safetensors")
        if edit == "nan":
            weights["bert.encoder.layer.1.output.dense.weight"][0, 0] = float("nan")
        else:
            # every pooled value tanh(100) = 1, times 3e38 summed over 32 dimensions: logits of +inf and -inf
            weights["bert.pooler.dense.weight"] = torch.zeros_like(weights["bert.pooler.dense.weight"])
            weights["bert.pooler.dense.bias"] = torch.full_like(weights["bert.pooler.dense.bias"], 100.0)
            weights["classifier.weight"] = torch.full_like(weights["classifier.weight"], 3e38)
            weights["classifier.weight"][1] *= -1
        save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    return root


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_model_with_nan_weights_is_refused(broken_models, glue_dir, command):
    if command == "evaluate":
        args = ["evaluate", str(broken_models / "nan"), "--task-name", "sst-2", "--data-dir", str(glue_dir / "SST-2")]
    else:
        args = ["predict", str(broken_models / "nan")]
    result = runner.invoke(app, args, input="good film\n")
    assert result.exit_code == 2, result.output
    assert "weights hold nan values (bert.encoder.layer.1.output.dense.weight)" in result.stderr
    assert result.stdout == ""


def test_predict_never_prints_a_non_finite_probability(broken_models):
    result = runner.invoke(app, ["predict", str(broken_models / "overflow")], input="good film\n")
    assert result.exit_code == 1, result.output
    assert "outputs for example 1 are not finite" in result.stderr
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_predict_refuses_a_csv_with_an_unterminated_quote(models, tmp_path, where):
    """Before, the open quote swallowed every later row into one text, and predict exited 0."""
    text = 'text\ngood film\n"bad plot\nfine\n'
    path = tmp_path / "in.csv"
    path.write_text(text)
    args = ["predict", str(models / "posneg"), *([str(path)] if where == "file" else ["--format", "csv"])]
    result = runner.invoke(app, args, input=None if where == "file" else text)
    assert result.exit_code == 2, result.output
    source = str(path) if where == "file" else "stdin"
    assert f"Error: {source}: line 3: a quoted cell opened here is never closed" in result.stderr
    assert result.stdout == ""


def test_glue_labels_are_class_ids_for_a_model_with_its_own_names(glue_dir, tmp_path):
    """SST-2's gold "0"/"1" are class ids by the task's definition: a NEGATIVE/POSITIVE model (as on the hub) is
    read by id there; a custom file labelled 0/1 is not GLUE, so the same names refuse it."""
    model = make_tiny_bert(tmp_path / "hub", seed=6)
    model.config.id2label = {0: "NEGATIVE", 1: "POSITIVE"}
    model.config.label2id = {"NEGATIVE": 0, "POSITIVE": 1}
    model.config.save_pretrained(tmp_path / "hub")
    args = ["evaluate", str(tmp_path / "hub"), "--task-name", "sst-2", "--data-dir", str(glue_dir / "SST-2"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    texts, gold = sst2_dev(glue_dir)
    predicted = direct_logits(tmp_path / "hub", texts).argmax(axis=1)
    assert document["labels"] == ["0", "1"]
    assert document["splits"]["dev"]["metrics"]["accuracy"] == pytest.approx(float((predicted == gold).mean()))

    path = write_csv(tmp_path / "dev.csv", [("good", "1"), ("bad", "0")])
    refused = runner.invoke(app, custom_eval(tmp_path / "hub", path))
    assert refused.exit_code == 2 and "label(s) '0', '1' unknown to the model" in refused.stderr
