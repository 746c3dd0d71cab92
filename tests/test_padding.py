"""Dynamic padding keeps HSK exact (issue 12): an example's targets do not depend on the batch it lands in.

Under ``exclude_padding`` (``hsk.pad_tokens = "exclude"``, the default) padding is never an HSK target: an example
of n real tokens fills slots 0..n−1 in the scheme's order (method.md §10) and the slots j ≥ n hold the placeholder
position j, zero target, no loss. The expected values below are derived from method.md's definitions (head-averaged
pre-softmax [CLS] scores, [SEP] forced to −10000, top-k), not from mudkd's own selection code.
"""

from __future__ import annotations

import math

import pytest
import torch

from mudkd.core.batching import PaddingCollator, length_sorted_batches
from mudkd.core.hsk import build_targets, hsk_loss, pack_targets, select_tokens, unpack_targets
from tests.helpers import budget_of

CLS, SEP, PAD = 2, 3, 0
SEQ, HIDDEN = 16, 32

SHORT = [CLS, 10, SEP]
MID = [CLS, 10, 11, 12, SEP]
PAIR = [CLS, 20, 21, SEP, 22, SEP]
LONG = [CLS, *range(30, 41), SEP]  # 13 tokens, longer than k = 8
EXAMPLES = {"short": SHORT, "mid": MID, "pair": PAIR, "long": LONG}


@pytest.fixture(scope="module")
def teacher():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=100,
        max_position_embeddings=SEQ,
    )
    return BertForSequenceClassification(config).eval()


def budget(**kwargs):
    kwargs.setdefault("num_student_layers", 2)
    return budget_of(num_teacher_layers=2, teacher_hidden=HIDDEN, max_seq_length=SEQ, **kwargs)


BUDGETS = {
    "left_first": {"keep_tokens": 8, "token_scheme": "left_first"},
    "attention": {"keep_tokens": 8, "token_scheme": "attention"},
    "attention_no_sep": {"keep_tokens": 8, "token_scheme": "attention_no_sep"},
    "3d-mag": {"keep_layers": 1, "keep_tokens": 8, "keep_hidden": 0.25},
    "uniform": {"keep_tokens": 8, "token_scheme": "left_first", "keep_hidden": 0.5, "hidden_scheme": "uniform_mask"},
    "all-tokens": {},
}


def batch_of(examples, pad_to=None):
    features = [
        {"input_ids": ids, "token_type_ids": [0] * len(ids), "attention_mask": [1] * len(ids)} for ids in examples
    ]
    return PaddingCollator(PAD, pad_to)(features)


def targets_of(teacher, examples, wanted, pad_to=None):
    inputs = batch_of(examples, pad_to)
    with torch.no_grad():
        states = teacher(**inputs, output_hidden_states=True).hidden_states
    return build_targets(
        teacher, states, inputs["input_ids"], inputs["attention_mask"], wanted, sep_token_id=SEP, exclude_padding=True
    )


def row(targets, b):
    """Example b's per-layer (token_index, valid, target, mask)."""
    return [(t.token_index[b], t.valid[b], t.target[b], None if t.mask is None else t.mask[b]) for t in targets]


def assert_same_rows(got, want):
    for (index, valid, target, mask), (index_w, valid_w, target_w, mask_w) in zip(got, want, strict=True):
        assert torch.equal(index, index_w)
        assert torch.equal(valid, valid_w)
        torch.testing.assert_close(target, target_w, rtol=0, atol=1e-5)
        assert (mask is None) == (mask_w is None)
        if mask is not None:
            assert torch.equal(mask, mask_w)


@pytest.mark.parametrize("name", BUDGETS)
@pytest.mark.parametrize("example", ["short", "mid", "pair", "long"])
def test_same_targets_whatever_the_batch(teacher, name, example):
    wanted = budget(**BUDGETS[name])
    ids = EXAMPLES[example]
    alone = row(targets_of(teacher, [ids], wanted), 0)
    assert_same_rows(row(targets_of(teacher, [ids, LONG], wanted), 0), alone)  # padded by a long neighbour
    assert_same_rows(row(targets_of(teacher, [SHORT, ids], wanted), 1), alone)  # next to a short one
    assert_same_rows(row(targets_of(teacher, [ids], wanted, pad_to=SEQ), 0), alone)  # static padding to T


def test_attention_no_sep_beyond_the_real_length_follows_method_md(teacher):
    wanted = budget(keep_layers=1, keep_tokens=8, token_scheme="attention_no_sep")
    (t_layer,), (a_layer,) = wanted.teacher_layers, wanted.attention_layers
    ids = PAIR  # 6 real tokens: [SEP]s at 3 and 5; k = 8 > 6
    inputs = batch_of([ids])
    with torch.no_grad():
        states = teacher(**inputs, output_hidden_states=True).hidden_states
        self_attention = teacher.bert.encoder.layer[a_layer].attention.self
        heads, size = self_attention.num_attention_heads, self_attention.attention_head_size
        hidden_in = states[a_layer][0]
        query = self_attention.query(hidden_in[0]).view(heads, size)
        keys = self_attention.key(hidden_in).view(len(ids), heads, size)
        score = [float(sum(query[h] @ keys[t, h] for h in range(heads)) / math.sqrt(size) / heads) for t in range(6)]
    non_sep = sorted((t for t in range(6) if ids[t] != SEP), key=lambda t: -score[t])
    expected = [*non_sep, 3, 5, 6, 7]  # real non-[SEP] by score, then the [SEP]s (both −10000, by position)
    # ... then the placeholders 6 and 7 (past the real length): no target, no loss.
    for padded in ([ids], [ids, LONG], [SHORT, ids]):
        b = padded.index(ids)
        (target,) = targets_of(teacher, padded, wanted)
        assert target.token_index[b].tolist() == expected
        assert target.valid[b].tolist() == [True] * 6 + [False] * 2
        want = torch.zeros(8, HIDDEN)
        want[:6] = states[t_layer][0, expected[:6]]
        torch.testing.assert_close(target.target[b], want, rtol=0, atol=1e-5)


