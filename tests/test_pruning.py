"""Taylor scoring, structured pruning, embedding factorisation, score files and parameter counts."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from mudkd.core.modeling_pruned_bert import PrunedBertForSequenceClassification
from mudkd.core.pruning import (
    TaylorScores,
    compute_taylor_scores,
    count_parameters,
    factorise_embedding,
    load_scores,
    model_fingerprint,
    prune_bert,
    save_pruned,
    save_scores,
)
from mudkd.errors import BudgetError, CheckpointError, DataError
from tests.helpers import make_tiny_bert

HEADS, HEAD_SIZE, FFN, HIDDEN = 4, 8, 64, 32


def _teacher(layers: int = 3, num_labels: int = 2, seed: int = 1):
    """A tiny BERT (hidden 32, 4 heads of 8, FFN 64) with weights large enough that every head matters."""
    model = make_tiny_bert(layers=layers, hidden=HIDDEN, heads=HEADS, intermediate=FFN, num_labels=num_labels)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "LayerNorm" not in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def _random_scores(layers: int = 3, seed: int = 0) -> TaylorScores:
    generator = torch.Generator().manual_seed(seed)
    return TaylorScores(
        head_scores=[torch.rand(HEADS, generator=generator, dtype=torch.float64) for _ in range(layers)],
        ffn_scores=[torch.rand(FFN, generator=generator, dtype=torch.float64) for _ in range(layers)],
        num_batches=1,
        num_examples=4,
        head_size=HEAD_SIZE,
        hidden_size=HIDDEN,
    )


def _inputs(vocab: int, batch: int = 4, seq: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (batch, seq), generator=generator)
    attention_mask = torch.ones(batch, seq, dtype=torch.long)
    attention_mask[1, 7:] = 0
    attention_mask[3, 3:] = 0
    input_ids[attention_mask == 0] = 0
    token_type_ids = torch.zeros(batch, seq, dtype=torch.long)
    token_type_ids[:, 6:] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def _batches(vocab: int, count: int = 3, num_labels: int = 2) -> list[dict[str, torch.Tensor]]:
    batches = []
    for index in range(count):
        batch = _inputs(vocab, seed=index)
        generator = torch.Generator().manual_seed(100 + index)
        if num_labels == 1:
            batch["labels"] = torch.randn(4, generator=generator)
        else:
            batch["labels"] = torch.randint(0, num_labels, (4,), generator=generator)
        batches.append(batch)
    return batches


def _max_diff(first: torch.Tensor, second: torch.Tensor) -> float:
    return float((first - second).detach().abs().max())


# ---------------------------------------------------------------------------------------------------------------------
# Pruning
# ---------------------------------------------------------------------------------------------------------------------


def test_keeping_everything_reproduces_the_teacher():
    teacher = _teacher()
    student = prune_bert(teacher, _random_scores(), keep_heads=HEADS, ffn_hidden_dim=FFN, emb_hidden_dim=-1)
    assert isinstance(student, PrunedBertForSequenceClassification)
    assert not student.training
    inputs = _inputs(teacher.config.vocab_size)
    with torch.no_grad():
        expected = teacher(**inputs, output_hidden_states=True)
        actual = student(**inputs, output_hidden_states=True)
    assert _max_diff(actual.logits, expected.logits) <= 1e-5
    assert len(actual.hidden_states) == len(expected.hidden_states) == 4
    for mine, theirs in zip(actual.hidden_states, expected.hidden_states, strict=True):
        assert _max_diff(mine, theirs) <= 1e-5
    assert count_parameters(student) == count_parameters(teacher)


def test_pruning_equals_the_teacher_with_removed_heads_and_neurons_zeroed():
    teacher = _teacher()
    scores = _random_scores()
    student = prune_bert(teacher, scores, keep_heads=2, ffn_hidden_dim=20, emb_hidden_dim=-1)

    zeroed = copy.deepcopy(teacher)
    with torch.no_grad():
        for index, layer in enumerate(zeroed.bert.encoder.layer):
            kept_heads = set(torch.topk(scores.head_scores[index], 2).indices.tolist())
            for head in set(range(HEADS)) - kept_heads:
                layer.attention.output.dense.weight[:, head * HEAD_SIZE : (head + 1) * HEAD_SIZE] = 0
            kept_neurons = torch.topk(scores.ffn_scores[index], 20).indices
            removed = torch.ones(FFN, dtype=torch.bool)
            removed[kept_neurons] = False
            layer.output.dense.weight[:, removed] = 0
    inputs = _inputs(teacher.config.vocab_size)
    with torch.no_grad():
        expected = zeroed(**inputs).logits
        assert _max_diff(expected, teacher(**inputs).logits) > 1e-2  # the removed parts did matter
        assert _max_diff(student(**inputs).logits, expected) <= 1e-5
    shapes = student.bert.encoder.layer[0]
    assert shapes.attention.self.query.weight.shape == (2 * HEAD_SIZE, HIDDEN)
    assert shapes.attention.output.dense.weight.shape == (HIDDEN, 2 * HEAD_SIZE)
    assert shapes.intermediate.dense.weight.shape == (20, HIDDEN)
    assert shapes.output.dense.weight.shape == (HIDDEN, 20)


def test_heads_and_neurons_are_the_top_ones_of_each_layer():
    teacher = _teacher()
    scores = _random_scores()
    # Layer 0 and layer 1 prefer different heads; the reference's Q19 counter bug would reuse layer 0's choice.
    scores.head_scores[0] = torch.tensor([0.1, 0.7, 0.2, 0.9], dtype=torch.float64)  # top-2: heads 3, 1
    scores.head_scores[1] = torch.tensor([0.8, 0.1, 0.6, 0.3], dtype=torch.float64)  # top-2: heads 0, 2
    scores.head_scores[2] = torch.tensor([0.2, 0.3, 0.9, 0.1], dtype=torch.float64)  # top-2: heads 2, 1
    scores.ffn_scores[1] = torch.arange(FFN, dtype=torch.float64).flip(0)  # top-5: neurons 0..4
    student = prune_bert(teacher, scores, keep_heads=2, ffn_hidden_dim=5, emb_hidden_dim=-1)
    for index, expected_heads in enumerate(([3, 1], [0, 2], [2, 1])):
        source, target = teacher.bert.encoder.layer[index], student.bert.encoder.layer[index]
        rows = torch.cat([torch.arange(head * HEAD_SIZE, (head + 1) * HEAD_SIZE) for head in expected_heads])
        for name in ("query", "key", "value"):
            assert torch.equal(
                getattr(target.attention.self, name).weight, getattr(source.attention.self, name).weight[rows]
            )
            assert torch.equal(
                getattr(target.attention.self, name).bias, getattr(source.attention.self, name).bias[rows]
            )
        assert torch.equal(target.attention.output.dense.weight, source.attention.output.dense.weight[:, rows])
        assert torch.equal(target.attention.output.dense.bias, source.attention.output.dense.bias)
        neurons = torch.topk(scores.ffn_scores[index], 5).indices.sort().values
        assert torch.equal(target.intermediate.dense.weight, source.intermediate.dense.weight[neurons])
        assert torch.equal(target.intermediate.dense.bias, source.intermediate.dense.bias[neurons])
        assert torch.equal(target.output.dense.weight, source.output.dense.weight[:, neurons])
        assert torch.equal(target.output.dense.bias, source.output.dense.bias)
    # Original neuron order is kept, not score order.
    assert torch.equal(
        student.bert.encoder.layer[1].intermediate.dense.weight,
        teacher.bert.encoder.layer[1].intermediate.dense.weight[:5],
    )


def test_depth_keeps_first_layers_or_an_explicit_list_with_their_own_scores():
    teacher = _teacher()
    scores = _random_scores()
    first_two = prune_bert(teacher, scores, keep_heads=HEADS, num_layers=2, ffn_hidden_dim=FFN, emb_hidden_dim=-1)
    assert first_two.config.num_hidden_layers == 2
    inputs = _inputs(teacher.config.vocab_size)
    with torch.no_grad():
        teacher_states = teacher(**inputs, output_hidden_states=True).hidden_states
        student_states = first_two(**inputs, output_hidden_states=True).hidden_states
    assert _max_diff(student_states[2], teacher_states[2]) <= 1e-5

    scores.head_scores[2] = torch.tensor([0.0, 0.0, 1.0, 2.0], dtype=torch.float64)
    picked = prune_bert(teacher, scores, keep_heads=2, layers=[2, 0], ffn_hidden_dim=FFN, emb_hidden_dim=-1)
    query = teacher.bert.encoder.layer[2].attention.self.query.weight
    # Student layer 0 is teacher layer 2, whose own top-2 heads are 3 then 2 (topk order).
    expected = torch.cat([query[3 * HEAD_SIZE : 4 * HEAD_SIZE], query[2 * HEAD_SIZE : 3 * HEAD_SIZE]])
    assert torch.equal(picked.bert.encoder.layer[0].attention.self.query.weight, expected)


def test_full_rank_factorisation_reproduces_the_embeddings():
    teacher = _teacher()
    student = prune_bert(teacher, _random_scores(), keep_heads=HEADS, ffn_hidden_dim=FFN, emb_hidden_dim=HIDDEN)
    embeddings = student.bert.embeddings
    rebuilt = embeddings.word_embeddings.weight @ embeddings.word_embeddings_proj.weight.T
    assert _max_diff(rebuilt, teacher.bert.embeddings.word_embeddings.weight) <= 1e-4
    inputs = _inputs(teacher.config.vocab_size)
    with torch.no_grad():
        assert _max_diff(student(**inputs).logits, teacher(**inputs).logits) <= 1e-4


def test_low_rank_factorisation_is_the_best_rank_r_approximation():
    teacher = _teacher()
    matrix = teacher.bert.embeddings.word_embeddings.weight.detach().double()
    singular = torch.linalg.svdvals(matrix)
    for rank in (1, 5, 16):
        student = prune_bert(teacher, _random_scores(), keep_heads=2, ffn_hidden_dim=8, emb_hidden_dim=rank)
        embeddings = student.bert.embeddings
        assert embeddings.word_embeddings.weight.shape == (teacher.config.vocab_size, rank)
        assert embeddings.word_embeddings_proj.weight.shape == (HIDDEN, rank)
        rebuilt = (
            embeddings.word_embeddings.weight.double() @ embeddings.word_embeddings_proj.weight.double().T
        ).detach()
        error = torch.linalg.matrix_norm(matrix - rebuilt)
        # Eckart–Young: the best rank-r error is the norm of the tail singular values.
        assert error == pytest.approx(float(singular[rank:].square().sum().sqrt()), rel=1e-4)
    codes, projection = factorise_embedding(matrix, 5)
    assert torch.allclose(projection.T @ projection, torch.eye(5, dtype=torch.float64), atol=1e-10)


def test_factorised_student_can_be_pruned_again():
    teacher = _teacher()
    student = prune_bert(teacher, _random_scores(), keep_heads=3, ffn_hidden_dim=30, emb_hidden_dim=HIDDEN)
    again = prune_bert(student, _student_scores(student), keep_heads=3, ffn_hidden_dim=30, emb_hidden_dim=-1)
    inputs = _inputs(teacher.config.vocab_size)
    with torch.no_grad():
        assert _max_diff(again(**inputs).logits, student(**inputs).logits) <= 1e-4


def _student_scores(model) -> TaylorScores:
    layers = model.bert.encoder.layer
    return TaylorScores(
        head_scores=[torch.ones(layer.attention.self.num_attention_heads, dtype=torch.float64) for layer in layers],
        ffn_scores=[torch.ones(layer.intermediate.dense.out_features, dtype=torch.float64) for layer in layers],
        num_batches=1,
        num_examples=1,
        head_size=HEAD_SIZE,
        hidden_size=HIDDEN,
    )


@pytest.mark.parametrize(
    ("budget", "fragment"),
    [
        ({"keep_heads": 5}, "keep_heads=5"),
        ({"keep_heads": 0}, "keep_heads=0"),
        ({"ffn_hidden_dim": 65}, "ffn_hidden_dim=65"),
        ({"ffn_hidden_dim": 0}, "ffn_hidden_dim=0"),
        ({"num_layers": 4}, "num_layers=4"),
        ({"num_layers": 0}, "num_layers=0"),
        ({"layers": [0, 3]}, "out of range"),
        ({"layers": [1, 1]}, "duplicates"),
        ({"layers": [0], "num_layers": 1}, "not both"),
        ({"emb_hidden_dim": 33}, "emb_hidden_dim=33"),
        ({"emb_hidden_dim": 0}, "emb_hidden_dim=0"),
        ({"emb_hidden_dim": -2}, "emb_hidden_dim=-2"),
    ],
)
def test_budgets_that_do_not_fit_raise_budget_error(budget, fragment):
    teacher = _teacher()
    arguments = {"keep_heads": 2, "ffn_hidden_dim": 16, "emb_hidden_dim": -1, **budget}
    with pytest.raises(BudgetError) as caught:
        prune_bert(teacher, _random_scores(), **arguments)
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.hint


def test_scores_from_another_model_raise_checkpoint_error():
    teacher = _teacher()
    with pytest.raises(CheckpointError) as caught:
        prune_bert(teacher, _random_scores(layers=2), keep_heads=2, ffn_hidden_dim=16, emb_hidden_dim=-1)
    assert "another model" in caught.value.message
    assert "\n" not in caught.value.message


# ---------------------------------------------------------------------------------------------------------------------
# Taylor scores
# ---------------------------------------------------------------------------------------------------------------------


def _brute_force_scores(model, batches, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-parameter gradients with torch.autograd.grad, summed as |g| over batches, times |w|, reduced by hand."""
    model.train()
    layers = model.bert.encoder.layer
    weights = []
    for layer in layers:
        weights += [layer.attention.output.dense.weight, layer.intermediate.dense.weight, layer.output.dense.weight]
    sums = [torch.zeros_like(weight, dtype=torch.float64) for weight in weights]
    torch.manual_seed(seed)
    for batch in batches:
        loss = model(**batch).loss
        for total, gradient in zip(sums, torch.autograd.grad(loss, weights), strict=True):
            total += gradient.double().abs()
    model.eval()
    head_scores, ffn_scores = [], []
    for index in range(len(layers)):
        w_o, w_in, w_out = weights[3 * index : 3 * index + 3]
        i_o = w_o.detach().double().abs() * sums[3 * index]
        i_in = w_in.detach().double().abs() * sums[3 * index + 1]
        i_out = w_out.detach().double().abs() * sums[3 * index + 2]
        heads = torch.zeros(HEADS, dtype=torch.float64)
        for head in range(HEADS):
            for column in range(head * HEAD_SIZE, (head + 1) * HEAD_SIZE):
                heads[head] += i_o[:, column].sum()
        neurons = torch.zeros(FFN, dtype=torch.float64)
        for neuron in range(FFN):
            neurons[neuron] = i_in[neuron, :].sum() + i_out[:, neuron].sum()
        head_scores.append(heads)
        ffn_scores.append(neurons)
    return head_scores, ffn_scores


