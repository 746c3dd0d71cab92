"""Recipe parsing, overrides and validation: every error path reports file, key, problem and value."""

from __future__ import annotations

import pytest

from mudkd.errors import RecipeError
from mudkd.recipe import build_recipe, parse_override, recipe_to_toml
from mudkd.recipe.load import read_toml


def write(tmp_path, text: str):
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


def test_defaults_follow_the_paper():
    recipe = build_recipe(None)
    assert recipe.finetune.learning_rate == 2e-5 and recipe.finetune.train_batch_size == 32
    assert recipe.hsk.learning_rate == 5e-5 and recipe.hsk.lr_scheduler == "constant"
    assert recipe.pred.temperature == 1.0
    assert (recipe.prune.keep_heads, recipe.prune.num_layers, recipe.prune.ffn_hidden_dim) == (2, 6, 768)
    assert recipe.prune.emb_hidden_dim == 128


def test_precedence_file_then_flags_then_set(tmp_path):
    path = write(tmp_path, '[task]\nname = "cola"\nmax_seq_length = 64\n[finetune]\nlearning_rate = 1e-4\n')
    recipe = build_recipe(
        path, flags={"finetune.learning_rate": 3e-5, "task.max_seq_length": None}, sets=["finetune.learning_rate=4e-5"]
    )
    assert recipe.task.name == "cola"
    assert recipe.task.max_seq_length == 64  # a flag that was not given (None) does not override
    assert recipe.finetune.learning_rate == 4e-5


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("hsk.keep_tokens=10", 10),
        ("hsk.keep_hidden=0.1", 0.1),
        ("hsk.att_ttop12=true", True),
        ("hsk.config_3d=1l_10t_0.1h", "1l_10t_0.1h"),
        ('task.text_columns=["a", "b"]', ["a", "b"]),
    ],
)
def test_set_values_are_toml_literals_with_string_fallback(text, value):
    assert parse_override(text)[1] == value


def test_set_without_equals_is_an_error():
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        parse_override("hsk.keep_tokens")


def test_all_problems_reported_at_once_with_file_key_and_value(tmp_path):
    path = write(
        tmp_path,
        '[task]\nmax_seq_lenght = 64\n[finetune]\nlearning_rate = -1.0\nnum_train_epochs = "x"\n'
        '[hsk]\ntoken_scheme = "bogus"\n',
    )
    with pytest.raises(RecipeError) as caught:
        build_recipe(path)
    problems = caught.value.problems
    assert len(problems) == 4
    assert all(p.startswith(f"{path}: ") for p in problems)
    text = "\n".join(problems)
    assert "task.max_seq_lenght: unknown key (did you mean 'max_seq_length'?)" in text
    assert "finetune.learning_rate: must be greater than 0 (got -1.0)" in text
    assert "hsk.token_scheme" in text and "'attention_no_sep'" in text and "(got 'bogus')" in text


def test_unknown_section_lists_allowed_sections():
    with pytest.raises(RecipeError, match="allowed keys: schema_version, task"):
        build_recipe(None, sets=["foo.bar=1"])


def test_malformed_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[task\nname = 1")
    with pytest.raises(RecipeError, match="malformed TOML"):
        read_toml(path)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        build_recipe(tmp_path / "nope.toml")


def test_unknown_task_lists_allowed_values():
    with pytest.raises(RecipeError, match="unknown task 'foo' .allowed: cola, sst-2"):
        build_recipe(None, flags={"task.name": "foo"})


def test_task_aliases_are_normalised():
    assert build_recipe(None, flags={"task.name": "SST2"}).task.name == "sst-2"


def test_custom_task_needs_columns():
    with pytest.raises(RecipeError, match="text_columns"):
        build_recipe(None, sets=["task.name=custom", "task.train_file=x.csv"])


def test_newer_schema_version_is_refused():
    with pytest.raises(RecipeError, match="newer than this mudkd"):
        build_recipe(None, sets=["schema_version=99"])


def test_resolved_recipe_round_trips(tmp_path):
    recipe = build_recipe(None, sets=["task.name=rte", "hsk.keep_tokens=10", "prune.layers=[0, 2]"])
    path = tmp_path / "resolved.toml"
    path.write_text(recipe_to_toml(recipe))
    again = build_recipe(path)
    assert again.model_dump() == recipe.model_dump()  # the values; only the private _source (the file) differs


def test_explicit_prune_layers_survive_a_dump_and_reload():
    """The pipeline resolves a recipe by dumping and re-validating it; `layers` must not come back with the default
    `num_layers` beside it (which prune refuses as "give either, not both")."""
    from mudkd.recipe.schema import Recipe

    recipe = build_recipe(sets=["prune.layers=[0,4,5]"])
    dumped = recipe.model_dump()
    assert dumped["prune"]["layers"] == [0, 4, 5] and "num_layers" not in dumped["prune"]
    again = Recipe.model_validate(dumped)
    assert again.prune.layers == [0, 4, 5] and "num_layers" not in again.prune.model_fields_set
    assert "num_layers" not in recipe_to_toml(recipe)
    assert build_recipe(sets=["prune.num_layers=3"]).model_dump()["prune"]["num_layers"] == 3
