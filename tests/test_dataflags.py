"""Your own data by flags, the data check before any work, and stores that serve a prefix of their examples.

Everything runs as a user meets it: the real CLI (typer's CliRunner) on tiny models (tests/helpers.py), small
CSV/TSV files written here, and the synthetic SST-2 rows of the repository.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.recipe import build_recipe
from tests.helpers import make_teacher_and_student, write_sst2_slice

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

runner = CliRunner()
DATA_FLAGS = ("--train-file", "--validation-file", "--text-columns", "--label-column")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def reviews(folder: Path) -> tuple[Path, Path]:
    """A CSV training and dev file with a ``review`` text column and a ``stars`` label column."""
    rows = "".join(f"{text},{label}\n" for text, label in [("good fun", "pos"), ("bad plot", "neg")] * 4)
    return write(folder / "train.csv", "review,stars\n" + rows), write(folder / "dev.csv", "review,stars\n" + rows)


def lines_of(stderr: str) -> list[str]:
    return [line.removeprefix("Error: ") for line in stderr.splitlines() if line.startswith("Error: ")]


# ---------------------------------------------------------------------------------------------------------------
# 1. The flags, and comma lists in --set


def _options(command: object) -> set[str]:
    return {name for param in command.params for name in param.opts}  # type: ignore[attr-defined]


def test_every_command_that_reads_data_takes_the_data_flags_spelled_the_same():
    root = typer.main.get_command(app)
    commands = {
        "finetune": root.commands["finetune"],
        "score": root.commands["score"],
        "pipeline": root.commands["pipeline"],
        "sweep": root.commands["sweep"],
        **{f"distill {name}": root.commands["distill"].commands[name] for name in ("hsk", "pred", "cache")},
    }
    for name, command in commands.items():
        assert set(DATA_FLAGS) <= _options(command), name


def test_flags_train_on_your_own_csv_and_the_resolved_recipe_records_them(tiny_bert_dir, tmp_path):
    train, dev = reviews(tmp_path / "data")
    out = tmp_path / "teacher"
    flags = ["--train-file", str(train), "--validation-file", str(dev), "--text-columns", "review"]
    flags += ["--label-column", "stars"]
    base = ["finetune", "--model-name-or-path", str(tiny_bert_dir), *flags, "-o", str(out), "--json"]
    planned = runner.invoke(app, [*base, "--dry-run"])
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.stdout)
    # --train-file alone implies the custom task
    assert plan["task"] == "custom"
    assert plan["data"] == f"{train} + {dev}; text column(s) review; label column stars"
    assert not out.exists()
    result = runner.invoke(app, [*base, "--max-steps", "1", "--eval-step", "1", "--max-seq-length", "16"])
    assert result.exit_code == 0, result.output
    task = tomllib.loads((out / "recipe.resolved.toml").read_text())["task"]
    assert (task["name"], task["train_file"], task["validation_file"]) == ("custom", str(train), str(dev))
    assert (task["text_columns"], task["label_column"]) == (["review"], "stars")


def test_text_columns_flag_takes_a_comma_separated_pair_from_a_tsv(tiny_bert_dir, tmp_path):
    body = "".join(f"a cat\t{h}\t{label}\n" for h, label in [("a dog", "no"), ("a cat", "yes")] * 3)
    train = write(tmp_path / "pairs" / "train.tsv", "premise\thypothesis\tlabel\n" + body)
    dev = write(tmp_path / "pairs" / "dev.tsv", "premise\thypothesis\tlabel\n" + body)
    args = ["score", "--teacher-model", str(tiny_bert_dir), "--train-file", str(train), "--validation-file", str(dev)]
    args += ["--text-columns", "premise, hypothesis", "-o", str(tmp_path / "scores"), "--dry-run", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"].endswith("text column(s) premise, hypothesis; label column label")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("text", ["text"]), ("a,b", ["a", "b"]), (" a , b ", ["a", "b"]), ('["a", "b"]', ["a", "b"]), ('"x"', ["x"])],
)
def test_set_takes_a_comma_list_for_a_list_key(value, expected):
    recipe = build_recipe(None, sets=[f"task.text_columns={value}", "task.train_file=t.csv"])
    assert recipe.task.text_columns == expected
    assert recipe.task.name == "custom"  # a training file with no task named means your own task


def test_set_comma_lists_of_layer_numbers_and_a_single_number():
    recipe = build_recipe(None, sets=["hsk.student_layers=0,3", "hsk.teacher_layers=6"])
    assert (recipe.hsk.student_layers, recipe.hsk.teacher_layers) == ([0, 3], [6])


def test_recipe_show_accepts_the_issue_spelling():
    result = runner.invoke(
        app, ["recipe", "show", "--set", "task.train_file=t.csv", "--set", "task.text_columns=text", "--json"]
    )
    assert result.exit_code == 0, result.output
    task = json.loads(result.stdout)["task"]
    assert (task["name"], task["text_columns"]) == ("custom", ["text"])


def test_a_named_glue_task_with_a_training_file_is_refused(tmp_path):
    recipe = write(tmp_path / "r.toml", '[task]\nname = "sst-2"\n')
    result = runner.invoke(
        app, ["finetune", str(recipe), "--model-name-or-path", "m", "--train-file", "t.csv", "--text-columns", "x"]
    )
    assert result.exit_code == 2
    assert "train_file is read only by task 'custom', but the task is 'sst-2'" in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# 2. The data check: recipe validate and --dry-run


def test_recipe_validate_reports_a_missing_file_and_missing_columns_at_once(tmp_path):
    _, dev = reviews(tmp_path / "data")
    missing = tmp_path / "data" / "nope.csv"
    recipe = write(
        tmp_path / "r.toml",
        f'[task]\ntrain_file = "{missing}"\nvalidation_file = "{dev}"\ntext_columns = ["text"]\nlabel_column = "y"\n',
    )
    result = runner.invoke(app, ["recipe", "validate", str(recipe)])
    assert result.exit_code == 2
    columns = "(its columns: 'review', 'stars')"
    assert lines_of(result.stderr) == [
        f"{recipe}: task.train_file: {missing} not found; pass --train-file with an existing file",
        f"{recipe}: task.text_columns: column 'text' not found in {dev} {columns}; "
        "pass --text-columns with one of them",
        f"{recipe}: task.label_column: column 'y' not found in {dev} {columns}; pass --label-column with one of them",
    ]
    as_json = runner.invoke(app, ["recipe", "validate", str(recipe), "--json"])
    assert as_json.exit_code == 2 and len(json.loads(as_json.stdout)["recipes"][0]["problems"]) == 3


def test_recipe_validate_leaves_data_the_recipe_does_not_name_to_the_command_line(tmp_path):
    recipe = write(tmp_path / "r.toml", '[task]\nname = "sst-2"\n')
    result = runner.invoke(app, ["recipe", "validate", str(recipe)])
    assert result.exit_code == 0 and f"{recipe}: ok" in result.stdout


def test_dry_run_reports_every_data_problem_before_any_model_is_loaded(tiny_bert_dir, tmp_path):
    train, _ = reviews(tmp_path / "data")
    args = ["finetune", "--model-name-or-path", str(tiny_bert_dir), "--train-file", str(train)]
    args += ["--validation-file", str(tmp_path / "data"), "--text-columns", "review,title", "-o", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--dry-run"])
    assert result.exit_code == 2
    assert lines_of(result.stderr) == [
        f"task.text_columns: column 'title' not found in {train} (its columns: 'review', 'stars'); "
        "pass --text-columns with one of them",
        f"task.label_column: column 'label' not found in {train} (its columns: 'review', 'stars'); "
        "pass --label-column with one of them",
        f"task.validation_file: {tmp_path / 'data'} is a directory, not a file; "
        "pass --validation-file with a data file",
    ]
    assert "Hint: each line names the setting to fix" in result.stderr


def test_pipeline_dry_run_checks_the_data_its_flags_name(tmp_path):
    train, dev = reviews(tmp_path / "data")
    recipe = write(tmp_path / "r.toml", '[teacher]\npretrained = "bert-base-uncased"\n')
    args = ["pipeline", str(recipe), "--train-file", str(train), "--validation-file", str(dev), "--dry-run"]
    result = runner.invoke(app, [*args, "--text-columns", "review", "-o", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert lines_of(result.stderr) == [
        f"task.label_column: column 'label' not found in {path} (its columns: 'review', 'stars'); "
        "pass --label-column with one of them"
        for path in (train, dev)
    ]
    assert not (tmp_path / "runs").exists()


def test_dry_run_of_a_glue_task_checks_its_folder(tiny_bert_dir, tmp_path):
    folder = write_sst2_slice(tmp_path / "SST-2", 8, None)  # no dev.tsv
    args = ["finetune", "--model-name-or-path", str(tiny_bert_dir), "--task-name", "sst-2", "-o", str(tmp_path / "o")]
    unset = runner.invoke(app, [*args, "--dry-run"])
    assert unset.exit_code == 2 and "task.data_dir: task 'sst-2' needs its GLUE folder" in unset.stderr
    no_dev = runner.invoke(app, [*args, "--data-dir", str(folder), "--dry-run"])
    assert no_dev.exit_code == 2
    assert lines_of(no_dev.stderr) == [
        f"task.data_dir: {folder / 'dev.tsv'} not found; the GLUE folder of task 'sst-2' holds train.tsv, dev.tsv"
    ]


def test_header_reads_only_the_first_record(tmp_path):
    from mudkd.core.datacheck import header

    assert header(write(tmp_path / "a.csv", '"x,1",y\n1,2\n')) == ["x,1", "y"]
    assert header(write(tmp_path / "a.tsv", 'say "hi"\tlabel\r\n')) == ['say "hi"', "label"]
    assert header(write(tmp_path / "a.jsonl", '\n{"t": "a", "l": 1}\n{"broken\n')) == ["t", "l"]
    assert header(write(tmp_path / "a.json", '[\n  {"t": "a", "l": 1}\n]\n')) == ["t", "l"]
    assert header(write(tmp_path / "b.json", '{"t": ["a"], "l": [1]}')) == ["t", "l"]
    assert header(write(tmp_path / "e.csv", "")) == []
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbftext,label\na,1\n")  # a spreadsheet's UTF-8 export
    assert header(tmp_path / "bom.csv") == ["text", "label"]


# ---------------------------------------------------------------------------------------------------------------
# 3. A store serves any prefix of its examples


def test_serving_rule_compares_the_count_not_max_train_samples():
    from mudkd.core.store import serving_mismatches

    stored = {"data": "d1", "task": "sst-2", "max_train_samples": "2000"}
    assert serving_mismatches(stored, 2000, {"data": "d1", "task": "sst-2", "max_train_samples": "640"}, 640) == []
    assert serving_mismatches(stored, 2000, {"data": "d1", "max_train_samples": "None"}, 2000) == []
    assert serving_mismatches(stored, 2000, {"data": "d1"}, 3000) == ["examples (store 2,000, run 3,000)"]
    assert serving_mismatches(stored, 2000, {"data": "d2"}, 10) == ["data (store d1, run d2)"]


STORED, PREFIX, SEQ = 20, 12, 24


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Two stores of the same teacher and data: one built on the first 20 examples, one on the first 12."""
    root = tmp_path_factory.mktemp("prefix")
    models = make_teacher_and_student(root / "models")
    data = write_sst2_slice(root / "SST-2", 24, 8)
    built = {}
    for count in (STORED, PREFIX):
        out = root / f"store-{count}"
        result = runner.invoke(app, [*cache_args(models, data, count), "-o", str(out), "--json"])
        assert result.exit_code == 0, result.output
        built[count] = out
    return {"models": models, "data": data, "root": root, **built}