@pytest.mark.parametrize("num_labels", [2, 1])
def test_taylor_scores_match_a_brute_force_computation(num_labels):
    teacher = _teacher(num_labels=num_labels)
    batches = _batches(teacher.config.vocab_size, num_labels=num_labels)
    before = {name: value.clone() for name, value in teacher.state_dict().items()}
    flags = {name: parameter.requires_grad for name, parameter in teacher.named_parameters()}
    steps = []

    torch.manual_seed(7)  # dropout is on, so both computations must draw the same masks
    scores = compute_taylor_scores(teacher, batches, on_step=lambda step, loss: steps.append((step, loss)))
    expected_heads, expected_ffn = _brute_force_scores(teacher, batches, seed=7)

    for index in range(3):
        assert torch.allclose(scores.head_scores[index], expected_heads[index], rtol=1e-5, atol=0)
        assert torch.allclose(scores.ffn_scores[index], expected_ffn[index], rtol=1e-5, atol=0)
        assert scores.head_scores[index].dtype == torch.float64
    assert scores.num_batches == 3 and scores.num_examples == 12
    assert [step for step, _ in steps] == [1, 2, 3]
    assert all(loss > 0 for _, loss in steps)
    for name, value in teacher.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert not teacher.training
    assert {name: parameter.requires_grad for name, parameter in teacher.named_parameters()} == flags
    assert all(parameter.grad is None for parameter in teacher.parameters())
    assert scores.fingerprint == model_fingerprint(teacher)


