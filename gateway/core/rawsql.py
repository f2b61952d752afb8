"""Model instances from hand-written SQL rows, for the few lookups every request makes (docs/decisions/0037).

The ORM's query building and compilation cost more than the query on the hottest paths
(bench/README.md). `columns` is the select list of a model's concrete fields, built once per
process; `instance` turns a row of those columns back into the model, as the ORM would (the
fields' from-database converters applied, e.g. JSONField's decoding).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]


@functools.cache
def _fields(model: type[Model]) -> tuple[list[str], list[str], list[tuple[int, Converter]]]:
    fields = model._meta.concrete_fields
    converters = [(i, c) for i, f in enumerate(fields) for c in f.get_db_converters(connection)]
    return [str(f.column) for f in fields], [f.attname for f in fields], converters


@functools.cache
def columns(model: type[Model], alias: str) -> str:
    """`alias."col", …` for every concrete field of `model`, in field order."""
    return ", ".join(f'{alias}."{column}"' for column in _fields(model)[0])


def width(model: type[Model]) -> int:
    """How many columns `columns(model, …)` selects."""
    return len(_fields(model)[0])


def instance(model: type[M], row: Sequence[Any]) -> M:
    """The model instance a row of `columns(model, …)` holds (loaded from the default database)."""
    _, names, converters = _fields(model)
    values = list(row)
    for i, convert in converters:
        values[i] = convert(values[i], None, connection)
    return model.from_db(connection.alias, names, values)
