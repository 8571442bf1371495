"""The inner joins a run filter makes, and the join chains SQLite must read in a fixed order.

A top-level AND-ed metric, param or tag comparison becomes a `Joined` row of its table on
(run_id, key); `join_chain` links them and ``runs`` in the order the store picks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from prefect_mlops.tracking import tables as t

runs = t.runs

ENTITY_TABLES = {"metrics": t.latest_metrics, "params": t.params, "tags": t.tags}


@dataclass(frozen=True)
class ValueTest:
    """A test on the value columns of a metric/param/tag row (None: the row only has to
    exist); built per table so that it applies to the base table or to an alias.
    ``admits_null``: a NULL value (a NaN metric) can pass it."""

    test: Callable[[Any], Any] | None
    admits_null: bool = False


@dataclass(frozen=True, eq=False)
class Joined:
    """A run's row in ``table`` (latest_metrics, params or tags) for ``key``, passing
    ``tests``, inner-joined as ``alias``."""

    entity: str
    key: str
    table: sa.Table
    alias: Any
    tests: tuple[Callable[[Any], Any], ...]
    nullable: bool  # whether the joined row's value can be NULL (a NaN metric)

    def conditions(self) -> list[Any]:
        return [self.alias.c.key == self.key, *[test(self.alias) for test in self.tests]]

    def estimate(self, cap: int) -> Any:
        """How many rows of ``table`` pass (counting stops at ``cap``): an index-only scan."""
        table = self.table
        rows = (
            sa.select(sa.literal(1))
            .select_from(table)
            .where(table.c.key == self.key, *[test(table) for test in self.tests])
            .limit(cap)
        )
        return sa.select(sa.func.count()).select_from(rows.subquery())


class _FixedJoin(sa.sql.selectable.Join):
    """An inner join that SQLite must run with its left side as the outer loop."""

    inherit_cache = True


@compiles(_FixedJoin, "sqlite")
def _fixed_join_sqlite(element: _FixedJoin, compiler: Any, **kw: Any) -> str:
    # SQLite never reorders the two sides of a CROSS JOIN (otherwise an inner join); this
    # is SQLAlchemy's visit_join with that keyword.
    linter = kw.pop("from_linter", None)
    kw.pop("asfrom", None)
    if linter:
        linter.edges.update(
            itertools.product(
                [f._de_clone() for f in element.left._from_objects],
                [f._de_clone() for f in element.right._from_objects],
            )
        )
    left = element.left._compiler_dispatch(compiler, asfrom=True, from_linter=linter, **kw)
    right = element.right._compiler_dispatch(compiler, asfrom=True, from_linter=linter, **kw)
    assert element.onclause is not None
    on = element.onclause._compiler_dispatch(compiler, from_linter=linter, **kw)
    return f"{left} CROSS JOIN {right} ON {on}"


@dataclass
class RunFilter:
    """A compiled run filter: inner joins onto ``runs`` and WHERE conditions."""

    joins: list[Joined] = field(default_factory=list)
    conditions: list[Any] = field(default_factory=list)

    def joined(self, entity: str, key: str) -> Joined | None:
        return next((j for j in self.joins if (j.entity, j.key) == (entity, key)), None)


def join_chain(tables: Sequence[Joined | sa.Table], *, fixed: bool) -> Any:
    """Inner joins of ``tables`` (`Joined` rows, and ``runs`` itself) on the run id of the
    first. ``fixed`` makes SQLite read them in this order (a CROSS JOIN chain)."""
    first = tables[0]
    if isinstance(first, Joined):
        base, run_id, pending = first.alias, first.alias.c.run_id, first.conditions()
    else:
        base, run_id, pending = first, runs.c.run_id, []
    for item in tables[1:]:
        if isinstance(item, Joined):
            right, on = item.alias, [item.alias.c.run_id == run_id, *item.conditions()]
        else:
            right, on = item, [runs.c.run_id == run_id]
        on, pending = [*on, *pending], []
        base = (_FixedJoin if fixed else sa.sql.selectable.Join)(base, right, sa.and_(*on))
    assert not pending, "runs must be among the tables"
    return base
