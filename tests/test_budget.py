"""Knowledge budgets: expected values come from method.md §9–§12 and §16, not from running the code."""

from __future__ import annotations

import random

import pytest

from mudkd.errors import BudgetError
from mudkd.knowledge import (
    KnowledgeBudget,
    can_serve,
    kept_count,
    layer_mapping,
    parse_config_3d,
    parse_layer_scheme,
    rand_mask_dims,
    uniform_mask_dims,
)
from tests.helpers import budget_of

# method.md §9, "Full mapping lists g(0..L_S)".
MAPPING_TABLE = {
    (6, 8): [0, 1, 3, 4, 5, 7, 8],
    (6, 10): [0, 2, 3, 5, 7, 8, 10],
    (6, 12): [0, 2, 4, 6, 8, 10, 12],
    (4, 8): [0, 2, 4, 6, 8],
    (4, 10): [0, 2, 5, 8, 10],
    (4, 12): [0, 3, 6, 9, 12],
}


def rosita(**kwargs) -> KnowledgeBudget:
    kwargs.setdefault("max_seq_length", 128)
    return budget_of(num_student_layers=6, num_teacher_layers=12, teacher_hidden=768, **kwargs)


def tinybert(**kwargs) -> KnowledgeBudget:
    kwargs.setdefault("max_seq_length", 128)
    return budget_of(num_student_layers=4, num_teacher_layers=12, teacher_hidden=768, **kwargs)


# -- depth --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scheme", "top"), [("t_top8", 8), ("t_top10", 10), ("t_top12", 12), ("t_top1", 1)])
def test_parse_layer_scheme(scheme, top):
    assert parse_layer_scheme(scheme) == top


@pytest.mark.parametrize("scheme", ["top10", "t_top", "t_top0", "t_top10x", "T_TOP10", "none", ""])
def test_parse_layer_scheme_rejects(scheme):
    with pytest.raises(BudgetError, match="layer_scheme") as info:
        parse_layer_scheme(scheme)
    assert "t_topN" in info.value.hint


@pytest.mark.parametrize(("students", "top"), sorted(MAPPING_TABLE))
def test_layer_mapping_table(students, top):
    assert layer_mapping(students, top) == MAPPING_TABLE[(students, top)]


def test_layer_mapping_uses_bankers_rounding():
    # TinyBERT t_top10: 2.5 -> 2 and 7.5 -> 8 (quirk Q9); floor(x + 0.5) would give 3 and 8.
    assert layer_mapping(4, 10)[1] == 2
    assert layer_mapping(4, 10)[3] == 8


@pytest.mark.parametrize(("students", "top"), sorted(MAPPING_TABLE))
def test_every_keep_layers_picks_the_top_student_layers(students, top):
    table = MAPPING_TABLE[(students, top)]
    for keep in range(1, students + 2):
        budget = budget_of(
            num_student_layers=students,
            num_teacher_layers=12,
            teacher_hidden=768,
            max_seq_length=128,
            keep_layers=keep,
            layer_scheme=f"t_top{top}",
        )
        expected_students = list(range(students - keep + 1, students + 1))
        assert budget.student_layers == expected_students
        assert budget.teacher_layers == [table[s] for s in expected_students]
        assert budget.keep_layers == keep


def test_worked_depth_examples():
    budget = rosita(layer_scheme="t_top10", keep_layers=1)
    assert (budget.student_layers, budget.teacher_layers) == ([6], [10])
    budget = rosita(layer_scheme="t_top10", keep_layers=3)
    assert (budget.student_layers, budget.teacher_layers) == ([4, 5, 6], [7, 8, 10])
    budget = tinybert(layer_scheme="t_top8", keep_layers=2)
    assert (budget.student_layers, budget.teacher_layers) == ([3, 4], [6, 8])


def test_defaults_are_full_hsk_with_standard_mapping():
    budget = rosita()
    assert budget.layer_scheme == "t_top12"
    assert budget.student_layers == [0, 1, 2, 3, 4, 5, 6]
    assert budget.teacher_layers == [0, 2, 4, 6, 8, 10, 12]
    assert budget.keep_tokens == 128 and not budget.token_selection_active
    assert budget.keep_hidden == 1.0 and not budget.width_active and budget.width_dims is None
    assert budget.hsk_fraction == 1.0