def cache_args(models: Path, data: Path, count: int) -> list[str]:
    return [
        "distill", "cache", "--teacher-model", str(models / "teacher"), "--student-model", str(models / "student"),
        "--task-name", "sst-2", "--data-dir", str(data), "--max-train-samples", str(count),
        "--max-seq-length", str(SEQ), "--keep-tokens", "8", "--teacher-batch-size", "4",
        # chunks of 4: both stores batch their first 12 examples alike, so float32 logits agree to the bit (a
        # batch of other examples may change a logit's last bit through the matrix kernels, whatever the data)
        "--set", "cache.chunk_size=4",
    ]  # fmt: skip


def hsk(stores, store: Path, count: int, out: str, *extra: str):
    args = ["distill", "hsk", "--hsk-store", str(store), "--student-model", str(stores["models"] / "student")]
    args += ["--task-name", "sst-2", "--data-dir", str(stores["data"]), "--max-train-samples", str(count)]
    args += ["--max-seq-length", str(SEQ), "--keep-tokens", "8", "--max-steps", "3", "--train-batch-size", "4"]
    return runner.invoke(app, [*args, "-o", str(stores["root"] / out), "--json", *extra])


def test_the_first_examples_of_a_larger_store_are_the_smaller_store(stores):
    from mudkd.core.store import HskStore

    big, small = HskStore.open(stores[STORED]), HskStore.open(stores[PREFIX])
    assert (len(big), len(small)) == (STORED, PREFIX)
    first, whole = big.get(np.arange(PREFIX)), small.get(np.arange(PREFIX))
    assert set(first) == set(whole) and "logits" in first
    for name in whole:
        np.testing.assert_array_equal(first[name], whole[name], err_msg=name)


