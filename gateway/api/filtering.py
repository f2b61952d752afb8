"""List filters declared as django-filter FilterSets (docs/decisions/0021), for every list operation.

A view declares a `django_filters.FilterSet` in its module, applies it to its selector's
queryset with `filtered(request, FilterSet, queryset)` (invalid values → 400 problem+json with
`errors` naming each parameter), and documents it with `extend_schema(parameters=filter_parameters(FilterSet))`.
Ordering stays with the cursor paginator: a `sort` choice is read from `cleaned(...)`, not applied
by the FilterSet.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions
from rest_framework.request import Request

_TYPES: list[tuple[type[forms.Field], str]] = [
    (forms.NullBooleanField, "boolean"),
    (forms.BooleanField, "boolean"),
    (forms.IntegerField, "integer"),
    (forms.DecimalField, "number"),
    (forms.FloatField, "number"),
]


def _validated(request: Request, filterset_class: type[django_filters.FilterSet], queryset: QuerySet) -> Any:
    filterset = filterset_class(data=request.query_params, queryset=queryset, request=request)
    if not filterset.is_valid():
        raise exceptions.ValidationError(
            {
                name: [
                    exceptions.ErrorDetail(message, code=error.code or "invalid") for error in errs for message in error.messages
                ]
                for name, errs in filterset.errors.as_data().items()
            }
        )
    return filterset


def _unfiltered(request: Request, filterset_class: type[django_filters.FilterSet]) -> bool:
    """Whether the request names none of the FilterSet's (all optional) parameters: then it changes nothing.

    Most list requests (every `next` page without filters) skip building a FilterSet and its form.
    """
    names = filterset_class.base_filters
    params = request.query_params
    return not any(name in params for name in names) and not any(f.extra.get("required") for f in names.values())


def filtered(request: Request, filterset_class: type[django_filters.FilterSet], queryset: QuerySet) -> QuerySet:
    """`queryset` narrowed by the request's query parameters through `filterset_class`; ValidationError (400) if invalid."""
    if _unfiltered(request, filterset_class):
        return queryset
    return _validated(request, filterset_class, queryset).qs


def cleaned(request: Request, filterset_class: type[django_filters.FilterSet], queryset: QuerySet) -> tuple[QuerySet, dict]:
    """Like `filtered`, with the validated values as well (e.g. a `sort` choice for the paginator; {} without parameters)."""
    if _unfiltered(request, filterset_class):
        return queryset, {}
    filterset = _validated(request, filterset_class, queryset)
    return filterset.qs, dict(filterset.form.cleaned_data)


def filter_parameters(filterset_class: type[django_filters.FilterSet]) -> list[OpenApiParameter]:
    """The FilterSet's query parameters for `extend_schema(parameters=…)`: type, choices, length limit, description."""
    parameters = []
    for name, declared in filterset_class.base_filters.items():
        field = declared.field
        schema: dict[str, Any] = {"type": next((t for cls, t in _TYPES if isinstance(field, cls)), "string")}
        if isinstance(field, forms.DateTimeField):
            schema["format"] = "date-time"
        choices = [value for value, _ in getattr(field, "choices", []) if value != ""]
        if choices:
            schema["enum"] = choices
        if getattr(field, "max_length", None):
            schema["maxLength"] = field.max_length
        description = str(field.help_text or declared.label or "")
        parameters.append(OpenApiParameter(name, schema, OpenApiParameter.QUERY, required=False, description=description))
    return parameters
