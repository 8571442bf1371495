"""Zero-code tracking: flow files that never import prefect_mlops, run for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import prefect_mlops as mlops
from prefect_mlops import RunStatus
from prefect_mlops.tracking.store import SqlTrackingStore

pytestmark = pytest.mark.usefixtures("prefect_server")

SECRET = "s3cr3t-value-never-stored-9f1c"

UNTOUCHED = textwrap.dedent(
    """
    import argparse, sys, time
    from prefect import flow, task

    @task
    def prepare(n: int) -> list[int]:
        print("preparing", n)
        return list(range(n))

    @task
    def train(data: list[int], lr: float) -> float:
        for i in range(5):
            print(f"\\rprogress {i}/4", end="", flush=True)
            time.sleep(0.05)
        print()
        print("oops on stderr", file=sys.stderr)
        if lr < 0:
            raise ValueError("negative learning rate")
        time.sleep(0.6)
        return sum(data) * lr

    @flow(name="untouched")
    def pipeline(n: int = 3, lr: float = 0.1, opts: dict = {"depth": 2}):
        return train(prepare(n), lr)

    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        parser.add_argument("--n", type=int, default=3)
        parser.add_argument("--lr", type=float, default=0.1)
        args = parser.parse_args()
        print("result", pipeline(n=args.n, lr=args.lr))
    """
)


def plugin_env(mlops_home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_PLUGINS_ENABLED": "true",
        "PREFECT_MLOPS_AUTO_TRACK": "true",
        "PREFECT_MLOPS_HOME": str(mlops_home),
        "PREFECT_MLOPS_TELEMETRY_INTERVAL": "0.2",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        **extra,
    }


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "flow.py").write_text(UNTOUCHED)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "remote", "add", "origin", "https://alice:tok3n@example.com/team/models.git")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "flow.py").write_text(UNTOUCHED + "\n# local change\n")  # dirty
    return repo


def finalised_run(flow_run_id: str, timeout: float = 30) -> mlops.Run:
    """The run of a flow run that ran in another process, once that process finalised it
    (a tracked flow run is finalised moments after Prefect marks it Completed)."""
    deadline = time.monotonic() + timeout
    while True:
        store = mlops.get_client().store
        run_id = store.run_id_for_flow_run(flow_run_id)
        run = store.get_run(run_id) if run_id else None
        if run is not None and run.info.status is not RunStatus.RUNNING:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run of flow run {flow_run_id} not finalised: {run}")
        time.sleep(0.2)


def assert_context_and_telemetry(run: mlops.Run) -> None:
    """Git (absent here: not a repository), interpreter, packages and system metrics."""
    assert run.data.tags["git.available"] == "false"
    assert run.data.tags["python.version"] == ".".join(map(str, sys.version_info[:3]))
    assert "prefect==" in artifact_text(run.info.run_id, "environment/requirements.txt")
    keys = {s.key for s in mlops.get_client().get_metric_summaries(run.info.run_id)}
    assert {"system/cpu_percent", "system/memory_used_mb", "system/process_rss_mb"} <= keys


def only_run() -> mlops.Run:
    (run,) = mlops.get_client().search_runs()
    return run


def artifact_text(run_id: str, path: str) -> str:
    with mlops.get_client().open_artifact(run_id, path) as fh:
        return fh.read().decode()


def test_untouched_script_is_fully_tracked(mlops_home: Path, repo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "flow.py", "--n", "4"],
        cwd=repo,
        env=plugin_env(mlops_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "result 0.6" in done.stdout  # output still reaches the terminal
    run = only_run()
    run_id = run.info.run_id
    assert run.info.status is RunStatus.FINISHED
    assert run.data.params == {
        "n": "4",
        "lr": "0.1",
        "opts.depth": "2",
        "args.n": "4",
        "args.lr": "0.1",
    }
    tags = run.data.tags
    assert tags["git.commit"] == git(repo, "rev-parse", "HEAD")
    assert tags["git.branch"] == "main"
    assert tags["git.dirty"] == "true"
    assert tags["git.remote"] == "https://example.com/team/models.git"
    assert tags["python.version"] == ".".join(map(str, sys.version_info[:3]))
    assert tags["command"].endswith("flow.py --n 4")
    assert "local change" in artifact_text(run_id, "environment/git.diff")
    console = artifact_text(run_id, "console.log")
    assert "preparing 4" in console and "oops on stderr" in console
    assert "progress 4/4" in console and "progress 0/4" not in console  # \r collapsed
    requirements = artifact_text(run_id, "environment/requirements.txt")
    assert any(line.startswith("prefect==") for line in requirements.splitlines())
    environment = json.loads(artifact_text(run_id, "environment/environment.json"))
    assert environment["AWS_SECRET_ACCESS_KEY"] == "***"
    steps = json.loads(artifact_text(run_id, "prefect/task_runs.json"))
    assert [s["task"].rsplit("-", 1)[0] for s in steps] == ["prepare", "train"]
    assert all(s["state"] == "Completed" for s in steps)
    assert steps[1]["duration_s"] >= 0.6
    summaries = {s.key: s for s in mlops.get_client().get_metric_summaries(run_id)}
    assert summaries["system/cpu_percent"].count >= 1
    assert summaries["system/process_rss_mb"].min > 0
    # the secret is nowhere: not in the database file, not in any artifact
    for path in mlops_home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_failing_untouched_flow_ends_failed_with_console(mlops_home: Path, repo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "flow.py", "--lr", "-1"],
        cwd=repo,
        env=plugin_env(mlops_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    run = only_run()
    assert run.info.status is RunStatus.FAILED
    assert "negative learning rate" in run.data.tags["mlops.error"]
    assert "preparing 3" in artifact_text(run.info.run_id, "console.log")


def test_no_git_is_recorded_as_absent(mlops_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "flow.py"
    script.write_text(UNTOUCHED)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=plugin_env(mlops_home, PREFECT_MLOPS_CAPTURE_PACKAGES="false"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    run = only_run()
    assert run.data.tags["git.available"] == "false"
    assert "git.commit" not in run.data.tags
    files = [f.path for f in mlops.get_client().list_artifacts(run.info.run_id, "environment")]
    assert "environment/requirements.txt" not in files  # switched off


def test_plugin_off_means_untracked(mlops_home: Path, repo: Path) -> None:
    env = plugin_env(mlops_home, PREFECT_MLOPS_AUTO_TRACK="false")
    done = subprocess.run(
        [sys.executable, "flow.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert mlops.get_client().search_runs() == []


SERVED = textwrap.dedent(
    """
    from prefect import flow

    @flow(name="served-untouched")
    def served(epochs: int = 2):
        print("served epochs", epochs)

    if __name__ == "__main__":
        served.serve(name="zero-code", limit=1)
    """
)


def test_untouched_flow_via_serve(mlops_home: Path, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment

    (tmp_path / "served.py").write_text(SERVED)
    server = subprocess.Popen(
        [sys.executable, "served.py"], cwd=tmp_path, env=plugin_env(mlops_home)
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                flow_run = run_deployment(
                    "served-untouched/zero-code", parameters={"epochs": 5}, timeout=90
                )
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    run = finalised_run(str(flow_run.id))
    assert run.info.status is RunStatus.FINISHED
    assert run.data.params == {"epochs": "5"}
    assert run.data.tags["prefect.deployment_id"] == str(flow_run.deployment_id)
    assert "served epochs 5" in artifact_text(run.info.run_id, "console.log")
    assert_context_and_telemetry(run)


def test_untouched_flow_via_process_worker(mlops_home: Path, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment
    from prefect.flows import flow as flow_decorator  # noqa: F401  (import check)

    (tmp_path / "worked.py").write_text(
        textwrap.dedent(
            """
            from prefect import flow

            @flow(name="worked-untouched")
            def worked(size: int = 1):
                print("worker size", size)
            """
        )
    )
    env = plugin_env(mlops_home)
    pool = "mlops-test-pool"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "work-pool",
            "create",
            pool,
            "--type",
            "process",
            "--overwrite",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    deploy = textwrap.dedent(
        f"""
        from prefect import flow
        flow.from_source(source={str(tmp_path)!r}, entrypoint="worked.py:worked").deploy(
            name="by-worker", work_pool_name={pool!r}
        )
        """
    )
    subprocess.run(
        [sys.executable, "-c", deploy], env=env, check=True, capture_output=True, timeout=120
    )
    flow_run = run_deployment("worked-untouched/by-worker", parameters={"size": 7}, timeout=0)
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--run-once"],
        env=env,
        cwd=tmp_path,
    )
    try:
        worker.wait(timeout=180)
    finally:
        if worker.poll() is None:
            worker.kill()
    run = finalised_run(str(flow_run.id))
    assert run.info.status is RunStatus.FINISHED
    assert run.data.params == {"size": "7"}
    assert run.data.tags["prefect.work_pool"] == pool
    assert "worker size 7" in artifact_text(run.info.run_id, "console.log")
    assert_context_and_telemetry(run)


KILLED = textwrap.dedent(
    """
    import time
    from prefect import flow

    @flow(name="doomed")
    def doomed():
        print("READY", flush=True)
        time.sleep(600)

    doomed()
    """
)


def start_doomed(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """The untouched flow above in its own process, once it is running its body."""
    (tmp_path / "doomed.py").write_text(KILLED)
    proc = subprocess.Popen(
        [sys.executable, "doomed.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "READY" in line:
            break
    return proc


def test_watchdog_crashes_sigkilled_script_and_run_follows(
    mlops_home: Path, tmp_path: Path
) -> None:
    from prefect_mlops.cli.setup import create_watchdog
    from prefect_mlops.tracking.reconcile import reconcile_runs

    create_watchdog(within_seconds=35)
    proc = start_doomed(tmp_path, plugin_env(mlops_home, PREFECT_FLOWS_HEARTBEAT_FREQUENCY="30"))
    deadline = time.monotonic() + 30  # a flow without tasks gets its run within seconds
    while not mlops.get_client().search_runs() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    client = mlops.get_client()
    deadline = time.monotonic() + 150
    run = only_run()
    while run.info.status is RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(3)
        reconcile_runs(client)
        run = client.get_run(run.info.run_id)
    assert run.info.status is RunStatus.KILLED
    assert run.data.tags["mlops.reconciled_from"] == "Crashed"


def test_autolog_one_liner_tracks_flows_in_process(mlops_home: Path) -> None:
    from prefect import flow
    from prefect.runtime import flow_run as current

    @flow(name="one-liner")
    def quiet(x: int = 1) -> str:
        return str(current.id)

    try:
        mlops.autolog()
        flow_run_id = quiet(x=3)
    finally:
        mlops.autolog(disable=True)
    run = mlops.get_client().get_run_by_flow_run_id(flow_run_id)
    assert run is not None
    assert run.info.status is RunStatus.FINISHED
    assert run.data.params == {"x": "3"}
    assert "python.version" in run.data.tags
    assert mlops.get_client().get_run_by_flow_run_id(quiet()) is None  # off again


def test_in_process_subflow_nests_from_context_without_trace_labels(
    mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short flow's run is created after it ends, from what its context held: the subflow's
    parent is known without asking the API, task runs are steps, and the spans our tracer
    provider records leave no trace context on the flow run (no extra API call)."""
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run as current

    from prefect_mlops.tracking import prefect_binding

    def no_api(flow_run: object) -> str | None:
        raise AssertionError("the parent flow run was looked up through the API")

    monkeypatch.setattr(prefect_binding, "_parent_flow_run_id", no_api)

    @task
    def bump(x: int) -> int:
        return x + 1

    @flow(name="inner-auto")
    def inner(x: int) -> str:
        bump(x)
        return str(current.id)

    @flow(name="outer-auto")
    def outer(width: int = 5) -> tuple[str, str]:
        child = inner(bump(width))
        return str(current.id), child

    try:
        mlops.autolog()
        outer_id, inner_id = outer(width=7)
        returned_ms = int(time.time() * 1000)
    finally:
        mlops.autolog(disable=True)
    client = mlops.get_client()
    outer_run = client.get_run_by_flow_run_id(outer_id)
    inner_run = client.get_run_by_flow_run_id(inner_id)
    assert outer_run is not None and inner_run is not None
    assert inner_run.info.parent_run_id == outer_run.info.run_id
    assert (outer_run.data.params, inner_run.data.params) == ({"width": "7"}, {"x": "8"})
    assert outer_run.info.status is inner_run.info.status is RunStatus.FINISHED
    assert outer_run.info.start_time <= inner_run.info.start_time
    assert inner_run.info.end_time is not None and outer_run.info.end_time is not None
    assert inner_run.info.end_time <= outer_run.info.end_time <= returned_ms  # the flow's end
    steps = json.loads(artifact_text(outer_run.info.run_id, "prefect/task_runs.json"))
    assert [s["task"].split("-")[0] for s in steps] == ["bump"]
    assert steps[0]["state"] == "Completed"
    keys = {s.key for s in client.get_metric_summaries(inner_run.info.run_id)}
    assert {"system/cpu_percent", "system/memory_used_mb"} <= keys
    with get_client(sync_client=True) as prefect:
        for flow_run_id in (outer_id, inner_id):
            labels = prefect.read_flow_run(flow_run_id).labels
            assert not any("TRACEPARENT" in key.upper() for key in labels), labels