def test_explicit_layer_indices_override():
    budget = rosita(student_layers=[2, 6], teacher_layers=[3, 11])
    assert (budget.student_layers, budget.teacher_layers) == ([2, 6], [3, 11])
    assert budget.attention_layers == [2, 10]
    # Students only: teachers follow the scheme's mapping.
    budget = rosita(student_layers=[0, 3], layer_scheme="t_top10")
    assert budget.teacher_layers == [0, 5]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"student_layers": [2, 6], "teacher_layers": [3]}, "teacher layer indices"),
        ({"student_layers": [7]}, "student_layer_indices"),
        ({"student_layers": []}, "student_layer_indices"),
        ({"teacher_layers": [13] * 7}, "teacher_layer_indices"),
        ({"student_layers": [5, 6], "keep_layers": 3}, "keep_layers"),
    ],
)
def test_explicit_layer_indices_are_checked(kwargs, match):
    with pytest.raises(BudgetError, match=match):
        rosita(**kwargs)


# -- attention layers ---------------------------------------------------------------------------------------------


def test_attention_layers_ttop12():
    assert rosita(att_ttop12=True).attention_layers == [0, 1, 3, 5, 7, 9, 11]
    assert tinybert(att_ttop12=True).attention_layers == [0, 2, 5, 8, 11]
    # Independent of the HSK layer scheme (quirk Q8), and only the kept layers' entries.
    assert rosita(att_ttop12=True, layer_scheme="t_top8", keep_layers=3).attention_layers == [7, 9, 11]
    assert tinybert(att_ttop12=True, layer_scheme="t_top8", keep_layers=1).attention_layers == [11]


def test_attention_layers_own():
    assert rosita(layer_scheme="t_top10", keep_layers=7).attention_layers == [0, 1, 2, 4, 6, 7, 9]
    assert tinybert(layer_scheme="t_top10").attention_layers == [0, 1, 4, 7, 9]


def test_attention_layers_ttop12_for_a_non_multiple_depth():
    # "the layer that produces g(l; L_T)": L_T = 10, L_S = 4 -> g = 0, 2, 5, 8, 10 -> layers 1, 2, 5, 8, 10.
    budget = budget_of(
        num_student_layers=4, num_teacher_layers=10, teacher_hidden=64, max_seq_length=16, att_ttop12=True
    )
    assert budget.attention_layers == [0, 1, 4, 7, 9]
    assert budget.layer_scheme == "t_top10"


# -- 3D strings ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1l_10t_0.1h", (1, 10, 0.1)),
        ("2l_20t_1e-2h", (2, 20, 0.01)),
        ("3l_5t_1h", (3, 5, 1.0)),
        ("7l_128t_1.0h", (7, 128, 1.0)),
        ("1l_10t_.5h", (1, 10, 0.5)),
        ("1l_10t_5E-1h", (1, 10, 0.5)),
    ],
)
def test_parse_config_3d(text, expected):
    assert parse_config_3d(text) == expected


@pytest.mark.parametrize(
    "text", ["1l_10t", "1l10t0.1h", "10t_1l_0.1h", "1.5l_10t_0.1h", "", "1l_10t_0.1h_x", "-1l_10t_0.1h", "1l_10t_h"]
)
def test_parse_config_3d_rejects(text):
    with pytest.raises(BudgetError, match="config_3d") as info:
        parse_config_3d(text)
    assert "1l_10t_0.1h" in info.value.hint


def test_config_3d_overrides_the_single_axes():
    budget = rosita(config_3d="1l_10t_0.1h", keep_layers=7, keep_tokens=64, keep_hidden=0.5)
    assert (budget.keep_layers, budget.keep_tokens, budget.keep_hidden) == (1, 10, 0.1)
    with pytest.raises(BudgetError, match="keep_layers"):
        rosita(config_3d="8l_10t_0.1h")


# -- width --------------------------------------------------------------------------------------------------------


