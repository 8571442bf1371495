"""The runs of the MLflow parity test, written the same way into MLflow's SQLAlchemy store and
into ours: NaN and infinite metrics, missing ones, names with spaces and quotes, a deleted run,
two experiments."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_mlops import Metric, Param, RunTag, TrackingClient

NAN, INF = float("nan"), float("inf")


@dataclass
class Spec:
    name: str
    start: int
    end: int | None = None
    status: str = "FINISHED"
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    experiment: str = "a"
    deleted: bool = False


RUNS = [
    Spec(
        "alpha",
        1000,
        5000,
        params={"lr": "0.01", "opt": "adam", "model": "resnet"},
        metrics={"acc": [(0, 0.5), (1, 0.9)], "loss": [(0, 0.3)]},
        tags={"team": "cv"},
    ),
    Spec(
        "beta run",
        2000,
        2500,
        params={"lr": "0.1", "opt": "sgd"},
        metrics={"acc": [(0, 0.7)], "loss": [(0, INF)]},
        tags={"team": "nlp"},
    ),
    Spec(
        "it's gamma",
        3000,
        status="RUNNING",
        params={"lr": "0.001", "opt": "adam"},
        metrics={"acc": [(0, NAN)]},
        tags={"team": "cv", "note": "x"},
    ),
    Spec(
        'delta "q"',
        4000,
        9000,
        status="FAILED",
        params={"opt": "Adam"},
        metrics={"acc": [(0, 0.7)], "loss": [(0, -INF)]},
    ),
    Spec("epsilon", 5000, 6000, tags={"team": "cv"}),
    Spec(
        "zeta-nan",
        6000,
        6500,
        params={"lr": "1e-4"},
        metrics={"acc": [(0, NAN)], "loss": [(0, NAN)]},
    ),
    Spec("eta-deleted", 7000, 7100, metrics={"acc": [(0, 0.95)]}, deleted=True),
    Spec("Alpha-upper", 8000, 8200, params={"model": "ResNet"}, metrics={"acc": [(0, 0.9)]}),
    Spec(
        "theta",
        1500,
        1600,
        params={"opt": "adam"},
        metrics={"acc": [(0, 0.8)]},
        tags={"team": "cv"},
        experiment="b",
    ),
]


class MlflowSide:
    """MLflow's SqlAlchemyStore over SQLite, seeded with `RUNS`."""

    def __init__(self, root: Path) -> None:
        from mlflow.entities import Metric as MMetric
        from mlflow.entities import Param as MParam
        from mlflow.entities import RunStatus as MStatus
        from mlflow.entities import RunTag as MTag
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        self.store = SqlAlchemyStore(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))
        self.experiments = {x: self.store.create_experiment(f"parity-{x}") for x in "ab"}
        self.ids: dict[str, str] = {}
        for spec in RUNS:
            run = self.store.create_run(
                self.experiments[spec.experiment],
                getpass.getuser(),
                spec.start,
                [],
                spec.name,
            )
            run_id = run.info.run_id
            points = [
                MMetric(key, value, spec.start + step, step)
                for key, history in spec.metrics.items()
                for step, value in history
            ]
            self.store.log_batch(
                run_id,
                points,
                [MParam(k, val) for k, val in spec.params.items()],
                [MTag(k, val) for k, val in spec.tags.items()],
            )
            if spec.status != "RUNNING":
                status = MStatus.from_string(spec.status)
                self.store.update_run_info(run_id, status, spec.end, spec.name)
            if spec.deleted:
                self.store.delete_run(run_id)
            self.ids[spec.name] = run_id

    def search(
        self, filter_string: str, order_by: list[str] | None, scope: str, view: str
    ) -> list[str]:
        from mlflow.entities import ViewType

        runs = self.store.search_runs(
            [self.experiments[x] for x in scope],
            _with_ids(filter_string, self.ids),
            {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY}.get(
                view, ViewType.ALL
            ),
            max_results=1000,
            order_by=order_by,
        )
        return [r.info.run_name for r in runs]


class OurSide:
    def __init__(self, client: TrackingClient) -> None:
        self.client = client
        self.experiments = {x: client.create_experiment(f"parity-{x}") for x in "ab"}
        self.ids: dict[str, str] = {}
        for spec in RUNS:
            run = client.create_run(
                self.experiments[spec.experiment], run_name=spec.name, start_time=spec.start
            )
            run_id = run.info.run_id
            points = [
                Metric(key, value, spec.start + step, step)
                for key, history in spec.metrics.items()
                for step, value in history
            ]
            client.log_batch(
                run_id,
                points,
                [Param(k, val) for k, val in spec.params.items()],
                [RunTag(k, val) for k, val in spec.tags.items()],
            )
            if spec.status != "RUNNING":
                client.set_terminated(run_id, spec.status, end_time=spec.end)
            if spec.deleted:
                client.delete_run(run_id)
            self.ids[spec.name] = run_id

    def search(
        self,
        filter_string: str,
        order_by: list[str] | None = None,
        scope: str = "a",
        view: str = "active",
        **kw: Any,
    ) -> list[str]:
        runs = self.client.search_runs(
            [self.experiments[x] for x in scope],
            _with_ids(filter_string, self.ids),
            view,
            order_by=order_by,
            **kw,
        )
        return [r.info.run_name for r in runs]


def _with_ids(filter_string: str, ids: dict[str, str]) -> str:
    """``{alpha}`` in a filter stands for that run's id in the store at hand."""
    for name, run_id in ids.items():
        filter_string = filter_string.replace("{" + name + "}", run_id)
    return filter_string
