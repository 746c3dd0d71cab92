"""`mudkd augment` and transfer sets (issue 19): the algorithm on hand-built data, unlabelled files, the store's
origin flags, label masking, an unchanged store without a transfer set, and bad inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.core import augment as aug
from mudkd.core.augment import Augmenter, WordVectors, load_text_vectors, nearest_neighbours, replaceable
from mudkd.core.transfer import NO_LABEL, read_unlabeled, regression_loss
from mudkd.errors import DataError
from tests.helpers import make_teacher_and_student, save_tiny_tokenizer, tiny_vocab

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))


def words_of(text: str) -> list[str]:
    return text.split()


def multi_piece(word: str) -> int:
    return 2


# --------------------------------------------------------------------------------------------------------------------
# Neighbours


def test_nearest_neighbours_are_the_exact_cosine_top_k_in_any_block_size(monkeypatch):
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(300)]
    matrix = rng.normal(size=(300, 6)).astype(np.float32)
    vectors = WordVectors(words, matrix, "test")
    normal = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    expected = {}
    for query in ("w0", "w17", "w299"):
        scores = normal @ normal[words.index(query)]
        order = [words[i] for i in np.argsort(-scores, kind="stable") if words[i] != query]
        expected[query] = order[:5]
    whole = nearest_neighbours(vectors, ["w0", "w17", "w299", "absent"], 5)
    monkeypatch.setattr(aug, "_QUERY_BLOCK", 2)
    monkeypatch.setattr(aug, "_VOCAB_BLOCK", 7)  # many blocks: the running top-k merge must give the same answer
    blocked = nearest_neighbours(vectors, ["w0", "w17", "w299", "absent"], 5)
    assert whole == blocked == expected  # the word itself and words without a vector are left out


def test_neighbours_are_cached_per_vocabulary(tmp_path):
    vectors = WordVectors(["good", "great", "bad", "awful"], np.eye(4, dtype=np.float32) + 0.1, "test")
    first, cached = aug.cached_neighbours(vectors, ["good", "bad"], 2, tmp_path)
    assert not cached and set(first) == {"good", "bad"} and len(list(tmp_path.iterdir())) == 1
    again, cached = aug.cached_neighbours(vectors, ["bad", "good"], 2, tmp_path)
    assert cached and again == first
    _, cached = aug.cached_neighbours(vectors, ["good"], 2, tmp_path)  # another vocabulary: computed anew
    assert not cached and len(list(tmp_path.iterdir())) == 2


def test_text_vectors_file_and_its_errors(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("good 1 0\ngreat 0.9 0.1\nbad -1 0\n")
    vectors = load_text_vectors(path)
    assert vectors.words == ["good", "great", "bad"] and vectors.matrix.shape == (3, 2)
    assert nearest_neighbours(vectors, ["good"], 1) == {"good": ["great"]}
    with pytest.raises(DataError, match="not found"):
        load_text_vectors(tmp_path / "missing.txt")
    path.write_text("good 1 0\nbad 1\n")
    with pytest.raises(DataError, match="line 2"):
        load_text_vectors(path)


def test_package_vectors_are_located_without_import():
    matrix, index = aug.glove_package_files()
    assert matrix.name == aug.GLOVE_MATRIX and index.name == aug.GLOVE_INDEX


# --------------------------------------------------------------------------------------------------------------------
# The sampler


def test_replacement_probability_is_p():
    words = [f"word{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(400)]
    words = ["".join(c for c in w if c.isalpha()) for w in words]
    neighbours = {w: ["zz" + w] for w in words}
    for p in (0.1, 0.4, 0.8):
        augmenter = Augmenter(words_of, multi_piece, neighbours, p=p, num_per_example=20, seed=1)
        made = augmenter.augment(0, " ".join(words))
        replaced = [sum(new != old for new, old in zip(a.split(), words, strict=True)) for a, _ in made]
        assert abs(np.mean(replaced) / len(words) - p) < 0.02


def test_stop_words_punctuation_and_numbers_are_never_replaced():
    assert not replaceable("the") and not replaceable(",") and not replaceable("42") and replaceable("movie")
    neighbours = {w: ["x" + w] for w in ("the", ",", "42", "movie")}
    augmenter = Augmenter(words_of, multi_piece, neighbours, p=1.0, num_per_example=5)
    assert augmenter.augment(0, "the movie , 42") == [("the xmovie , 42", None)]


class FakeMaskedLM:
    """Proposes 'lm<word>' for every position it is asked about, and records them."""

    def __init__(self):
        self.asked = []

    def candidates(self, words, positions, top_k):
        self.asked.append(list(positions))
        return {i: [f"lm{words[i]}"] for i in positions}


def test_single_piece_words_use_the_masked_lm_and_multi_piece_words_the_neighbours():
    pieces = {"film": 1, "cinematography": 3, "great": 1, "unglovelike": 1}
    neighbours = {"film": ["movie"], "cinematography": ["photography"], "great": ["good"]}
    masked_lm = FakeMaskedLM()
    augmenter = Augmenter(words_of, pieces.__getitem__, neighbours, p=1.0, num_per_example=3, masked_lm=masked_lm)
    made = augmenter.augment(0, "great film cinematography")
    assert made == [("lmgreat lmfilm photography", None)]
    assert masked_lm.asked == [[0, 1]]  # only the single-piece words went to the masked LM
    without = Augmenter(words_of, pieces.__getitem__, neighbours, p=1.0, num_per_example=3)
    assert without.augment(0, "great film cinematography") == [("good movie photography", None)]


def test_pairs_are_augmented_on_each_side():
    neighbours = {"cat": ["dog"], "sat": ["stood"], "mat": ["rug"], "slept": ["rested"]}
    augmenter = Augmenter(words_of, multi_piece, neighbours, p=0.5, num_per_example=40, seed=3)
    made = augmenter.augment(5, "cat sat", "cat slept")
    assert all(b is not None for _, b in made)
    assert any(a != "cat sat" for a, _ in made) and any(b != "cat slept" for _, b in made)
    assert ("cat sat", "cat slept") not in made  # the original pair is never one of its own augmentations
    assert len(made) == len(set(made)) == 15  # 2**4 combinations, minus the original


def test_augmentation_is_deterministic_by_seed_and_drops_duplicates():
    neighbours = {w: [w + "a", w + "b", w + "c"] for w in ("red", "green", "blue", "sky", "grass")}
    make = lambda seed: Augmenter(words_of, multi_piece, neighbours, p=0.4, num_per_example=20, seed=seed)  # noqa: E731
    text = "red sky green grass blue"
    first = make(7).augment(3, text)
    assert first == make(7).augment(3, text)  # same seed, same example: the same set
    assert first != make(8).augment(3, text)
    assert first != make(7).augment(4, text)  # each example has its own draws (order of work does not matter)
    assert len(first) == len(set(first)) and (text, None) not in first and 0 < len(first) <= 20


def test_masked_lm_from_a_tiny_config(tmp_path):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tiny_vocab()),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertForMaskedLM(config).save_pretrained(tmp_path / "mlm")
    save_tiny_tokenizer(tmp_path / "mlm")
    masked_lm = aug.MaskedLM(str(tmp_path / "mlm"), batch_size=1)
    words = ["the", "movie", "is", "good"]
    found = masked_lm.candidates(words, [1, 3], 4)
    vocab = set(tiny_vocab())
    assert set(found) == {1, 3}
    for position, candidates in found.items():
        assert len(candidates) == 4 and words[position] not in candidates
        assert all(c in vocab and c.isalpha() and not c.startswith("[") for c in candidates)
    assert masked_lm.candidates(words, [1, 3], 4) == found  # deterministic (eval mode)

    # through the sampler: single-piece words take the LM's candidates, a multi-piece one its GloVe neighbours
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "mlm")
    count = aug.piece_counter(tokenizer)
    assert count("movie") == 1 and count("zebra") > 1
    augmenter = Augmenter(
        aug.word_splitter(tokenizer), count, {"zebra": ["horse"]}, p=1.0, num_per_example=5, masked_lm=masked_lm
    )
    made = augmenter.augment(0, "The movie is good zebra")
    assert made and all(a.split()[0] == "the" and a.split()[-1] == "horse" for a, _ in made)
    in_context = masked_lm.candidates(["the", "movie", "is", "good", "zebra"], [1, 3], augmenter.top_k)
    assert all(a.split()[1] in in_context[1] and a.split()[3] in in_context[3] for a, _ in made)


# --------------------------------------------------------------------------------------------------------------------
# Unlabelled files and label masking


@pytest.mark.parametrize(
    ("name", "text", "columns", "expected"),
    [
        ("u.txt", "a fine film\n\n  dull  \n", [], [("a fine film", None), ("dull", None)]),
        ("u.csv", "id,text\n1,a fine film\n2,dull\n", [], [("a fine film", None), ("dull", None)]),
        ("u.tsv", "sentence\tx\na fine film\t1\n", [], [("a fine film", None)]),
        (
            "u.jsonl",
            '{"review": "a fine film"}\n{"review": "dull"}\n',
            ["review"],
            [("a fine film", None), ("dull", None)],
        ),
        ("p.jsonl", '{"a": "x y", "b": "z"}\n', ["a", "b"], [("x y", "z")]),
    ],
)
def test_unlabeled_files_in_each_format(tmp_path, name, text, columns, expected):
    path = tmp_path / name
    path.write_text(text)
    assert read_unlabeled(path, columns) == expected


@pytest.mark.parametrize(("name", "text"), [("e.txt", "\n  \n"), ("e.csv", "text\n"), ("e.jsonl", "")])
def test_an_empty_unlabeled_file_is_refused(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match="no text"):
        read_unlabeled(tmp_path / name, [])


def test_regression_loss_uses_gold_labels_only_where_there_are_some():
    import torch

    predictions = torch.tensor([1.0, 2.0, 3.0])
    calls = []

    def teacher():
        calls.append(1)
        return torch.tensor([[0.0], [0.0], [5.0]])

    gold = regression_loss(predictions, torch.tensor([1.0, 1.0, 1.0]), teacher)
    assert float(gold) == pytest.approx((0 + 1 + 4) / 3) and not calls  # all labelled: no teacher call at all
    mixed = regression_loss(predictions, torch.tensor([1.0, 1.0, float("nan")]), teacher)
    assert float(mixed) == pytest.approx((0 + 1 + 4) / 3)  # the unlabelled one is compared with the teacher's 5.0
    assert calls == [1]


# --------------------------------------------------------------------------------------------------------------------
# End to end on tiny models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_teacher_and_student(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def vectors_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("vectors") / "vectors.txt"
    words = [w for w in tiny_vocab() if w.isalpha()]
    path.write_text("".join(w + " " + " ".join(f"{x:.4f}" for x in rng.normal(size=8)) + "\n" for w in words))
    return path


def data_args(glue_dir, samples=40):
    return ["--task-name", "sst-2", "--data-dir", glue_dir / "SST-2", "--max-train-samples", samples]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def run_json(*args):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def make_transfer_set(models, glue_dir, vectors_file, out, unlabeled):
    return run_json(
        "augment",
        "--teacher-model",
        models / "teacher",
        *data_args(glue_dir),
        "--num-per-example",
        3,
        "--vectors-file",
        vectors_file,
        "--unlabeled-file",
        unlabeled,
        "-o",
        out,
    )


def build_store(models, glue_dir, out, *extra):
    return run_json(
        "distill",
        "cache",
        "--teacher-model",
        models / "teacher",
        "--student-model",
        models / "student",
        *data_args(glue_dir),
        "--max-seq-length",
        24,
        "--config-3d",
        "1l_4t_0.5h",
        "--dtype",
        "float32",
        *extra,
        "-o",
        out,
    )


def test_store_labels_the_union_once_with_origin_flags(models, glue_dir, vectors_file, tmp_path):
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("a truly great film\nthe worst movie of the year\n")
    before = sorted(p.name for p in (glue_dir / "SST-2").iterdir())
    made = make_transfer_set(models, glue_dir, vectors_file, tmp_path / "transfer", unlabeled)
    assert sorted(p.name for p in (glue_dir / "SST-2").iterdir()) == before  # nothing in the data folder
    lines = [json.loads(line) for line in (tmp_path / "transfer" / "transfer.jsonl").read_text().splitlines()]
    assert made["num_original"] == 40 and made["unlabeled"] == 2 and 40 < made["augmented"] <= 120
    assert [line["origin"] for line in lines] == ["augmented"] * made["augmented"] + ["unlabeled"] * 2
    transfer = ["--set", f"augment.transfer_set={tmp_path / 'transfer'}"]
    stored = build_store(models, glue_dir, tmp_path / "store", *transfer)
    total = 40 + made["augmented"] + 2
    assert stored["num_examples"] == total
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["fields"]["origin"] == {"dtype": "uint8", "shape": [1]} and "transfer" in manifest["fingerprint"]
    assert manifest["meta"]["transfer"] == {"num_original": 40, "augmented": made["augmented"], "unlabeled": 2}
    origin = np.fromfile(tmp_path / "store" / "chunk-00000.origin.bin", dtype=np.uint8)
    assert origin.tolist() == [0] * 40 + [1] * made["augmented"] + [2] * 2

    # the union's labels: gold for the training examples, masked for the transfer set
    from mudkd.core.data import load_task
    from mudkd.core.models import load_tokenizer
    from mudkd.core.transfer import add_transfer
    from mudkd.recipe import build_recipe

    recipe = build_recipe(
        None,
        flags={
            "task.name": "sst-2",
            "task.data_dir": str(glue_dir / "SST-2"),
            "task.max_train_samples": 40,
            "task.max_seq_length": 24,
            "augment.transfer_set": str(tmp_path / "transfer"),
        },
    )
    tokenizer = load_tokenizer(str(models / "teacher"))
    data = add_transfer(load_task(recipe.task, tokenizer), recipe, tokenizer)
    labels = data.train["labels"]
    assert len(labels) == total and set(labels[:40]) <= {0, 1} and set(labels[40:]) == {NO_LABEL}

    # HSK and prediction distillation train on the union from the store; dev stays the original dev set
    hsk = run_json(
        "distill", "hsk", "--hsk-store", tmp_path / "store", "--student-model", models / "student",
        *data_args(glue_dir), "--max-seq-length", 24, "--config-3d", "1l_4t_0.5h", *transfer,
        "--num-train-epochs", 1, "--train-batch-size", 16, "-o", tmp_path / "hsk",
    )  # fmt: skip
    assert hsk["teacher_free"] and hsk["steps"] == -(-total // 16)
    pred = run_json(
        "distill", "pred", "--logits-store", tmp_path / "store", "--student-model", tmp_path / "hsk",
        *data_args(glue_dir), "--max-seq-length", 24, *transfer, "--num-train-epochs", 1, "--train-batch-size", 16,
        "-o", tmp_path / "pred",
    )  # fmt: skip
    assert pred["steps"] == -(-total // 16) and "accuracy" in pred["metrics"]
    # a run without the transfer set is served by the store's prefix (its training examples) ...
    plain = run_json(
        "distill", "pred", "--logits-store", tmp_path / "store", "--student-model", tmp_path / "hsk",
        *data_args(glue_dir), "--max-seq-length", 24, "--max-steps", 1, "-o", tmp_path / "plain",
    )  # fmt: skip
    assert plain["steps"] == 1
    # ... but never past it, into the transfer examples
    refused = invoke(
        "distill", "pred", "--logits-store", tmp_path / "store", "--student-model", tmp_path / "hsk",
        *data_args(glue_dir, samples=48), "--max-seq-length", 24, "--max-steps", 1, "-o", tmp_path / "past",
    )  # fmt: skip
    assert refused.exit_code == 2 and "examples (store 40, run 48)" in refused.stderr


def chunk_hashes(store: Path) -> dict[str, str]:
    names = ["manifest.json", *sorted(p.name for p in store.glob("chunk-*.bin"))]
    return {name: hashlib.sha256((store / name).read_bytes()).hexdigest() for name in names}


def test_a_store_without_transfer_set_is_unchanged(models, glue_dir, tmp_path):
    build_store(models, glue_dir, tmp_path / "plain")
    # augment settings without a transfer set must not reach the store: the same bytes, file for file
    build_store(models, glue_dir, tmp_path / "settings", "--set", "augment.p=0.9", "--set", "augment.enabled=true")
    assert chunk_hashes(tmp_path / "plain") == chunk_hashes(tmp_path / "settings")
    manifest = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert set(manifest["fields"]) == {"logits", "token_index", "values", "positions"}
    assert "transfer" not in manifest["fingerprint"] and "transfer" not in manifest["meta"]
    assert sorted(manifest["fingerprint"]) == sorted(
        ["budget", "data", "dtype", "max_seq_length", "max_train_samples", "pad_tokens", "task", "teacher", "tokenizer"]
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--vectors-file", "missing-vectors.txt"], "vectors file not found"),
        (["--p", "1.5"], "augment.p"),
        (["--unlabeled-file", "EMPTY"], "no text"),
        (["--num-per-example", "0"], "nothing to write"),
    ],
)
def test_bad_inputs_give_one_error_and_write_nothing(models, glue_dir, tmp_path, extra, message):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    extra = [str(empty) if value == "EMPTY" else value for value in extra]
    out = tmp_path / "out"
    result = invoke("augment", "--teacher-model", models / "teacher", *data_args(glue_dir), *extra, "-o", out)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not out.exists() and not Path(str(out) + ".partial").exists()


# --------------------------------------------------------------------------------------------------------------------
# The wizard proposes the reference's HSK length when a transfer set is stored


@pytest.mark.parametrize(
    ("answers", "epochs", "enabled"),
    [
        ({"task.name": "sst-2", "use_store": True, "augment.enabled": True}, 10.0, True),
        ({"task.name": "rte", "use_store": True, "augment.enabled": True}, 20.0, True),
        ({"task.name": "cola", "use_store": True, "augment.enabled": True, "hsk.num_train_epochs": 3.0}, 3.0, True),
        ({"task.name": "sst-2", "use_store": True, "augment.enabled": False}, 1.0, False),
        ({"task.name": "sst-2", "use_store": False, "augment.enabled": True}, 1.0, False),
    ],
)
def test_wizard_proposes_the_reference_hsk_length_with_a_stored_transfer_set(answers, epochs, enabled, glue_dir):
    from mudkd.recipe.schema import HskConfig
    from mudkd.recipe.wizard import answers_to_recipe

    folder = {"sst-2": "SST-2", "rte": "RTE", "cola": "CoLA"}[answers["task.name"]]
    recipe = answers_to_recipe({"task.data_dir": str(glue_dir / folder), **answers})
    default = HskConfig.model_fields["num_train_epochs"].default
    assert recipe.augment.enabled is enabled
    assert recipe.hsk.num_train_epochs == (epochs if enabled else default)


@pytest.mark.slow
def test_a_store_with_a_transfer_set_under_torchrun_equals_the_one_process_store(
    models, glue_dir, vectors_file, tmp_path, monkeypatch
):
    """``distill cache`` of the union on 2 ranks (torchrun, gloo): array for array the one-process store, origin
    flags included."""
    from mudkd.core.store import HskStore
    from tests.test_ddp import Torchrun

    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("a truly great film\nthe worst movie of the year\n")
    make_transfer_set(models, glue_dir, vectors_file, tmp_path / "transfer", unlabeled)
    args = [
        "distill", "cache", "--teacher-model", models / "teacher", "--student-model", models / "student",
        *data_args(glue_dir), "--max-seq-length", 24, "--config-3d", "1l_4t_0.5h", "--batch-size", 8,
        "--set", "cache.chunk_size=24", "--set", f"augment.transfer_set={tmp_path / 'transfer'}", "--json",
    ]  # fmt: skip
    ddp = Torchrun([*args, "-o", tmp_path / "ddp"], cwd=tmp_path, cache=tmp_path / "cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank (OMP_NUM_THREADS=1): fp32 sums split over threads round differently
    try:
        single = invoke(*args, "-o", tmp_path / "single")
    finally:
        torch.set_num_threads(threads)
    assert single.exit_code == 0, single.output
    code, stderr = ddp.wait()
    assert code == 0, stderr[-3000:]
    built, reference = HskStore.open(tmp_path / "ddp"), HskStore.open(tmp_path / "single")
    assert len(built) == len(reference) > 40 and "origin" in reference.fields
    got, want = built.get(range(len(reference))), reference.get(range(len(reference)))
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_pipeline_runs_the_augment_stage_before_the_store(models, glue_dir, vectors_file, tmp_path):
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("a truly great film\nthe worst movie of the year\n")
    out = tmp_path / "run"
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f"""
[task]
name = "sst-2"
data_dir = "{glue_dir / "SST-2"}"
max_seq_length = 16
max_train_samples = 32
max_eval_samples = 16
[teacher]
model = "{models / "teacher"}"
[student]
model = "{models / "student"}"
[hsk]
config_3d = "1l_4t_0.5h"
max_steps = 2
train_batch_size = 8
[pred]
max_steps = 2
train_batch_size = 8
eval_step = 2
[augment]
enabled = true
num_per_example = 2
vectors_file = "{vectors_file}"
unlabeled_file = "{unlabeled}"
[pipeline]
speed_check_steps = 0
latency_repeats = 1
[output]
dir = "{out}"
""")
    plan = run_json("pipeline", recipe, "--dry-run")
    assert [row["stage"] for row in plan["stages"]] == ["finetune", "score", "prune", "augment", "cache", "hsk", "pred"]
    schedule = {row["stage"]: row for row in plan["schedule"]}
    assert schedule["augment"]["examples"] == 2 + 2 * 32  # at most: every draw new, plus the unlabelled texts
    assert schedule["hsk"]["updates"] == 2 and schedule["cache"]["cpu_seconds"] > 0
    assert list(schedule) == ["augment", "cache", "hsk", "pred"]  # given models: no teacher stage runs
    run_json("pipeline", recipe)
    made = json.loads((out / "augment" / "transfer.json").read_text())
    manifest = json.loads((out / "store" / "manifest.json").read_text())
    assert manifest["num_examples"] == 32 + made["augmented"] + made["unlabeled"] and "origin" in manifest["fields"]
    resolved = (out / "store" / "recipe.resolved.toml").read_text()
    assert f'transfer_set = "{out / "augment"}"' in resolved
    again = run_json("pipeline", recipe, "--dry-run")  # every stage is done, the augment stage included
    assert {row["status"] for row in again["stages"]} == {"done", "not needed"}


def test_the_transfer_set_is_never_written_inside_the_data_folder(models, glue_dir, vectors_file, tmp_path):
    import shutil

    data = tmp_path / "SST-2"
    shutil.copytree(glue_dir / "SST-2", data)
    args = ["--task-name", "sst-2", "--data-dir", data, "--max-train-samples", 8, "--vectors-file", vectors_file]
    result = invoke("augment", "--teacher-model", models / "teacher", *args, "-o", data / "augmented")
    assert result.exit_code == 2 and result.stderr.count("Error:") == 1, result.output
    assert not (data / "augmented").exists() and not (data / "augmented.partial").exists()


def test_schedule_counts_updates_over_the_enlarged_set_and_times_them_by_the_documented_model():
    from mudkd.core import schedule
    from mudkd.recipe import build_recipe

    recipe = build_recipe(
        None,
        flags={"augment.enabled": True, "hsk.num_train_epochs": 6.0, "pred.max_steps": 7, "hsk.train_batch_size": 32},
    )
    rows = {
        row["stage"]: row
        for row in schedule.estimate(
            recipe,
            train_examples=2000,
            transfer_examples=7544,
            tokens=25.0,
            teacher_weights=10_000_000,
            student_weights=1_000_000,
            bytes_per_example=1564,
        )
    }
    assert rows["augment"]["examples"] == 7544 and rows["cache"]["examples"] == 9544
    assert rows["cache"]["store_bytes"] == 1564 * 9544
    assert rows["hsk"]["updates"] == 6 * 299 and rows["pred"]["updates"] == 7  # ceil(9544 / 32) = 299 per epoch
    forward = 2 * 10_000_000 * 25.0 / schedule.FLOPS_PER_SECOND
    assert rows["cache"]["cpu_seconds"] == pytest.approx(9544 * forward)
    step = 3 * 2 * 1_000_000 * 25.0 / schedule.FLOPS_PER_SECOND
    assert rows["hsk"]["cpu_seconds"] == pytest.approx(6 * 299 * (schedule.SECONDS_PER_UPDATE + 32 * step))
    assert schedule.mean_tokens(["one two three four"], 48) == 7  # 4 words x 1.25 + [CLS] + [SEP]
    assert "finetune" not in rows  # given models: no teacher stage to estimate


def test_schedule_estimates_the_teacher_stages_when_they_run():
    from mudkd.core import schedule
    from mudkd.recipe import build_recipe

    recipe = build_recipe(
        None,
        flags={"finetune.num_train_epochs": 2.0, "finetune.train_batch_size": 32, "score.num_train_epochs": 0.25},
    )
    rows = {
        row["stage"]: row
        for row in schedule.estimate(
            recipe,
            train_examples=2000,
            transfer_examples=0,
            tokens=25.0,
            teacher_weights=10_000_000,
            student_weights=1_000_000,
            bytes_per_example=None,
            teacher_stages=("finetune", "score", "prune"),
        )
    }
    assert list(rows) == ["finetune", "score", "prune", "cache", "hsk", "pred"]
    forward = 2 * 10_000_000 * 25.0 / schedule.FLOPS_PER_SECOND
    # 2 epochs of ceil(2000 / 32) = 63 updates, each 32 teacher training steps (3 forward passes) + the overhead
    assert rows["finetune"]["updates"] == 126 and rows["finetune"]["examples"] == 2000
    assert rows["finetune"]["cpu_seconds"] == pytest.approx(126 * (schedule.SECONDS_PER_UPDATE + 32 * 3 * forward))
    # a quarter epoch of forward + backward passes, no updates
    assert rows["score"]["examples"] == 500 and rows["score"]["updates"] == 0
    assert rows["score"]["cpu_seconds"] == pytest.approx(500 * 3 * forward)
    assert rows["prune"]["cpu_seconds"] is None


def test_unlabeled_rest_never_takes_the_selection_split(models, glue_dir, tmp_path):
    """The selection split is the training file's tail; as transfer text the student would learn the teacher's
    answers on the very examples its checkpoint is then chosen on."""
    rows = (glue_dir / "SST-2" / "train.tsv").read_text().splitlines()[1:]  # header, then one example per line
    tail = {row.split("\t")[0] for row in rows[-10:]}  # the carve: round(0.25 x 40) = 10 examples

    def transfer_texts(out, *extra):
        run_json("augment", "--teacher-model", models / "teacher", *data_args(glue_dir), "--num-per-example", 0,
                 "--set", "augment.unlabeled_rest=true", *extra, "-o", out)  # fmt: skip
        return [json.loads(line)["text_a"] for line in (out / "transfer.jsonl").read_text().splitlines()]

    everything = transfer_texts(tmp_path / "all")
    assert len(everything) == len(rows) - 40 and tail <= set(everything)
    held_out = transfer_texts(tmp_path / "held", "--set", "training.selection_split=0.25")
    assert len(held_out) == len(rows) - 40 - 10 and not tail & set(held_out)