def test_uniform_mask_dims():
    tenth = uniform_mask_dims(768, 0.1)
    assert len(tenth) == 76 and tenth == list(range(0, 751, 10))
    assert len(uniform_mask_dims(768, 0.3)) == 230
    assert uniform_mask_dims(768, 0.3)[:4] == [0, 3, 7, 10]  # round(10/3), round(20/3) with exact thirds
    assert uniform_mask_dims(768, 0.5) == list(range(0, 767, 2))
    assert uniform_mask_dims(768, 1.0) == list(range(768))


def test_kept_count_is_exact():
    assert kept_count(768, 0.1) == 76
    assert kept_count(7680, 0.1) == 768
    assert kept_count(100, 0.29) == 29  # float: int(100 * 0.29) == 28


def test_rand_mask_dims_follow_the_definition():
    rng = random.Random(3)
    draws = [rng.random() for _ in range(768)]
    assert rand_mask_dims(768, 0.1, seed=3) == [c for c, u in enumerate(draws) if u > 0.9]
    assert rand_mask_dims(768, 0.1, seed=3) == rand_mask_dims(768, 0.1, seed=3)
    assert rand_mask_dims(768, 0.1, seed=3) != rand_mask_dims(768, 0.1, seed=4)
    assert 40 < len(rand_mask_dims(768, 0.1, seed=3)) < 115
    assert len(rand_mask_dims(8, 1e-9, seed=0)) == 1


def test_width_dims_by_scheme():
    assert rosita(keep_hidden=0.1, hidden_scheme="uniform_mask").width_dims == list(range(0, 751, 10))
    assert rosita(keep_hidden=0.1, hidden_scheme="rand_mask", seed=5).width_dims == rand_mask_dims(768, 0.1, 5)
    assert rosita(keep_hidden=0.1).width_dims is None  # Mag Mask
    assert rosita(keep_hidden=1.0, hidden_scheme="uniform_mask").width_dims is None


# -- validation ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"keep_layers": 8}, "keep_layers"),
        ({"keep_layers": 0}, "keep_layers"),
        ({"keep_tokens": 129}, "keep_tokens"),
        ({"keep_tokens": 0}, "keep_tokens"),
        ({"keep_hidden": 0.0}, "keep_hidden"),
        ({"keep_hidden": 1.5}, "keep_hidden"),
        ({"keep_hidden": -0.1}, "keep_hidden"),
        ({"keep_hidden": float("nan")}, "keep_hidden"),
        ({"layer_scheme": "t_top13"}, "t_top13"),
        ({"layer_scheme": "top10"}, "layer_scheme"),
        ({"token_scheme": "cls"}, "token_scheme"),
        ({"hidden_scheme": "rand_mask_dynamic"}, "hidden_scheme"),
        ({"mag_scope": "global"}, "mag_scope"),
        ({"mask_mode": "student"}, "mask_mode"),
        ({"keep_hidden": 1e-6, "keep_tokens": 1}, "keeps no value"),
        ({"keep_hidden": 1e-6, "hidden_scheme": "uniform_mask"}, "keeps no dimension"),
    ],
)
def test_budget_validation_errors(kwargs, match):
    with pytest.raises(BudgetError, match=match) as info:
        rosita(**kwargs)
    assert info.value.hint
    assert "\n" not in info.value.message


def test_unknown_scheme_error_lists_the_allowed_values():
    with pytest.raises(BudgetError) as info:
        rosita(token_scheme="right_first")
    assert info.value.hint == "use one of left_first, attention, attention_no_sep"
    with pytest.raises(BudgetError) as info:
        rosita(hidden_scheme="mag")
    assert info.value.hint == "use one of rand_mask, uniform_mask, importance_mask_dynamic"


# -- amounts and bytes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("student", "seq", "percent_01", "percent_10"),
    [(rosita, 128, 0.112, 1.12), (rosita, 64, 0.223, 2.23), (tinybert, 128, 0.156, 1.56), (tinybert, 64, 0.313, 3.13)],
)
def test_hsk_fraction_matches_section_12(student, seq, percent_01, percent_10):
    # The table's percentages are rounded (half up) to three significant digits.
    for config, percent, half_unit in (("1l_10t_0.1h", percent_01, 0.0005), ("1l_10t_1.0h", percent_10, 0.005)):
        budget = student(max_seq_length=seq, config_3d=config)
        assert abs(100 * budget.hsk_fraction - percent) <= half_unit * 1.0001
        layers = student(max_seq_length=seq).keep_layers
        assert budget.hsk_fraction == pytest.approx((1 / layers) * (10 / seq) * float(config.split("_")[2][:-1]))