def test_taylor_scores_use_train_mode_dropout():
    teacher = _teacher()
    batches = _batches(teacher.config.vocab_size, count=1)
    torch.manual_seed(0)
    first = compute_taylor_scores(teacher, batches)
    torch.manual_seed(1)
    second = compute_taylor_scores(teacher, batches)
    assert not torch.allclose(first.head_scores[0], second.head_scores[0])


def test_taylor_scores_work_on_a_pruned_student_and_reject_bad_batches():
    student = prune_bert(_teacher(), _random_scores(), keep_heads=2, ffn_hidden_dim=10, emb_hidden_dim=8)
    scores = compute_taylor_scores(student, _batches(student.config.vocab_size, count=2))
    assert scores.num_heads == [2, 2, 2]
    assert scores.ffn_sizes == [10, 10, 10]
    assert all(bool((values > 0).all()) for values in scores.head_scores + scores.ffn_scores)
    with pytest.raises(DataError):
        compute_taylor_scores(student, [])
    unlabeled = _batches(student.config.vocab_size, count=1)
    del unlabeled[0]["labels"]
    with pytest.raises(DataError):
        compute_taylor_scores(student, unlabeled)
    assert all(parameter.requires_grad for parameter in student.parameters())


# ---------------------------------------------------------------------------------------------------------------------
# Score files and fingerprints
# ---------------------------------------------------------------------------------------------------------------------


