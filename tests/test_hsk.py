"""HSK targets, token selection, magnitude masks, the HSK loss and the store format (method.md §8–§12, §16)."""

from __future__ import annotations

import math

import pytest
import torch

from mudkd.core.hsk import (
    LayerTarget,
    build_targets,
    cls_attention_scores,
    gather_tokens,
    hsk_loss,
    magnitude_mask,
    pack_targets,
    select_tokens,
    unpack_targets,
)
from mudkd.errors import BudgetError, StoreError
from mudkd.knowledge import uniform_mask_dims
from tests.helpers import budget_of

CLS, SEP, PAD = 2, 3, 0  # the tiny vocabulary of 100 ids has no 101/102
SEQ = 8
HIDDEN = 32


def tiny_config():
    from transformers import BertConfig

    return BertConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=100,
        attn_implementation="eager",
    )


@pytest.fixture(scope="module")
def teacher_batch():
    """A tiny eval-mode teacher and one mixed batch: a single sentence, a pair, and a full-length pair."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_config()).eval()
    input_ids = torch.tensor(
        [
            [CLS, 10, 11, SEP, PAD, PAD, PAD, PAD],
            [CLS, 10, 11, SEP, 12, 13, SEP, PAD],
            [CLS, 20, 21, 22, SEP, 23, 24, SEP],
        ]
    )
    attention_mask = (input_ids != PAD).long()
    with torch.no_grad():
        output = teacher(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, output_attentions=True
        )
    return teacher, output, input_ids, attention_mask


def tiny_budget(**kwargs):
    kwargs.setdefault("num_student_layers", 2)
    return budget_of(num_teacher_layers=2, teacher_hidden=HIDDEN, max_seq_length=SEQ, **kwargs)


def assert_same_targets(actual: list[LayerTarget], expected: list[LayerTarget]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert (got.student_layer, got.teacher_layer) == (want.student_layer, want.teacher_layer)
        assert (got.token_index is None) == (want.token_index is None)
        if want.token_index is not None:
            assert torch.equal(got.token_index, want.token_index)
        assert got.target.dtype == torch.float32
        assert torch.equal(got.target, want.target)
        assert (got.mask is None) == (want.mask is None)
        if want.mask is not None:
            assert torch.equal(got.mask, want.mask)


# -- [CLS] attention scores ---------------------------------------------------------------------------------------


def test_cls_attention_scores_match_a_manual_computation(teacher_batch):
    teacher, output, _, attention_mask = teacher_batch
    layer = teacher.bert.encoder.layer[1]
    hidden_in = output.hidden_states[1]
    query_w, query_b = layer.attention.self.query.weight, layer.attention.self.query.bias
    key_w, key_b = layer.attention.self.key.weight, layer.attention.self.key.bias
    heads, size = 4, HIDDEN // 4
    expected = torch.zeros(3, SEQ)
    query_w, query_b, key_w, key_b = (param.detach() for param in (query_w, query_b, key_w, key_b))
    for b in range(3):
        query = query_w @ hidden_in[b, 0] + query_b
        for t in range(SEQ):
            key = key_w @ hidden_in[b, t] + key_b
            per_head = [
                float(query[h * size : (h + 1) * size] @ key[h * size : (h + 1) * size]) / math.sqrt(size)
                + (0.0 if attention_mask[b, t] else -10000.0)
                for h in range(heads)
            ]
            expected[b, t] = sum(per_head) / heads
    with torch.no_grad():
        scores = cls_attention_scores(layer, hidden_in, attention_mask)
    assert scores.shape == (3, SEQ)
    torch.testing.assert_close(scores, expected, atol=1e-4, rtol=1e-5)


def test_cls_attention_scores_softmax_equals_hf_eager_attention(teacher_batch):
    teacher, output, _, attention_mask = teacher_batch
    assert teacher.config._attn_implementation == "eager"
    for index, layer in enumerate(teacher.bert.encoder.layer):
        with torch.no_grad():
            per_head = cls_attention_scores(layer, output.hidden_states[index], attention_mask, average_heads=False)
        assert per_head.shape == (3, 4, SEQ)
        torch.testing.assert_close(per_head.softmax(dim=-1), output.attentions[index][:, :, 0, :], atol=1e-6, rtol=1e-5)


def test_cls_attention_scores_work_on_a_bare_bert_model():
    from transformers import BertModel

    torch.manual_seed(1)
    model = BertModel(tiny_config()).eval()
    input_ids = torch.tensor([[CLS, 5, 6, SEP, PAD]])
    attention_mask = (input_ids != PAD).long()
    with torch.no_grad():
        output = model(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, output_attentions=True
        )
        per_head = cls_attention_scores(
            model.encoder.layer[0], output.hidden_states[0], attention_mask, average_heads=False
        )
    torch.testing.assert_close(per_head.softmax(-1), output.attentions[0][:, :, 0, :], atol=1e-6, rtol=1e-5)
    # Padded keys get exactly the reference's -10000 added to every head.
    assert (per_head[0, :, 4] < -9000).all()


# -- token selection ----------------------------------------------------------------------------------------------

# Crafted: a single sentence, a pair and a padded pair with an empty first segment, in one batch (T = 6).
IDS = torch.tensor([[101, 7, 8, 102, 0, 0], [101, 7, 102, 8, 9, 102], [101, 102, 5, 102, 0, 0]])
MASK = (IDS != 0).long()
SCORES = torch.tensor(
    [
        [1.0, 3.0, 2.0, 5.0, -10000.0 + 0.5, -10000.0 - 0.5],
        [0.0, 1.0, 9.0, 1.0, 4.0, 8.0],
        [2.0, 7.0, 2.0, 6.0, -10000.0 + 1.0, -10000.0 - 1.0],
    ]
)


def test_select_tokens_attention_descending_ties_by_position():
    picked = select_tokens("attention", 3, SCORES, IDS, MASK, sep_token_id=102)
    assert picked.tolist() == [[3, 1, 2], [2, 5, 4], [1, 3, 0]]
    assert picked.dtype == torch.long


def test_select_tokens_attention_no_sep_masks_every_sep_of_every_row():
    picked = select_tokens("attention_no_sep", 3, SCORES, IDS, MASK, sep_token_id=102)
    # Row 1 has two [SEP]s although row 0 has one (the reference's Q7 would keep one of them).
    # Row 1: 1.0 at positions 1 and 3 tie -> lower first. Row 2 has only 2 real non-[SEP] tokens: the pad at
    # -9999 outranks the [SEP]s forced to exactly -10000.
    assert picked.tolist() == [[1, 2, 0], [4, 1, 3], [0, 2, 4]]


def test_select_tokens_k_beyond_real_length_orders_pad_and_sep_by_score():
    picked = select_tokens("attention_no_sep", 6, SCORES, IDS, MASK, sep_token_id=102)
    # Row 0: real tokens, then pad (-9999.5), [SEP] (-10000), pad (-10000.5) (quirk Q6, made deterministic).
    assert picked[0].tolist() == [1, 2, 0, 4, 3, 5]
    assert sorted(picked[1].tolist()) == list(range(6))


def test_select_tokens_all_equal_scores_keep_natural_order():
    picked = select_tokens("attention", 4, torch.zeros(2, 6), IDS[:2], MASK[:2], sep_token_id=102)
    assert picked.tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]


def test_select_tokens_left_first():
    picked = select_tokens("left_first", 4, None, IDS, MASK, sep_token_id=102)
    assert picked.tolist() == [[0, 1, 2, 3]] * 3
    # Padding is included when k exceeds the real length.
    assert select_tokens("left_first", 6, SCORES, IDS, MASK, sep_token_id=102)[2].tolist() == list(range(6))


@pytest.mark.parametrize(
    ("scheme", "k", "scores", "match"),
    [
        ("attention", 7, SCORES, "keep_tokens"),
        ("attention", 0, SCORES, "keep_tokens"),
        ("cls", 2, SCORES, "token_scheme"),
        ("attention", 2, None, "scores"),
        ("attention_no_sep", 2, SCORES[:2], "scores"),
    ],
)
def test_select_tokens_errors(scheme, k, scores, match):
    with pytest.raises(BudgetError, match=match):
        select_tokens(scheme, k, scores, IDS, MASK, sep_token_id=102)


# -- magnitude masks ----------------------------------------------------------------------------------------------


def test_magnitude_mask_per_example_counts():
    torch.manual_seed(0)
    target = torch.randn(2, 10, 768)
    mask = magnitude_mask(target, 0.1, "example")
    assert mask.dtype == torch.bool and mask.shape == target.shape
    assert mask.view(2, -1).sum(1).tolist() == [768, 768]  # floor(0.1 * 10 * 768)
    for row in range(2):
        kept, dropped = target[row].abs()[mask[row]], target[row].abs()[~mask[row]]
        assert kept.min() >= dropped.max()
    assert magnitude_mask(torch.randn(3, 4, 8), 0.3, "example").view(3, -1).sum(1).tolist() == [9, 9, 9]


def test_magnitude_mask_per_example_ties_by_position():
    target = torch.tensor([[[1.0, -1.0, 1.0, 0.5]], [[0.0, 0.0, 0.0, 0.0]]])
    mask = magnitude_mask(target, 0.5, "example")
    assert mask.tolist() == [[[True, True, False, False]], [[True, True, False, False]]]


def test_magnitude_mask_batch_threshold_keeps_ties():
    target = torch.tensor([[[4.0, -3.0, 2.0, 1.0]], [[2.0, -2.0, 0.5, 0.1]]])
    # n = floor(0.5 * 8) = 4; |T| sorted: 4, 3, 2, 2, 2, 1, .5, .1 -> tau = 2; |T| >= 2 keeps 5 entries.
    mask = magnitude_mask(target, 0.5, "batch")
    assert mask.tolist() == [[[True, True, True, False]], [[True, True, False, False]]]
    assert mask.view(2, -1).sum(1).tolist() == [3, 2]  # varies per example (Q5)
    per_example = magnitude_mask(target, 0.5, "example")
    assert per_example.view(2, -1).sum(1).tolist() == [2, 2]


def test_magnitude_mask_errors():
    with pytest.raises(BudgetError, match="mag_scope"):
        magnitude_mask(torch.ones(1, 2, 2), 0.5, "token")
    with pytest.raises(BudgetError, match="keeps no value"):
        magnitude_mask(torch.ones(1, 2, 2), 0.1, "example")


# -- loss ---------------------------------------------------------------------------------------------------------


def test_hsk_loss_hand_computed():
    student = [torch.tensor([[[0.0, 0.0], [1.0, 1.0]]]), torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])]
    masked = LayerTarget(
        student_layer=1,
        teacher_layer=2,
        token_index=torch.tensor([[1]]),
        target=torch.tensor([[[5.0, 0.0]]]),
        mask=torch.tensor([[[True, False]]]),
    )
    unmasked = LayerTarget(0, 0, None, torch.tensor([[[1.0, 0.0], [1.0, 3.0]]]), None)
    # Masked layer: student token 1 = [3, 4]. teacher_only: ((3-5)^2 + (4-0)^2) / 2 = 10; both: (3-5)^2 / 1 = 4.
    # Unmasked layer: ((0-1)^2 + 0 + 0 + (1-3)^2) / 4 = 1.25 in both modes. Layers are summed.
    total, per_layer = hsk_loss(student, [masked, unmasked], "teacher_only")
    assert [float(x) for x in per_layer] == [10.0, 1.25]
    assert float(total) == 11.25
    total, per_layer = hsk_loss(student, [masked, unmasked], "both")
    assert [float(x) for x in per_layer] == [4.0, 1.25]
    assert float(total) == 5.25
    with pytest.raises(BudgetError, match="mask_mode"):
        hsk_loss(student, [masked], "student")


def test_hsk_loss_backpropagates_to_the_student(teacher_batch):
    teacher, output, input_ids, attention_mask = teacher_batch
    budget = tiny_budget(keep_tokens=3, keep_hidden=0.25)
    targets = build_targets(teacher, output.hidden_states, input_ids, attention_mask, budget, sep_token_id=SEP)
    student = [torch.zeros(3, SEQ, HIDDEN, requires_grad=True) for _ in range(3)]
    total, _ = hsk_loss(student, targets, "both")
    total.backward()
    assert all(state.grad is not None and state.grad.abs().sum() > 0 for state in student)


# -- building targets ---------------------------------------------------------------------------------------------


def test_build_targets_depth_length_width(teacher_batch):
    teacher, output, input_ids, attention_mask = teacher_batch
    budget = tiny_budget(num_student_layers=1, keep_tokens=3, keep_hidden=0.25, hidden_scheme="uniform_mask")
    assert (budget.student_layers, budget.teacher_layers, budget.attention_layers) == ([0, 1], [0, 2], [0, 1])
    targets = build_targets(teacher, output.hidden_states, input_ids, attention_mask, budget, sep_token_id=SEP)
    dims = uniform_mask_dims(HIDDEN, 0.25)
    assert dims == [0, 4, 8, 12, 16, 20, 24, 28]
    for layer_target, teacher_layer, attention_layer in zip(targets, [0, 2], [0, 1], strict=True):
        with torch.no_grad():
            scores = cls_attention_scores(
                teacher.bert.encoder.layer[attention_layer], output.hidden_states[attention_layer], attention_mask
            )
        index = select_tokens("attention_no_sep", 3, scores, input_ids, attention_mask, SEP)
        assert torch.equal(layer_target.token_index, index)
        assert not (input_ids.gather(1, index) == SEP).any()  # each row has >= 3 real non-[SEP] tokens
        states = gather_tokens(output.hidden_states[teacher_layer], index)
        assert torch.equal(layer_target.target[..., dims], states[..., dims])
        assert (layer_target.target[..., [1, 2, 3, 5]] == 0).all()
        assert layer_target.mask[..., dims].all() and layer_target.mask.sum() == 3 * 3 * len(dims)


def test_build_targets_magnitude_after_token_selection(teacher_batch):
    teacher, output, input_ids, attention_mask = teacher_batch
    budget = tiny_budget(keep_tokens=3, keep_hidden=0.1)
    targets = build_targets(teacher, output.hidden_states, input_ids, attention_mask, budget, sep_token_id=SEP)
    assert len(targets) == 3
    for layer_target in targets:
        assert layer_target.mask.view(3, -1).sum(1).tolist() == [9, 9, 9]  # floor(0.1 * 3 * 32)
        states = gather_tokens(output.hidden_states[layer_target.teacher_layer], layer_target.token_index)
        assert torch.equal(layer_target.target, states * layer_target.mask)


def test_build_targets_without_selection_keeps_everything(teacher_batch):
    teacher, output, input_ids, attention_mask = teacher_batch
    targets = build_targets(teacher, output.hidden_states, input_ids, attention_mask, tiny_budget(), sep_token_id=SEP)
    assert [(t.student_layer, t.teacher_layer) for t in targets] == [(0, 0), (1, 1), (2, 2)]
    for layer_target in targets:
        assert layer_target.token_index is None and layer_target.mask is None
        assert torch.equal(layer_target.target, output.hidden_states[layer_target.teacher_layer])


def test_build_targets_checks_the_teacher(teacher_batch):
    teacher, output, input_ids, attention_mask = teacher_batch
    budget = budget_of(num_student_layers=2, num_teacher_layers=3, teacher_hidden=HIDDEN, max_seq_length=SEQ)
    with pytest.raises(BudgetError, match="hidden states"):
        build_targets(teacher, output.hidden_states, input_ids, attention_mask, budget, sep_token_id=SEP)


# -- store round trips --------------------------------------------------------------------------------------------

WIDTHS = [
    {"keep_hidden": 1.0},
    {"keep_hidden": 0.25, "hidden_scheme": "uniform_mask"},
    {"keep_hidden": 0.3, "hidden_scheme": "rand_mask", "seed": 7},
    {"keep_hidden": 0.1},
]


@pytest.mark.parametrize("width", WIDTHS, ids=["full", "uniform", "rand", "mag"])
@pytest.mark.parametrize("keep_tokens", [SEQ, 3])
@pytest.mark.parametrize("token_scheme", ["left_first", "attention", "attention_no_sep"])
def test_pack_unpack_round_trip(teacher_batch, token_scheme, keep_tokens, width):
    teacher, output, input_ids, attention_mask = teacher_batch
    budget = tiny_budget(keep_tokens=keep_tokens, token_scheme=token_scheme, **width)
    targets = build_targets(teacher, output.hidden_states, input_ids, attention_mask, budget, sep_token_id=SEP)
    packed = pack_targets(targets, budget, value_dtype=torch.float32)
    fields = budget.store_fields("float32")
    assert set(packed) == set(fields)
    for name, (dtype, shape) in fields.items():
        assert packed[name].dtype == getattr(torch, dtype)
        assert tuple(packed[name].shape) == (3, *shape)
    assert_same_targets(unpack_targets(packed, budget), targets)
    half = unpack_targets(pack_targets(targets, budget), budget)
    for got, want in zip(half, targets, strict=True):
        torch.testing.assert_close(got.target, want.target, atol=2e-3, rtol=1e-3)


SLICES = [
    ({}, {"num_student_layers": 2, "keep_layers": 1, "keep_tokens": 3, "token_scheme": "left_first"}),
    ({}, {"keep_tokens": 4, "token_scheme": "left_first", "keep_hidden": 0.2}),
    ({}, {"keep_tokens": 4, "token_scheme": "left_first", "keep_hidden": 0.2, "mag_scope": "batch"}),
    ({}, {"keep_hidden": 0.25, "hidden_scheme": "uniform_mask"}),
    (
        {"keep_tokens": 5, "keep_hidden": 0.25, "hidden_scheme": "uniform_mask"},
        {"keep_layers": 2, "keep_tokens": 2, "keep_hidden": 0.125, "hidden_scheme": "uniform_mask"},
    ),
    ({"keep_tokens": 6, "keep_hidden": 0.5}, {"keep_tokens": 6, "keep_hidden": 0.1}),
    ({"keep_tokens": 6, "keep_hidden": 0.5}, {"keep_layers": 1, "keep_tokens": 3, "keep_hidden": 0.25}),
    (
        {"keep_tokens": 6, "keep_hidden": 0.5, "token_scheme": "attention"},
        {"keep_layers": 2, "keep_tokens": 4, "keep_hidden": 0.25, "token_scheme": "attention"},
    ),
    (
        {"keep_tokens": 6, "keep_hidden": 0.5, "token_scheme": "left_first"},
        {"keep_tokens": 2, "keep_hidden": 0.2, "token_scheme": "left_first"},
    ),
]


@pytest.mark.parametrize(("stored_kwargs", "wanted_kwargs"), SLICES)
def test_unpack_a_smaller_budget_equals_building_it(teacher_batch, stored_kwargs, wanted_kwargs):
    teacher, output, input_ids, attention_mask = teacher_batch
    stored, wanted = tiny_budget(**stored_kwargs), tiny_budget(**wanted_kwargs)
    stored_targets = build_targets(teacher, output.hidden_states, input_ids, attention_mask, stored, sep_token_id=SEP)
    packed = pack_targets(stored_targets, stored, value_dtype=torch.float32)
    direct = build_targets(teacher, output.hidden_states, input_ids, attention_mask, wanted, sep_token_id=SEP)
    assert_same_targets(unpack_targets(packed, wanted, stored=stored), direct)


def crafted_states(large_tokens: list[int]) -> tuple[torch.Tensor, ...]:
    """Hidden states [1, 4, 32] whose large magnitudes sit on ``large_tokens``."""
    states = torch.full((1, 4, HIDDEN), 0.01) * torch.arange(1, HIDDEN + 1)
    states[:, large_tokens] += 10.0
    return (states, states + 1.0, states * 2.0)


@pytest.mark.parametrize(("large_tokens", "ok"), [([0, 1], True), ([2, 3], False)])
def test_magnitude_slice_is_checked_per_example(large_tokens, ok):
    hidden_states = crafted_states(large_tokens)
    input_ids = torch.tensor([[CLS, 10, 11, SEP]])
    attention_mask = torch.ones(1, 4, dtype=torch.long)

    def budget(**kwargs):
        return budget_of(
            num_student_layers=2,
            num_teacher_layers=2,
            teacher_hidden=HIDDEN,
            max_seq_length=4,
            keep_layers=1,
            token_scheme="left_first",
            **kwargs,
        )

    stored = budget(keep_tokens=4, keep_hidden=0.5)  # n = 64 of 128: exactly the two large tokens
    wanted = budget(keep_tokens=2, keep_hidden=0.25)  # n' = 16 of the first 2 tokens
    packed = pack_targets(
        build_targets([], hidden_states, input_ids, attention_mask, stored, sep_token_id=SEP),
        stored,
        value_dtype=torch.float32,
    )
    if ok:
        direct = build_targets([], hidden_states, input_ids, attention_mask, wanted, sep_token_id=SEP)
        assert_same_targets(unpack_targets(packed, wanted, stored=stored), direct)
    else:
        with pytest.raises(StoreError, match="only 0 stored magnitudes"):
            unpack_targets(packed, wanted, stored=stored)


def test_unpack_refuses_what_the_store_cannot_serve(teacher_batch):
    teacher, output, input_ids, attention_mask = teacher_batch
    stored = tiny_budget(keep_tokens=3, keep_hidden=0.25)
    packed = pack_targets(
        build_targets(teacher, output.hidden_states, input_ids, attention_mask, stored, sep_token_id=SEP), stored
    )
    with pytest.raises(StoreError, match="cannot serve.*tokens"):
        unpack_targets(packed, tiny_budget(keep_tokens=4, keep_hidden=0.25), stored=stored)
    with pytest.raises(StoreError, match="arrays"):
        unpack_targets({"values": packed["values"]}, stored)
    truncated = dict(packed, positions=packed["positions"][:, :, :-1])
    with pytest.raises(StoreError, match="positions"):
        unpack_targets(truncated, stored)


def test_pack_refuses_a_batch_scope_mask(teacher_batch):
    teacher, output, input_ids, attention_mask = teacher_batch
    budget = tiny_budget(keep_tokens=3, keep_hidden=0.25, mag_scope="batch")
    targets = build_targets(teacher, output.hidden_states, input_ids, attention_mask, budget, sep_token_id=SEP)
    with pytest.raises(BudgetError, match="batch-scope"):
        pack_targets(targets, budget)
