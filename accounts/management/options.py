"""Helpers shared by the accounts management commands."""

from __future__ import annotations


def split_list(values: list[str]) -> list[str]:
    """Repeatable and comma-separated option values, flattened: ["a,b", "c"] → ["a", "b", "c"]."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]
