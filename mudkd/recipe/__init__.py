"""Recipes: typed, validated TOML experiment descriptions (pure Python, no torch)."""

from mudkd.recipe.load import build_recipe, recipe_fields, recipe_to_toml
from mudkd.recipe.overrides import parse_override
from mudkd.recipe.schema import Recipe

__all__ = ["Recipe", "build_recipe", "parse_override", "recipe_fields", "recipe_to_toml"]
