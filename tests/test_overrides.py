"""The one override path (mudkd.recipe.overrides): --set parsing, dotted keys, owners, problem wording, and typed
flags reaching a sweep's base recipe, its [search] table and the wizard without a detour through text."""

from __future__ import annotations

import pytest

from mudkd.errors import RecipeError
from mudkd.recipe.overrides import (
    apply_overrides,
    describe,
    parse_sets,
    set_dotted,
    split_overrides,
    validate,
)
from mudkd.recipe.schema import Recipe
from mudkd.recipe.search import SearchSettings, read_search
from mudkd.recipe.sweep import Sweep, make_recipe_builder, read_sweep
from mudkd.recipe.wizard import split_sets


def test_parse_sets_types_values_and_keeps_typed_overrides():
    assert parse_sets(["hsk.keep_tokens=10", "pred.temperature=2.0", "task.name=cola", "hsk.keep_tokens=12"]) == {
        "hsk.keep_tokens": 12,  # a later --set wins
        "pred.temperature": 2.0,
        "task.name": "cola",
    }
    assert parse_sets({"hsk.keep_tokens": 3}) == {"hsk.keep_tokens": 3}
    assert parse_sets(None) == {}
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        parse_sets(["hsk.keep_tokens"])


def test_set_dotted_creates_tables_and_steps_into_lists():
    data: dict = {"task": "not a table", "grid": [{"keep_tokens": [4]}]}
    set_dotted(data, "task.name", "cola")
    set_dotted(data, "grid.0.keep_tokens", [8])
    assert data == {"task": {"name": "cola"}, "grid": [{"keep_tokens": [8]}]}
    with pytest.raises(RecipeError, match="grid is a list of blocks") as info:
        set_dotted(data, "grid.keep_tokens", [2])
    assert "grid.0.keep_tokens" in info.value.hint


def test_split_overrides_by_owner():
    own, rest = split_overrides(
        {"output_dir": "x", "grid.keep_tokens": [2], "hsk.max_steps": 5}, lambda k: "." not in k
    )
    assert own == {"output_dir": "x"} and rest == {"grid.keep_tokens": [2], "hsk.max_steps": 5}


def test_problems_read_the_same_for_every_model():
    """Recipe, sweep grid and [search] table: "key: unknown key (did you mean ...)", bounds as "must be"."""
    _, problems = validate(Recipe, {"hsk": {"keep_tokenz": 3}, "pred": {"temperature": -1}}, "r.toml")
    assert problems == [
        "r.toml: hsk.keep_tokenz: unknown key (did you mean 'keep_tokens'?)",
        "r.toml: pred.temperature: must be greater than 0 (got -1)",
    ]
    _, problems = validate(Sweep, {"base": "b.toml", "grid": [{"keep_layer": [1]}]}, "s.toml")
    assert problems == ["s.toml: grid.0.keep_layer: unknown key (did you mean 'keep_layers'?)"]
    _, problems = validate(SearchSettings, {"toleranse": 1, "seeds": 0}, "r.toml", prefix=("search",))
    assert problems == [
        "r.toml: search.seeds: must be greater than or equal to 1 (got 0)",
        "r.toml: search.toleranse: unknown key (did you mean 'tolerance'?)",
    ]
    error = {"loc": ("hsk", "zzz"), "type": "extra_forbidden", "msg": "", "input": 1}
    assert describe(error, Recipe).startswith("hsk.zzz: unknown key (allowed keys: output_dir, learning_rate")


def test_apply_overrides_validates_lists_and_expands_config_3d():
    base = Recipe.model_validate({"hsk": {"config_3d": "2l_8t_0.5h"}})
    point = apply_overrides(base, {"hsk.keep_tokens": 4, "task.text_columns": "a,b"})
    assert (point.hsk.keep_layers, point.hsk.keep_tokens, point.hsk.keep_hidden) == (2, 4, 0.5)
    assert point.hsk.config_3d is None and point.task.text_columns == ["a", "b"]
    with pytest.raises(RecipeError) as info:
        apply_overrides(base, {"hsk.keep_tokenz": 4, "pred.temperature": 0}, where="command line")
    assert info.value.problems == [
        "command line: hsk.keep_tokenz: unknown key (did you mean 'keep_tokens'?)",
        "command line: pred.temperature: must be greater than 0 (got 0)",
    ]
    with pytest.raises(RecipeError, match="point k1: foo.bar: unknown recipe key"):
        apply_overrides(base, {"foo.bar": 1}, where="point k1")


def test_sweep_flags_arrive_typed_and_yield_to_set(tmp_path):
    (tmp_path / "b.toml").write_text("[task]\nmax_seq_length = 64\n")
    path = tmp_path / "s.toml"
    path.write_text('base = "b.toml"\nbaselines = ["no_hsk"]\noutput_dir = "in-file"\n')
    flags = {"output_dir": "from-flag", "task.text_columns": ["a", "b"], "task.max_seq_length": 32}
    sweep = read_sweep(path, sets=["output_dir=from-set"], flags=flags)
    assert sweep.output_dir == "from-flag"  # -o wins over the file and --set
    recipe = make_recipe_builder(sweep, ["task.max_seq_length=16"], flags)({})
    assert recipe.task.max_seq_length == 16 and recipe.task.text_columns == ["a", "b"]  # --set wins over a flag
    assert make_recipe_builder(sweep, None, flags)({}).task.max_seq_length == 32


def test_search_flags_and_sets_reach_the_table(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[search]\ntolerance = 2.0\nseeds = 2\noutput_dir = "runs"\n')
    recipe, settings = read_search(path, sets=["search.seeds=4", "hsk.keep_tokens=8"], flags={"search.seeds": 5})
    assert (settings.tolerance, settings.seeds) == (2.0, 5)  # a flag wins over --set and the table
    assert settings.output_dir == str(tmp_path / "runs") and recipe.hsk.keep_tokens == 8
    with pytest.raises(RecipeError) as info:
        read_search(path, flags={"search.tolerance": -1.0})
    assert info.value.problems == [f"{path}: search.tolerance: must be greater than or equal to 0 (got -1.0)"]


def test_wizard_sets_split_into_answers_and_typed_overrides():
    presets, overrides = split_sets(["task.name=cola", "pred.temperature=2.0", "hsk.student_layers=1,2"])
    assert presets == {"task.name": "cola"}
    assert overrides == {"pred.temperature": 2.0, "hsk.student_layers": "1,2"}
    recipe = apply_overrides(Recipe.model_validate({}), overrides, where="command line")
    assert recipe.pred.temperature == 2.0 and recipe.hsk.student_layers == [1, 2]
