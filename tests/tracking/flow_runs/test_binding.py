"""Tracking inside real Prefect flows, against a real `prefect server start`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from uuid import UUID

import pytest
from pydantic import BaseModel

import prefect_mlops as mlops
from prefect_mlops import RunStatus

pytestmark = pytest.mark.usefixtures("prefect_server")


class Optim(BaseModel):
    name: str = "adam"
    betas: tuple[float, float] = (0.9, 0.99)


def _flow_artifacts(flow_run_id: str) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])
            )
        )
    return {a.key: str(a.data) for a in found if a.key}


def _run_by_flow_run(flow_run_id: str) -> mlops.Run:
    run = mlops.get_client().get_run_by_flow_run_id(flow_run_id)
    assert run is not None, f"no run bound to flow run {flow_run_id}"
    return run


def test_flow_run_gets_a_bound_run(mlops_home: Path) -> None:
    from prefect import flow, get_run_logger
    from prefect.runtime import flow_run as current

    @flow(name="train-demo")
    def train(
        lr: float = 0.1, epochs: int = 3, optim: Optim = Optim(), extra: dict | None = None
    ) -> str:
        get_run_logger().info("training")
        for epoch in range(epochs):
            mlops.log_metric("train/loss", 1 / (epoch + 1), step=epoch)
        mlops.log_dict({"lr": lr}, "config.json")
        return str(current.id)

    flow_run_id = train(lr=0.05, extra={"data": {"path": "/d", "n": 2}})
    run = _run_by_flow_run(flow_run_id)
    info, data = run.info, run.data
    assert info.status is RunStatus.FINISHED and info.end_time is not None
    assert info.prefect_flow_run_id == flow_run_id
    assert mlops.get_client().get_experiment(info.experiment_id).name == "train-demo"
    assert data.params == {
        "lr": "0.05",
        "epochs": "3",
        "optim.name": "adam",
        "optim.betas": "[0.9, 0.99]",
        "extra.data.path": "/d",
        "extra.data.n": "2",
    }
    assert data.metrics == {"train/loss": pytest.approx(1 / 3)}
    assert data.tags["prefect.flow_run_id"] == flow_run_id
    assert data.tags["prefect.flow_name"] == "train-demo"
    assert data.tags["prefect.url"].endswith(f"/runs/flow-run/{flow_run_id}")
    assert info.run_name == data.tags["prefect.flow_run_name"]
    history = mlops.get_metric_history(info.run_id, "train/loss")
    assert [m.step for m in history] == [0, 1, 2]

    artifacts = _flow_artifacts(flow_run_id)
    summary = artifacts["mlops-summary-train-demo"]
    assert "| lr | 0.05 |" in summary
    assert "| train/loss | 0.333333 | 0.333333 | 1 | 3 |" in summary
    assert info.run_id in summary
    charts = artifacts["mlops-charts-train-demo"]
    assert charts.count("data:image/svg+xml;base64,") == 1


def test_set_experiment_inside_flow_and_untracked_flow(mlops_home: Path) -> None:
    from prefect import flow
    from prefect.runtime import flow_run as current

    @flow
    def named() -> str:
        mlops.set_experiment("custom-exp")
        mlops.log_param("p", 1)
        return str(current.id)

    @flow
    def untouched() -> str:
        return str(current.id)

    run = _run_by_flow_run(named())
    assert mlops.get_client().get_experiment(run.info.experiment_id).name == "custom-exp"
    assert mlops.get_client().get_run_by_flow_run_id(untouched()) is None


def test_subflow_gets_a_nested_run_and_thread_tasks_log_to_their_flow(mlops_home: Path) -> None:
    from prefect import flow, task
    from prefect.runtime import flow_run as current
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def score(i: int) -> None:
        mlops.log_metric("task/score", float(i), step=i)

    @flow
    def child() -> str:
        mlops.log_metric("child/m", 1.0)
        return str(current.id)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def parent() -> tuple[str, str]:
        mlops.log_metric("parent/m", 1.0)
        score.map(range(8)).wait()
        return str(current.id), child()

    parent_id, child_id = parent()
    parent_run, child_run = _run_by_flow_run(parent_id), _run_by_flow_run(child_id)
    assert child_run.info.parent_run_id == parent_run.info.run_id
    assert child_run.info.status is RunStatus.FINISHED
    assert parent_run.info.status is RunStatus.FINISHED
    assert sorted(
        m.step for m in mlops.get_metric_history(parent_run.info.run_id, "task/score")
    ) == list(range(8))
    assert set(child_run.data.metrics) == {"child/m"}


def test_parent_that_never_logs_still_ends_with_its_flow(mlops_home: Path) -> None:
    from prefect import flow
    from prefect.runtime import flow_run as current

    @flow
    def inner(i: int) -> str:
        mlops.log_metric("inner/m", float(i))
        return str(current.id)

    @flow
    def outer() -> tuple[str, list[str]]:
        return str(current.id), [inner(i) for i in range(2)]

    outer_id, inner_ids = outer()
    parent = _run_by_flow_run(outer_id)
    assert parent.info.status is RunStatus.FINISHED
    for child_id in inner_ids:
        child = _run_by_flow_run(child_id)
        assert child.info.parent_run_id == parent.info.run_id
        assert child.info.status is RunStatus.FINISHED
    assert "mlops-summary-outer" in _flow_artifacts(outer_id)


def test_tasks_in_other_processes_log_to_the_flow_run(mlops_home: Path) -> None:
    from prefect import flow, task
    from prefect.runtime import flow_run as current
    from prefect.task_runners import ProcessPoolTaskRunner

    @task
    def work(i: int) -> None:
        mlops.log_metric("proc/value", float(i * 10), step=i)

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
    def multi() -> str:
        mlops.log_param("mode", "processes")
        work.map(range(4)).wait()
        return str(current.id)

    run = _run_by_flow_run(multi())
    history = mlops.get_metric_history(run.info.run_id, "proc/value")
    assert sorted((m.step, m.value) for m in history) == [(i, i * 10.0) for i in range(4)]
    assert run.data.params == {"mode": "processes"}


def test_failing_flow_ends_failed_with_error_tag(mlops_home: Path) -> None:
    from prefect import flow
    from prefect.runtime import flow_run as current

    ids: list[str] = []

    @flow
    def broken() -> None:
        ids.append(str(current.id))
        mlops.log_metric("before", 1.0)
        raise ValueError("diverged at epoch 3")

    with pytest.raises(ValueError, match="diverged"):
        broken()
    run = _run_by_flow_run(ids[0])
    assert run.info.status is RunStatus.FAILED
    assert "diverged at epoch 3" in run.data.tags["mlops.error"]
    assert run.data.metrics == {"before": 1.0}


def test_reconcile_marks_runs_of_crashed_flow_runs_killed(mlops_home: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed, Running

    from prefect_mlops.tracking.flow_runs.reconcile import reconcile_runs

    client = mlops.get_client()
    with get_client(sync_client=True) as prefect:
        from prefect import flow

        @flow
        def victim() -> None: ...

        flow_run = prefect.create_flow_run(victim, state=Running())
        exp = client.get_or_create_experiment("victims")
        run = client.create_run(exp.experiment_id, prefect_flow_run_id=str(flow_run.id))
        other = mlops.TrackingClient()  # a reader in another process would not own the run
        assert reconcile_runs(other) == []  # still Running in Prefect: nothing to do
        prefect.set_flow_run_state(flow_run.id, Crashed(message="killed -9"), force=True)
    (listed,) = other.search_runs([exp.experiment_id])  # listing reconciles too
    assert listed.info.status is RunStatus.KILLED
    assert other.get_run(run.info.run_id).data.tags["mlops.reconciled_from"] == "Crashed"


def test_reconcile_leaves_a_just_completed_flow_run_to_its_own_process(
    mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process that ran a flow finalises its run moments after Prefect records the final
    state; a reader elsewhere must not settle it first (and tag it as reconciled)."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Running

    from prefect_mlops.tracking.flow_runs import reconcile

    client = mlops.get_client()
    with get_client(sync_client=True) as prefect:

        @flow
        def finishing() -> None: ...

        flow_run = prefect.create_flow_run(finishing, state=Running())
        exp = client.get_or_create_experiment("finishing")
        run = client.create_run(exp.experiment_id, prefect_flow_run_id=str(flow_run.id))
        prefect.set_flow_run_state(flow_run.id, Completed(), force=True)
    other = mlops.TrackingClient()
    assert reconcile.reconcile_runs(other) == []  # within the grace period
    assert other.get_run(run.info.run_id).info.status is RunStatus.RUNNING
    monkeypatch.setattr(reconcile, "FINALISE_GRACE_MS", 0)  # as if the grace had passed
    assert reconcile.reconcile_runs(other) == [(run.info.run_id, RunStatus.FINISHED, "Completed")]
    assert other.get_run(run.info.run_id).data.tags["mlops.reconciled_from"] == "Completed"


SERVED = textwrap.dedent(
    """
    from prefect import flow
    import prefect_mlops as mlops

    @flow(name="served-train")
    def served_train(epochs: int = 2):
        for e in range(epochs):
            mlops.log_metric("loss", 1.0 / (e + 1), step=e)

    if __name__ == "__main__":
        served_train.serve(name="served", limit=1)
    """
)


def test_flow_started_from_a_deployment_via_serve(mlops_home: Path, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment

    script = tmp_path / "served.py"
    script.write_text(SERVED)
    server = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                flow_run = run_deployment(
                    "served-train/served", parameters={"epochs": 3}, timeout=90
                )
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state
    finally:
        server.terminate()
        server.wait(timeout=30)
    run = _run_by_flow_run(str(flow_run.id))
    assert run.info.status is RunStatus.FINISHED
    assert run.data.params == {"epochs": "3"}
    assert run.data.tags["prefect.deployment_id"] == str(flow_run.deployment_id)
    assert len(mlops.get_metric_history(run.info.run_id, "loss")) == 3


TERMINATED = textwrap.dedent(
    """
    import sys, time
    from prefect import flow
    import prefect_mlops as mlops

    @flow(name="long-train")
    def long_train():
        mlops.log_metric("started", 1.0)
        mlops.flush()
        print("READY", flush=True)
        time.sleep(120)

    long_train()
    """
)


def test_flow_terminated_by_sigterm_ends_killed(mlops_home: Path, tmp_path: Path) -> None:
    import signal

    script = tmp_path / "long.py"
    script.write_text(TERMINATED)
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "READY" in line:
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    (run,) = mlops.get_client().search_runs()
    assert run.info.status is RunStatus.KILLED
    assert run.data.metrics == {"started": 1.0}


def test_comparison_published_as_a_flow_run_artifact(mlops_home: Path) -> None:
    from prefect import flow
    from prefect.runtime import flow_run as current

    client = mlops.TrackingClient()
    exp = client.create_experiment("cmp")
    ids = client.create_runs_bulk(
        exp,
        [
            mlops.BulkRun("a", params={"lr": "0.1"}, metrics={"acc": [(0, 0.5), (1, 0.7)]}),
            mlops.BulkRun("b", params={"lr": "0.2"}, metrics={"acc": [(0, 0.6), (1, 0.9)]}),
        ],
    )

    @flow
    def report() -> str:
        mlops.compare_runs(ids, publish=True)
        return str(current.id)

    artifacts = _flow_artifacts(report())
    markdown = artifacts["mlops-run-comparison"]
    assert "| lr **≠** | 0.1 | 0.2 |" in markdown
    assert markdown.count("data:image/svg+xml;base64,") == 1