def test_values_per_layer_by_mask():
    assert rosita(config_3d="1l_10t_0.1h").values_per_layer == 768  # floor(0.1 * 10 * 768)
    assert rosita(config_3d="1l_10t_0.1h", hidden_scheme="uniform_mask").values_per_layer == 760  # 10 x 76 dims
    assert rosita(config_3d="1l_10t_1.0h").values_per_layer == 7680
    assert rosita(config_3d="2l_10t_0.1h").elements_per_example == 1536


def test_bytes_per_example_section_16():
    budget = rosita(config_3d="1l_10t_0.1h")
    # fp16: 768 values x 2 B + 768 int16 positions x 2 B + 10 int16 token ids + 2 float32 logits.
    assert budget.bytes_per_example == 768 * 2 + 768 * 2 + 10 * 2 + 2 * 4 == 3100
    # §16's fp32 arithmetic, without logits: 768 x (4 + 2) + 10 x 2 = 4,628 B.
    no_logits = rosita(config_3d="1l_10t_0.1h", num_labels=0)
    assert no_logits.example_bytes("float32") == 4628
    for examples, seq, expected_mb in [
        (8551, 64, 39.6),
        (67349, 64, 312),
        (3668, 128, 17.0),
        (2490, 128, 11.5),
        (104743, 128, 485),
        (392702, 128, 1820),
    ]:
        stored = rosita(config_3d="1l_10t_0.1h", num_labels=0, max_seq_length=seq)
        megabytes = stored.bytes_for(examples, "float32") / 1e6
        assert megabytes == pytest.approx(expected_mb, rel=0.006)
    assert no_logits.bytes_for(8551) == 8551 * 3092


def test_full_hsk_storage_section_16():
    full_rosita = rosita(max_seq_length=64, num_labels=0)
    assert full_rosita.bytes_for(8551, "float32") / 1e9 == pytest.approx(11.8, rel=0.005)  # CoLA
    full_tinybert = tinybert(num_labels=0)
    assert full_tinybert.bytes_for(392702, "float32") / 1e9 == pytest.approx(772, rel=0.001)  # MNLI
    logits = tinybert(num_labels=3).example_bytes() - full_tinybert.example_bytes()
    assert logits * 392702 / 1e6 == pytest.approx(4.7, rel=0.01)


def test_bytes_count_token_ids_only_when_ranked():
    assert rosita(keep_tokens=10, token_scheme="left_first", num_labels=0).bytes_per_example == 7 * 10 * 768 * 2
    assert rosita(keep_tokens=10, token_scheme="attention", num_labels=0).bytes_per_example == 7 * 10 * 768 * 2 + 7 * 20
    assert rosita(keep_tokens=128, token_scheme="attention", num_labels=0).bytes_per_example == 7 * 128 * 768 * 2


def test_positions_are_int32_beyond_int16():
    small = rosita(keep_layers=1, keep_tokens=42, keep_hidden=0.5, num_labels=0)  # 42 x 768 = 32,256
    large = rosita(keep_layers=1, keep_tokens=43, keep_hidden=0.5, num_labels=0)  # 43 x 768 = 33,024
    assert small.store_fields()["positions"] == ("int16", (1, 16128))
    assert large.store_fields()["positions"] == ("int32", (1, 16512))
    assert large.bytes_per_example == 16512 * 2 + 16512 * 4 + 43 * 2


def test_store_fields():
    assert rosita(config_3d="1l_10t_0.1h").store_fields() == {
        "token_index": ("int16", (1, 10)),
        "values": ("float16", (1, 768)),
        "positions": ("int16", (1, 768)),
    }
    assert rosita(
        keep_layers=2, keep_tokens=10, token_scheme="left_first", keep_hidden=0.1, hidden_scheme="uniform_mask"
    ).store_fields("float32") == {"values": ("float32", (2, 10, 76))}
    assert tinybert().store_fields() == {"values": ("float16", (5, 128, 768))}
    with pytest.raises(BudgetError, match="batch-scope"):
        rosita(keep_hidden=0.1, mag_scope="batch").store_fields()
    with pytest.raises(BudgetError, match="dtype"):
        rosita().store_fields("int8")


