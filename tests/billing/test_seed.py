"""The data migration seeds Free, Pro and Team with the limits docs/decisions/0039 states; going back removes them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from billing.models import Plan
from tests.billing.conftest import seed_migration

GB = 1000**3


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def _historical_plan(target: tuple[str, str]):
    """Plan as it was at `target` (columns later migrations add do not exist yet)."""
    executor = MigrationExecutor(connection)
    return executor.loader.project_state(target).apps.get_model("billing", "Plan")


def _plans_at(target: tuple[str, str]):
    """The real Plan model, with the fields added after `target` deferred (not selected), so its methods still work."""
    then = {f.name for f in _historical_plan(target)._meta.get_fields()}
    return Plan.objects.defer(*[f.name for f in Plan._meta.concrete_fields if f.name not in then])


@pytest.fixture(autouse=True)
def _back_to_the_latest_migrations():
    """Going back to 0002 also unapplies what depends on it (billing's later migrations): the session needs them all again."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_migration_seeds_three_plans_and_reverses_cleanly():
    _migrate(("billing", "0002_plans"))
    assert not Plan.objects.exists()
    _migrate(("billing", "0003_seed_plans"))
    plans = {p.code: p for p in _plans_at(("billing", "0003_seed_plans"))}
    assert list(plans) == ["free", "pro", "team"]  # cheapest first
    free, pro, team = plans["free"], plans["pro"], plans["team"]
    assert (free.monthly_price_minor, pro.monthly_price_minor, team.monthly_price_minor) == (0, 900, 4900)
    assert {p.currency for p in plans.values()} == {"USD"} and all(p.is_active for p in plans.values())
    assert free.limits().as_fields() == {
        "storage_quota_bytes": 2 * GB,
        "private_repositories_limit": 1,
        "members_limit": 3,
        "robots_limit": 1,
        "pulls_per_window_authenticated": 200,
        "pulls_per_window_anonymous": 100,
        "egress_bytes_per_month_limit": 10 * GB,
    }
    assert (free.storage_overage_minor_per_gb, free.egress_overage_minor_per_gb) == (0, 0)
    assert pro.private_repositories_limit is None and pro.storage_quota_bytes == 50 * GB
    assert team.members_limit is None and team.pulls_per_window_authenticated is None
    # Each plan allows at least what the cheaper one does (None = unlimited beats any number).
    for cheap, dear in [(free, pro), (pro, team)]:
        for name, value in cheap.limits().as_fields().items():
            more = getattr(dear, name)
            assert more is None or (value is not None and more >= value), name


@pytest.mark.django_db(transaction=True)
def test_seeding_keeps_a_plan_staff_already_made_under_a_seeded_code():
    _migrate(("billing", "0002_plans"))
    _historical_plan(("billing", "0002_plans")).objects.create(code="pro", name="Our Pro", monthly_price_minor=1234)
    _migrate(("billing", "0003_seed_plans"))
    plans = _plans_at(("billing", "0003_seed_plans"))
    assert plans.get(code="pro").name == "Our Pro" and plans.count() == 3
    assert seed_migration.PLANS[1]["code"] == "pro"