def test_scores_round_trip_and_summary(tmp_path):
    teacher = _teacher()
    scores = _random_scores()
    fingerprint = model_fingerprint(teacher)
    save_scores(scores, tmp_path, model_fingerprint=fingerprint, extra={"task": "sst2"})
    loaded = load_scores(tmp_path, expect_fingerprint=fingerprint, model=teacher)
    for mine, theirs in zip(
        loaded.head_scores + loaded.ffn_scores, scores.head_scores + scores.ffn_scores, strict=True
    ):
        assert torch.equal(mine, theirs)
    assert loaded.extra == {"task": "sst2"}
    assert loaded.fingerprint == fingerprint
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["layers"]) == 3
    layer0 = summary["layers"][0]
    assert layer0["top_heads"] == torch.argsort(scores.head_scores[0], descending=True).tolist()
    assert layer0["heads"]["max"] == pytest.approx(float(scores.head_scores[0].max()))
    assert layer0["ffn"]["min"] == pytest.approx(float(scores.ffn_scores[0].min()))


def test_load_scores_errors(tmp_path):
    teacher = _teacher()
    with pytest.raises(CheckpointError, match="no importance scores"):
        load_scores(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "importance.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="malformed") as caught:
        load_scores(tmp_path / "bad")
    assert "\n" not in caught.value.message

    save_scores(_random_scores(), tmp_path / "other", model_fingerprint=model_fingerprint(_teacher(seed=2)))
    with pytest.raises(CheckpointError, match="another model") as caught:
        load_scores(tmp_path / "other", model=teacher)
    assert "\n" not in caught.value.message
    save_scores(_random_scores(layers=2), tmp_path / "shallow", model_fingerprint=model_fingerprint(teacher))
    with pytest.raises(CheckpointError, match="another model"):
        load_scores(tmp_path / "shallow", model=teacher)


def test_fingerprint_tracks_weights_and_shape():
    teacher = _teacher()
    assert model_fingerprint(teacher) == model_fingerprint(copy.deepcopy(teacher))
    assert len(model_fingerprint(teacher)) == 16
    changed = copy.deepcopy(teacher)
    with torch.no_grad():
        changed.bert.encoder.layer[1].attention.output.dense.weight[0, 0] += 1.0
    assert model_fingerprint(changed) != model_fingerprint(teacher)
    assert model_fingerprint(_teacher(layers=2)) != model_fingerprint(teacher)


# ---------------------------------------------------------------------------------------------------------------------
# Sizes and saving
# ---------------------------------------------------------------------------------------------------------------------


def test_count_parameters_per_component():
    teacher = _teacher()
    vocab = teacher.config.vocab_size
    counts = count_parameters(teacher)
    assert counts["total"] == sum(parameter.numel() for parameter in teacher.parameters())
    assert counts["total"] == sum(counts[key] for key in ("embeddings", "encoder", "pooler", "classifier"))
    assert counts["pooler"] == HIDDEN * HIDDEN + HIDDEN
    assert counts["classifier"] == HIDDEN * 2 + 2

    student = prune_bert(teacher, _random_scores(), keep_heads=2, num_layers=2, ffn_hidden_dim=10, emb_hidden_dim=6)
    small = count_parameters(student)
    inner = 2 * HEAD_SIZE
    per_layer = 3 * (HIDDEN * inner + inner) + (inner * HIDDEN + HIDDEN) + 2 * HIDDEN
    per_layer += (HIDDEN * 10 + 10) + (10 * HIDDEN + HIDDEN) + 2 * HIDDEN
    embeddings = vocab * 6 + 6 * HIDDEN + 128 * HIDDEN + 2 * HIDDEN + 2 * HIDDEN
    assert small["encoder"] == 2 * per_layer
    assert small["embeddings"] == embeddings
    assert small["total"] == embeddings + 2 * per_layer + counts["pooler"] + counts["classifier"]


def test_save_pruned_writes_a_loadable_directory(tmp_path):
    from transformers import AutoTokenizer

    from mudkd.core.modeling_pruned_bert import register
    from tests.helpers import save_tiny_tokenizer

    save_tiny_tokenizer(tmp_path / "tok")
    teacher = _teacher()
    student = prune_bert(teacher, _random_scores(), keep_heads=1, ffn_hidden_dim=7, emb_hidden_dim=4)
    directory = save_pruned(student, AutoTokenizer.from_pretrained(tmp_path / "tok"), tmp_path / "out")
    names = {path.name for path in directory.iterdir()}
    assert {"config.json", "model.safetensors", "modeling_pruned_bert.py", "tokenizer_config.json"} <= names
    register()
    from transformers import AutoModelForSequenceClassification

    loaded = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    inputs = _inputs(teacher.config.vocab_size)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, student(**inputs).logits)