def test_untouched_flow_terminated_early_ends_killed_by_its_own_process(
    mlops_home: Path, tmp_path: Path
) -> None:
    """SIGTERM before the run would have been created: Prefect marks the flow run Crashed
    and kills the process right after, so the run is created and ended in the flow's thread."""
    proc = start_doomed(tmp_path, plugin_env(mlops_home))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    run = only_run()
    assert run.info.status is RunStatus.KILLED
    assert "mlops.reconciled_from" not in run.data.tags  # ended by its own process
    assert "READY" in artifact_text(run.info.run_id, "console.log")
    assert run.data.tags["python.version"] == ".".join(map(str, sys.version_info[:3]))


def test_retried_flow_is_finished_by_its_last_attempt(
    mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prefect ends a flow run's span after a failed attempt that will be retried; the run
    must follow the last attempt (and land in the experiment set before the flow started)."""
    from prefect import flow, task
    from prefect.runtime import flow_run as current

    attempts: list[int] = []

    @task
    def step(i: int) -> int:
        return i

    @flow(name="flaky", retries=1, retry_delay_seconds=0)
    def flaky(fail_times: int) -> str:
        attempts.append(step(len(attempts)))
        if len(attempts) <= fail_times:
            raise RuntimeError(f"attempt {len(attempts)} failed")
        return str(current.id)

    mlops.set_experiment("churn")
    try:
        mlops.autolog()
        flow_run_id = flaky(fail_times=1)
        state = flaky(fail_times=5, return_state=True)
    finally:
        mlops.autolog(disable=True)
    client = mlops.get_client()
    run = client.get_run_by_flow_run_id(flow_run_id)
    assert run is not None and run.info.status is RunStatus.FINISHED
    assert client.get_experiment(run.info.experiment_id).name == "churn"
    steps = json.loads(artifact_text(run.info.run_id, "prefect/task_runs.json"))
    assert [s["state"] for s in steps] == ["Completed", "Completed"]  # both attempts
    failed = client.get_run_by_flow_run_id(str(state.state_details.flow_run_id))
    assert failed is not None and failed.info.status is RunStatus.FAILED
    assert "attempt 4 failed" in failed.data.tags["mlops.error"]


def test_run_is_ended_even_when_its_final_write_fails(
    mlops_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from prefect import flow
    from prefect.runtime import flow_run as current

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("artifact store full")

    monkeypatch.setattr(SqlTrackingStore, "end_run", broken)

    @flow(name="unlucky")
    def unlucky() -> str:
        return str(current.id)

    try:
        mlops.autolog()
        flow_run_id = unlucky()
    finally:
        mlops.autolog(disable=True)
    run = mlops.get_client().get_run_by_flow_run_id(flow_run_id)
    assert run is not None and run.info.status is RunStatus.FINISHED
    assert "artifact store full" in caplog.text


def test_our_spans_never_propagate_a_trace_context() -> None:
    """A flow run that arrives with a trace id (a traceparent label) gives our span a valid
    trace id and span id 0: nothing may be injected for it, while real spans still are."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Decision, StaticSampler
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from prefect_mlops.tracking.auto_track import _NoTraceContext, _ValidContextOnly

    w3c = TraceContextTextMapPropagator()
    propagator = _ValidContextOnly(w3c)
    incoming = w3c.extract({"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"})
    ours = TracerProvider(
        sampler=StaticSampler(Decision.RECORD_ONLY), id_generator=_NoTraceContext()
    ).get_tracer("t")
    span = ours.start_span("flow", context=incoming)
    assert span.is_recording() and span.get_span_context().trace_id == int("a" * 32, 16)
    carrier: dict[str, str] = {}
    propagator.inject(carrier, trace.set_span_in_context(span))
    assert carrier == {}
    w3c.inject(carrier, trace.set_span_in_context(span))
    assert carrier  # what Prefect would have saved without the wrapper
    real = TracerProvider().get_tracer("t").start_span("real", context=incoming)
    carrier = {}
    propagator.inject(carrier, trace.set_span_in_context(real))
    assert carrier["traceparent"].startswith(f"00-{'a' * 32}-")
    assert propagator.fields == w3c.fields