def test_a_store_serves_a_run_on_a_prefix_exactly_as_a_store_built_for_it(stores):
    planned = hsk(stores, stores[STORED], PREFIX, "plan", "--dry-run")
    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.stdout)["budget"]["num_train_examples"] == PREFIX
    from_big = hsk(stores, stores[STORED], PREFIX, "from-big")
    from_small = hsk(stores, stores[PREFIX], PREFIX, "from-small")
    assert from_big.exit_code == 0, from_big.output
    assert from_small.exit_code == 0, from_small.output
    losses = json.loads(from_big.stdout)["step_losses"]
    assert len(losses) == 3 and losses == json.loads(from_small.stdout)["step_losses"]


def test_more_examples_than_stored_is_refused_naming_the_stored_count_in_dry_run_and_run(stores):
    expected = (
        f"Error: store {stores[PREFIX]} holds {PREFIX} examples of task 'sst-2'; this run asks for {STORED}\n"
        f"Hint: rebuild it with 'mudkd distill cache' for this run, or set task.max_train_samples <= {PREFIX} "
        f"(--max-train-samples {PREFIX})\n"
    )
    planned = hsk(stores, stores[PREFIX], STORED, "refused-plan", "--dry-run")
    ran = hsk(stores, stores[PREFIX], STORED, "refused-run")
    assert (planned.exit_code, ran.exit_code) == (2, 2)
    assert planned.stderr == expected and ran.stderr == expected
    assert not (stores["root"] / "refused-run").exists()