def test_to_dict_and_back():
    budget = rosita(config_3d="2l_10t_0.1h", layer_scheme="t_top10", att_ttop12=True)
    data = budget.to_dict()
    assert data["layers"] == [
        {"student": 5, "teacher": 8, "attention": 9},
        {"student": 6, "teacher": 10, "attention": 11},
    ]
    for key in (
        "keep_tokens",
        "max_seq_length",
        "keep_hidden",
        "kept_width",
        "token_scheme",
        "hidden_scheme",
        "mag_scope",
        "mask_mode",
        "hsk_fraction",
        "elements_per_example",
        "bytes_per_example",
    ):
        assert key in data
    assert data["kept_width"] is None and data["elements_per_example"] == 1536
    assert KnowledgeBudget.from_dict(data) == budget
    assert rosita(keep_hidden=0.5, hidden_scheme="uniform_mask").to_dict()["kept_width"] == 384
    with pytest.raises(BudgetError, match="metadata"):
        KnowledgeBudget.from_dict({"layers": []})


# -- serving a smaller budget from a store ------------------------------------------------------------------------


def test_can_serve_same_and_smaller():
    stored = rosita(keep_layers=3, keep_tokens=20, keep_hidden=0.2)
    assert can_serve(stored, stored) == (True, "")
    assert can_serve(stored, rosita(keep_layers=1, keep_tokens=10, keep_hidden=0.1))[0]
    assert can_serve(stored, rosita(keep_layers=2, keep_tokens=20, keep_hidden=0.2))[0]


@pytest.mark.parametrize(
    ("wanted", "reason"),
    [
        ({"keep_layers": 4, "keep_tokens": 20, "keep_hidden": 0.2}, "not in the store"),
        ({"keep_layers": 3, "keep_tokens": 21, "keep_hidden": 0.2}, "21 tokens"),
        ({"keep_layers": 3, "keep_tokens": 20, "keep_hidden": 0.3}, "magnitudes"),
        ({"keep_layers": 3, "keep_tokens": 20, "keep_hidden": 0.2, "token_scheme": "attention"}, "token scheme"),
        ({"keep_layers": 3, "keep_tokens": 20, "keep_hidden": 0.2, "token_scheme": "left_first"}, "left_first"),
        ({"keep_layers": 3, "keep_tokens": 20, "keep_hidden": 0.2, "layer_scheme": "t_top12"}, "not in the store"),
        ({"keep_layers": 3, "keep_tokens": 20, "keep_hidden": 0.2, "att_ttop12": True}, "attention layer"),
        ({"keep_layers": 3, "keep_tokens": 20, "keep_hidden": 0.2, "mag_scope": "batch"}, "batch-scope"),
        ({"keep_layers": 3, "keep_tokens": 20, "keep_hidden": 1.0}, "full width"),
        ({"keep_layers": 3, "keep_tokens": 20, "keep_hidden": 0.2, "hidden_scheme": "uniform_mask"}, "static"),
        ({"keep_layers": 3, "keep_tokens": 20, "keep_hidden": 0.2, "num_labels": 3}, "num_labels"),
        ({"keep_layers": 3, "keep_tokens": 20, "keep_hidden": 0.2, "max_seq_length": 64}, "max_seq_length"),
    ],
)
def test_can_serve_refusals(wanted, reason):
    stored = rosita(keep_layers=3, keep_tokens=20, keep_hidden=0.2, layer_scheme="t_top10")
    wanted.setdefault("layer_scheme", "t_top10")
    servable, message = can_serve(stored, rosita(**wanted))
    assert not servable
    assert reason in message and "\n" not in message