# ---------------------------------------------------------------------------------------------------------------------
# The real MiniLM
# ---------------------------------------------------------------------------------------------------------------------

_SUBJECTS = ["the movie", "this film", "the plot", "her acting", "the soundtrack", "the ending", "his script", "it"]
_VERDICTS = ["was wonderful", "felt boring", "is a delight", "was a mess", "made me laugh", "dragged on"]


@pytest.mark.slow
def test_minilm_scored_pruned_saved_and_reloaded(minilm_path, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification

    from mudkd.core.modeling_pruned_bert import register

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    teacher = BertForSequenceClassification.from_pretrained(minilm_path, num_labels=2).eval()
    sentences = [f"{subject} {verdict}." for subject in _SUBJECTS for verdict in _VERDICTS][:64]
    labels = torch.tensor([index % 2 for index in range(len(sentences))])
    batches = []
    for start in range(0, len(sentences), 16):
        batch = dict(tokenizer(sentences[start : start + 16], padding=True, return_tensors="pt"))
        batch["labels"] = labels[start : start + 16]
        batches.append(batch)

    scores = compute_taylor_scores(teacher, batches)
    assert scores.num_heads == [12] * 6 and scores.ffn_sizes == [1536] * 6
    save_scores(scores, tmp_path / "scores", model_fingerprint=model_fingerprint(teacher), extra={})
    scores = load_scores(tmp_path / "scores", model=teacher)

    student = prune_bert(teacher, scores, keep_heads=2, num_layers=3, ffn_hidden_dim=384, emb_hidden_dim=64)
    save_pruned(student, tokenizer, tmp_path / "student")
    register()
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student").eval()
    inputs = tokenizer(sentences[:8], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = loaded(**inputs).logits
        assert torch.equal(logits, student(**inputs).logits)
    assert logits.shape == (8, 2) and torch.isfinite(logits).all()

    before, after = count_parameters(teacher), count_parameters(student)
    vocab, hidden = 30522, 384
    assert after["embeddings"] == vocab * 64 + 64 * hidden + 512 * hidden + 2 * hidden + 2 * hidden
    inner = 2 * 32
    per_layer = 3 * (hidden * inner + inner) + (inner * hidden + hidden) + 2 * hidden
    per_layer += (hidden * 384 + 384) + (384 * hidden + hidden) + 2 * hidden
    assert after["encoder"] == 3 * per_layer
    assert after["pooler"] == before["pooler"] and after["classifier"] == before["classifier"]
    assert after["total"] < before["total"] / 3


def test_rosita6_shape_has_the_paper_parameter_count():
    from mudkd.core.modeling_pruned_bert import PrunedBertConfig

    config = PrunedBertConfig(
        num_hidden_layers=6,
        attention_head_size=64,
        num_heads_per_layer=[2] * 6,
        intermediate_sizes=[768] * 6,
        emb_hidden_dim=128,
    )
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = PrunedBertForSequenceClassification(config)
    counts = count_parameters(model)
    # method.md §6 step 8: embeddings 4,401,408; 6 layers of 1,578,624; pooler 590,592.
    assert counts["embeddings"] == 4_401_408
    assert counts["encoder"] == 6 * 1_578_624
    assert counts["pooler"] == 590_592
