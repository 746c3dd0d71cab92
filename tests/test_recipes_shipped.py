"""Every recipe shipped in recipes/ validates, and the quickstart resolves its packaged model."""

from __future__ import annotations

from pathlib import Path

import pytest

from mudkd.recipe import build_recipe
from tests.helpers import REPO_ROOT

RECIPES = sorted((REPO_ROOT / "recipes").glob("*.toml"))


def test_recipes_are_shipped():
    names = {path.name for path in RECIPES}
    assert {"quickstart.toml", "glue_rosita.toml", "glue_rosita_3d.toml", "glue_tinybert.toml"} <= names


@pytest.mark.parametrize("path", [p for p in RECIPES if not p.name.startswith("sweep")], ids=lambda p: p.name)
def test_shipped_recipe_validates(path):
    recipe = build_recipe(path)
    assert recipe.output.dir is None, "the command picks outputs/<recipe name> in the working directory"


def test_quickstart_points_at_the_packaged_minilm(minilm_path):
    recipe = build_recipe(REPO_ROOT / "recipes" / "quickstart.toml")
    assert Path(recipe.teacher.pretrained) == Path(minilm_path)
    assert recipe.task.name == "rt-snippets" and recipe.hsk.config_3d == "1l_10t_0.1h"


def test_every_key_of_a_shipped_recipe_has_a_comment_nearby():
    """Shipped recipes teach: each table has at least one comment line explaining choices."""
    for path in RECIPES:
        text = path.read_text()
        assert text.lstrip().startswith("#"), f"{path.name} starts without a header comment"