def test_other_data_is_refused_in_dry_run_and_run_alike(stores, tmp_path):
    changed = write_sst2_slice(tmp_path / "SST-2", 24, 8)
    (changed / "train.tsv").write_text((changed / "train.tsv").read_text() + "one more row\t1\n")
    results = []
    for extra in (["--dry-run"], []):
        result = hsk({**stores, "data": changed}, stores[STORED], PREFIX, f"other{len(extra)}", *extra)
        results.append(result)
        assert result.exit_code == 2
        assert f"store {stores[STORED]} ({STORED} examples of task 'sst-2') does not match this run: data (store" in (
            result.stderr
        )
    assert results[0].stderr == results[1].stderr


def test_prediction_stage_reads_the_same_rule(stores):
    args = ["distill", "pred", "--logits-store", str(stores[PREFIX]), "--student-model"]
    args += [str(stores["models"] / "student"), "--task-name", "sst-2", "--data-dir", str(stores["data"])]
    args += ["--max-seq-length", str(SEQ), "-o", str(stores["root"] / "pred"), "--dry-run"]
    refused = runner.invoke(app, [*args, "--max-train-samples", str(STORED)])
    assert refused.exit_code == 2 and f"holds {PREFIX} examples of task 'sst-2'; this run asks for {STORED}" in (
        refused.stderr
    )
    served = runner.invoke(app, [*args[:3], str(stores[STORED]), *args[4:], "--max-train-samples", str(PREFIX)])
    assert served.exit_code == 0, served.output


def test_a_sweep_from_a_given_store_plans_by_the_same_rule(stores):
    models, root = stores["models"], stores["root"]
    base = write(
        root / "sweep" / "base.toml",
        f'[task]\nname = "sst-2"\ndata_dir = "{stores["data"]}"\nmax_seq_length = {SEQ}\n'
        f'[teacher]\nmodel = "{models / "teacher"}"\n[student]\nmodel = "{models / "student"}"\n'
        f'[hsk]\nhsk_store = "{stores[PREFIX]}"\nkeep_tokens = 8\n',
    )
    sweep = write(root / "sweep" / "budgets.toml", f'base = "{base.name}"\n[grid]\nkeep_tokens = [4, 8]\n')
    args = ["sweep", str(sweep), "-o", str(root / "sweep-out"), "--dry-run", "--json"]
    refused = runner.invoke(app, [*args, "--max-train-samples", str(STORED)])
    assert refused.exit_code == 2
    assert f"Error: store {stores[PREFIX]} holds {PREFIX} examples of task 'sst-2'; this run asks for {STORED}" in (
        refused.stderr
    )
    served = runner.invoke(app, [*args, "--max-train-samples", str(PREFIX)])
    assert served.exit_code == 0, served.output