def test_left_first_beyond_the_real_length_and_the_loss_over_real_slots(teacher):
    wanted = budget(keep_layers=1, keep_tokens=8, token_scheme="left_first")
    (target,) = targets_of(teacher, [SHORT, LONG], wanted)
    assert target.token_index[0].tolist() == list(range(8))
    assert target.valid[0].tolist() == [True] * 3 + [False] * 5
    assert target.valid[1].all()
    torch.manual_seed(1)
    student = torch.randn(2, len(LONG), HIDDEN)
    states = [student] * 3
    total, _ = hsk_loss(states, [target], "both")
    # method.md §8 MSE, over the real slots only: 3 of example 0, 8 of example 1.
    squared = ((student[0, :3] - target.target[0, :3]) ** 2).sum() + ((student[1, :8] - target.target[1]) ** 2).sum()
    assert float(total) == pytest.approx(float(squared / (11 * HIDDEN)), rel=1e-6)
    total_teacher_only, _ = hsk_loss(states, [target], "teacher_only")
    assert float(total_teacher_only) == pytest.approx(float(total), rel=1e-6)  # no width mask: same


def test_reference_rule_still_selects_padding():
    """``exclude_padding=False`` keeps the reference (Q6): left_first takes padding positions."""
    input_ids = torch.tensor([[CLS, 10, SEP, PAD, PAD, PAD]])
    picked = select_tokens("left_first", 5, None, input_ids, (input_ids != PAD).long(), SEP)
    assert picked.tolist() == [[0, 1, 2, 3, 4]]
    with pytest.raises(Exception, match="keep_tokens"):
        select_tokens("left_first", 7, None, input_ids, (input_ids != PAD).long(), SEP)
    excluded = select_tokens("left_first", 7, None, input_ids, (input_ids != PAD).long(), SEP, exclude_padding=True)
    assert excluded.tolist() == [list(range(7))]


@pytest.mark.parametrize("name", ["attention_no_sep", "3d-mag", "uniform", "all-tokens"])
def test_store_built_with_one_batching_read_with_another(teacher, name):
    """Pack targets from length-sorted batches; unpack them for random batches: same targets and losses."""
    wanted = budget(**BUDGETS[name])
    order = ["mid", "long", "short", "pair"]
    lengths = [len(EXAMPLES[n]) for n in order]
    stored: dict[str, torch.Tensor] = {}
    packed_rows: dict[int, dict[str, torch.Tensor]] = {}
    for indices in length_sorted_batches(lengths, 0, len(order), 2):  # the store's teacher pass
        packed = pack_targets(targets_of(teacher, [EXAMPLES[order[i]] for i in indices], wanted), wanted, torch.float32)
        for position, index in enumerate(indices):
            packed_rows[index] = {name: array[position] for name, array in packed.items()}
    for batch in ([2, 1], [0, 3], [3, 2, 0]):  # training batches of another composition
        examples = [EXAMPLES[order[i]] for i in batch]
        inputs = batch_of(examples)
        stored = {key: torch.stack([packed_rows[i][key] for i in batch]) for key in packed_rows[0]}
        from_store = unpack_targets(stored, wanted, lengths=inputs["attention_mask"].sum(dim=1))
        online = targets_of(teacher, examples, wanted)
        for b in range(len(batch)):
            assert_same_rows(row(from_store, b), row(online, b))
        torch.manual_seed(2)
        student = [torch.randn(len(batch), inputs["input_ids"].shape[1], HIDDEN) for _ in range(3)]
        for mode in ("both", "teacher_only"):
            assert float(hsk_loss(student, from_store, mode)[0]) == pytest.approx(
                float(hsk_loss(student, online, mode)[0]), rel=1e-5
            )


def test_collator_pads_to_the_longest_and_passes_columns_through():
    features = [
        {
            "input_ids": SHORT,
            "token_type_ids": [0] * 3,
            "attention_mask": [1] * 3,
            "labels": 1,
            "example_index": 4,
            "length": 3,
        },
        {
            "input_ids": MID,
            "token_type_ids": [0] * 5,
            "attention_mask": [1] * 5,
            "labels": 0,
            "example_index": 9,
            "length": 5,
        },
    ]
    batch = PaddingCollator(PAD)(features)
    assert batch["input_ids"].tolist() == [[*SHORT, PAD, PAD], MID]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert batch["labels"].tolist() == [1, 0] and batch["example_index"].tolist() == [4, 9]
    assert "length" not in batch
    assert PaddingCollator(PAD, pad_to=SEQ)(features)["input_ids"].shape == (2, SEQ)