def test_can_serve_width_cases():
    full = rosita(keep_tokens=20)
    uniform_half = rosita(keep_tokens=20, keep_hidden=0.5, hidden_scheme="uniform_mask")
    uniform_tenth = rosita(keep_tokens=20, keep_hidden=0.1, hidden_scheme="uniform_mask")
    uniform_third = rosita(keep_tokens=20, keep_hidden=0.3, hidden_scheme="uniform_mask")
    assert can_serve(full, uniform_half)[0]
    assert can_serve(uniform_half, uniform_half)[0]
    assert can_serve(uniform_half, uniform_tenth)[0]  # {0, 10, …, 750} ⊂ {0, 2, …, 766}
    assert not can_serve(uniform_half, uniform_third)[0]  # 3 is odd
    assert not can_serve(uniform_half, rosita(keep_tokens=20, keep_hidden=0.5, hidden_scheme="rand_mask"))[0]
    assert not can_serve(uniform_half, full)[0]
    assert can_serve(full, rosita(keep_tokens=20, keep_hidden=0.1))[0]  # Mag Mask recomputed at load time
    assert can_serve(full, rosita(keep_tokens=20, keep_hidden=0.1, mag_scope="batch"))[0]
    batch_store = rosita(keep_tokens=20, keep_hidden=0.1, mag_scope="batch")
    assert not can_serve(batch_store, batch_store)[0]


def test_can_serve_token_cases():
    all_tokens = rosita()
    assert can_serve(all_tokens, rosita(keep_tokens=10, token_scheme="left_first"))[0]
    assert not can_serve(all_tokens, rosita(keep_tokens=10, token_scheme="attention"))[0]
    left = rosita(keep_tokens=20, token_scheme="left_first", att_ttop12=True)
    # Attention layers do not matter when tokens are not ranked by attention.
    assert can_serve(left, rosita(keep_tokens=10, token_scheme="left_first"))[0]
    assert not can_serve(
        rosita(keep_tokens=20, token_scheme="attention"), rosita(keep_tokens=10, token_scheme="left_first")
    )[0]


# -- the settings object and the axis helpers ---------------------------------------------------------------------


def test_a_recipe_hsk_table_is_the_budget_settings():
    from mudkd.knowledge import ModelShape, budget_from_recipe, resolve_budget
    from mudkd.recipe.schema import Recipe

    recipe = Recipe.model_validate(
        {"hsk": {"config_3d": "1l_10t_0.1h", "hidden_scheme": "rand_mask"}, "training": {"seed": 7}}
    )
    teacher = ModelShape(layers=12, hidden=768, num_labels=3)
    budget = resolve_budget(recipe.hsk, student_layers=6, teacher=teacher, max_seq_length=128, seed=7)
    assert budget == budget_from_recipe(
        recipe, num_student_layers=6, num_teacher_layers=12, teacher_hidden=768, num_labels=3
    )
    assert (budget.keep_layers, budget.keep_tokens, budget.keep_hidden) == (1, 10, 0.1)
    assert (budget.num_labels, budget.seed) == (3, 7)
    assert budget.width_dims == rand_mask_dims(768, 0.1, 7)  # the recipe's training.seed draws the mask


def test_depth_length_and_width_problems_are_reported_together():
    with pytest.raises(BudgetError) as info:
        rosita(layer_scheme="t_top20", keep_tokens=0, hidden_scheme="nope", mask_mode="all", keep_hidden=0.0)
    assert [problem.split(" ")[0].rstrip(":") for problem in info.value.problems] == [
        "layer_scheme",  # depth
        "keep_tokens",  # length
        "hidden_scheme",  # width
        "mask_mode",
        "keep_hidden",
    ]


def test_a_width_that_keeps_no_dimension_is_a_problem_of_its_own():
    with pytest.raises(BudgetError, match="keeps no dimension of width 768") as info:
        rosita(keep_hidden=0.001, hidden_scheme="uniform_mask")
    assert info.value.hint == "use keep_hidden >= 0.0013"


def test_from_dict_types_each_field_and_refuses_malformed_metadata():
    budget = rosita(keep_hidden=0.5, hidden_scheme="rand_mask", keep_tokens=16)
    data = budget.to_dict()
    assert KnowledgeBudget.from_dict({**data, "keep_tokens": "16", "seed": 42.0}) == budget  # JSON-ish values typed
    with pytest.raises(BudgetError, match="metadata"):
        KnowledgeBudget.from_dict({**data, "width_dims": "x"})
    with pytest.raises(BudgetError, match="metadata"):
        KnowledgeBudget.from_dict({key: value for key, value in data.items() if key != "mask_mode"})
