"""Search benchmark: run search, counting, full-text, aggregation and paging on a large store.

    .venv/bin/python bench/bench_search.py [--quick]

Seeds 100,000 runs (10 params, 10 metrics of 3 steps, 5 tags each) into the default embedded
SQLite store with `TrackingClient.create_runs_bulk`, then times searches on it from a fresh
interpreter; finally runs the same search on 10,000 runs through prefect-mlops and through
MLflow's own SQLite store. Each workload runs in its own spawned subprocess with a fresh
temporary home (the searches reuse the home their seeding step filled). Latencies are medians
(p50) with p90 beside them. Writes bench/results/search.md (the table) and search.json (raw
numbers); ``--quick`` runs small sizes as a smoke test and writes search-quick.md/.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MB = 1024 * 1024
SIZES = {
    "full": dict(runs=100_000, compare_runs=10_000, mlflow_api_runs=200, reps=20, walks=3),
    "quick": dict(runs=10_000, compare_runs=2_000, mlflow_api_runs=50, reps=10, walks=2),
}  # fmt: skip
CHUNK = 10_000  # runs built and passed per create_runs_bulk call (building is not timed)
PAGE = 1000

# -- the runs ----------------------------------------------------------------------------------

OPTIMIZERS = ("adam", "sgd", "rmsprop")
MODELS = ("resnet18", "resnet50", "vit")
VARIANTS = ("baseline", "augment", "mixup", "longer", "sweep")
TEAMS = ("vision", "platform", "research")
STAGES = ("dev", "staging", "prod")
DATASETS = ("imagenet", "cifar10", "coco")
NOTE_WORDS = (
    "baseline", "augment", "mixup", "cutout", "warmup", "cosine", "schedule", "retry", "longer",
    "sweep", "ablation", "finetune", "pretrained", "frozen", "label", "smoothing", "flaky",
    "resumed", "checkpoint", "distilled",
)  # fmt: skip
METRIC_KEYS = (
    "val/acc", "val/loss", "val/f1", "val/precision", "val/recall",
    "train/acc", "train/loss", "train/lr", "throughput", "epoch_time",
)  # fmt: skip
STEPS = 3
BASE_TIME = 1_735_689_600_000  # 2025-01-01 UTC: fixed, so every store gets the very same runs
DAY_MS = 86_400_000

FILTER = "metrics.`val/acc` > 0.5 AND params.optimizer = 'adam'"
ORDER = ["metrics.`val/acc` DESC"]
TOP = 100
QUERY = "resnet augment"
GROUP_BY = ["params.optimizer"]
AGGREGATES = {"val/acc": ["mean", "max", "count"]}
PAGE_FILTER = "params.seed = '3'"  # seed is the run number mod 10: a tenth of the runs


def make_runs(start: int, stop: int) -> list[dict[str, Any]]:
    """Runs ``start``..``stop`` as plain dicts (`BulkRun` fields); run ``i`` is always the same."""
    out = []
    for i in range(start, stop):
        rng = random.Random(i)
        model, variant = rng.choice(MODELS), rng.choice(VARIANTS)
        start_time = BASE_TIME + rng.randrange(90 * DAY_MS)
        params = {
            "optimizer": rng.choice(OPTIMIZERS),
            "lr": f"{10 ** rng.uniform(-3, -1):.5f}",
            "model": model,
            "batch_size": str(rng.choice((32, 64, 128, 256))),
            "epochs": str(rng.choice((10, 20, 50, 100))),
            "weight_decay": str(rng.choice((0.0, 1e-5, 1e-4, 5e-4))),
            "dropout": str(rng.choice((0.0, 0.1, 0.2, 0.3, 0.5))),
            "scheduler": rng.choice(("cosine", "step", "none")),
            "warmup_steps": str(rng.choice((0, 500, 1000))),
            "seed": str(i % 10),
        }
        tags = {
            "team": rng.choice(TEAMS),
            "stage": rng.choice(STAGES),
            "dataset": rng.choice(DATASETS),
            "arch": "vit" if model == "vit" else "resnet",
            "note": " ".join(rng.sample(NOTE_WORDS, rng.randint(3, 6))),
        }
        metrics = {k: [(s, rng.random()) for s in range(STEPS)] for k in METRIC_KEYS}
        out.append(
            {
                "run_name": f"{model}-{variant}-{i}",
                "params": params,
                "tags": tags,
                "metrics": metrics,
                "start_time": start_time,
                "end_time": start_time + rng.randrange(60_000, 6 * 3_600_000),
                "status": "FAILED" if rng.random() < 0.05 else "FINISHED",
            }
        )
    return out


# -- plumbing ----------------------------------------------------------------------------------


def isolated(fn: Callable[..., dict], *args: Any, home: str | None = None) -> dict:
    """``fn(home, *args)`` in a fresh spawned interpreter; a new temporary ``home`` (removed
    afterwards) unless one is given."""
    own = home is None
    home = home or tempfile.mkdtemp(prefix="bench-search-")
    try:
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            return pool.submit(fn, home, *args).result()
    finally:
        if own:
            shutil.rmtree(home, ignore_errors=True)
            os.sync()


def _use_home(home: str) -> None:
    """Point prefect-mlops at ``home``; call before importing it."""
    os.environ["PREFECT_MLOPS_HOME"] = home
    os.environ.pop("PREFECT_MLOPS_DATABASE_URL", None)
    os.environ.pop("PREFECT_MLOPS_ARTIFACT_STORAGE", None)
    os.chdir(home)


def _client(home: str) -> Any:
    _use_home(home)
    import prefect_mlops as mlops

    return mlops.TrackingClient()


def _mlflow_quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def timed(fn: Callable[[], Any], reps: int, warmup: int = 2) -> tuple[dict, Any]:
    """Call ``fn`` ``warmup`` times untimed (the first is kept as ``first_ms``), then ``reps``
    times; returns ({p50_ms, p90_ms, cpu_p50_ms (this process's CPU time), first_ms, all_ms},
    the last result)."""
    t0 = time.perf_counter()
    result = fn()
    first = (time.perf_counter() - t0) * 1000
    for _ in range(warmup - 1):
        fn()
    times, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    stats = {
        "p50_ms": statistics.median(times),
        "p90_ms": statistics.quantiles(times, n=10)[-1],
        "cpu_p50_ms": statistics.median(cpu),
        "first_ms": first,
        "all_ms": times,
    }
    return stats, result


def _seed_ours(client: Any, experiment_id: str, runs: int) -> tuple[float, float]:
    """(seconds, CPU seconds of this process) spent inside `create_runs_bulk` writing ``runs``
    runs."""
    from prefect_mlops import BulkRun

    seconds = cpu = 0.0
    for start in range(0, runs, CHUNK):
        batch = [BulkRun(**spec) for spec in make_runs(start, min(runs, start + CHUNK))]
        t0, c0 = time.perf_counter(), time.process_time()
        created = client.create_runs_bulk(experiment_id, batch)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        assert len(created) == len(batch)
    return seconds, cpu


def _db_mb(client: Any) -> float:
    path = Path(client.database_url.removeprefix("sqlite:///"))
    files = [path, path.with_name(path.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / MB


# -- workloads (each runs in a subprocess) -----------------------------------------------------


def ours_seed(home: str, runs: int) -> dict:
    client = _client(home)
    experiment_id = client.get_or_create_experiment("search-bench").experiment_id
    seconds, cpu = _seed_ours(client, experiment_id, runs)
    assert client.count_runs() == runs
    return {
        "runs": runs,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "runs_per_s": runs / seconds,
        "rows": runs * (len(METRIC_KEYS) * (STEPS + 1) + 10 + 5 + 1),
        "db_mb": _db_mb(client),
    }


def ours_queries(home: str, reps: int, walks: int) -> dict:
    """The searches, in a fresh interpreter on the store ``ours_seed`` filled."""
    client = _client(home)
    total = client.count_runs()
    out: dict[str, Any] = {"runs": total}

    def search() -> Any:
        return client.search_runs(filter_string=FILTER, order_by=ORDER, max_results=TOP)

    out["search"], page = timed(search, reps)
    values = [r.data.metrics["val/acc"] for r in page]
    assert len(page) == TOP and values == sorted(values, reverse=True), values
    assert all(r.data.params["optimizer"] == "adam" for r in page) and values[-1] > 0.5

    out["count"], matched = timed(lambda: client.count_runs(filter_string=FILTER), reps)
    out["count"]["matched"] = matched
    assert matched >= TOP, matched

    out["full_text"], page = timed(lambda: client.search_runs(query=QUERY, max_results=TOP), reps)
    assert len(page) == TOP
    for r in page:
        words = " ".join([r.info.run_name, *r.data.tags.values()]).replace("-", " ").split()
        assert "resnet" in words and "augment" in words, (r.info.run_name, r.data.tags)
    out["full_text"]["matched"] = client.count_runs(query=QUERY)

    def aggregate() -> Any:
        return client.aggregate_runs(group_by=GROUP_BY, metrics=AGGREGATES)

    out["aggregate"], rows = timed(aggregate, max(3, reps // 2), warmup=1)
    assert [r["params.optimizer"] for r in rows] == sorted(OPTIMIZERS), rows
    assert sum(r["runs"] for r in rows) == total and sum(r["val/acc.count"] for r in rows) == total
    out["aggregate"]["rows"] = rows

    expected = client.count_runs(filter_string=PAGE_FILTER)
    for name, order_by in (("walk", None), ("walk_by_metric", ORDER)):
        seconds, pages = [], 0
        for _ in range(walks):
            ids: list[str] = []
            token, pages, t0 = None, 0, time.perf_counter()
            while True:
                page = client.search_runs(
                    filter_string=PAGE_FILTER, order_by=order_by, max_results=PAGE, page_token=token
                )
                ids += [r.info.run_id for r in page]
                pages += 1
                token = page.token
                if token is None:
                    break
            seconds.append(time.perf_counter() - t0)
            assert len(ids) == len(set(ids)) == expected, (len(ids), len(set(ids)), expected)
        out[name] = {
            "seconds": statistics.median(seconds),
            "all_s": seconds,
            "pages": pages,
            "runs": expected,
            "no_duplicates_and_count_matches": True,  # asserted above
        }
    return out


def ours_compare(home: str, runs: int, reps: int) -> dict:
    client = _client(home)
    experiment_id = client.get_or_create_experiment("search-bench").experiment_id
    seed_s, _ = _seed_ours(client, experiment_id, runs)

    def search() -> Any:
        return client.search_runs(
            experiment_ids=[experiment_id], filter_string=FILTER, order_by=ORDER, max_results=TOP
        )

    stats, page = timed(search, reps)
    return {**stats, "seed_s": seed_s, "top": [r.info.run_name for r in page]}


def _mlflow_rows(runs: list[dict], experiment_id: int, root: str, user: str) -> dict[str, list]:
    """Rows for MLflow's tables, as its ``create_run`` + ``log_batch`` would write them."""
    out: dict[str, list] = {"runs": [], "params": [], "tags": [], "metrics": [], "latest": []}
    for spec in runs:
        run_id = uuid.uuid4().hex
        start = spec["start_time"]
        out["runs"].append(
            {
                "run_uuid": run_id,
                "name": spec["run_name"],
                "source_type": "LOCAL",
                "source_name": "",
                "entry_point_name": "",
                "user_id": user,
                "status": spec["status"],
                "start_time": start,
                "end_time": spec["end_time"],
                "deleted_time": None,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": f"{root}/{run_id}/artifacts",
                "experiment_id": experiment_id,
            }
        )
        out["params"] += [
            {"key": k, "value": v, "run_uuid": run_id} for k, v in spec["params"].items()
        ]
        tags = {**spec["tags"], "mlflow.runName": spec["run_name"], "mlflow.user": user}
        out["tags"] += [{"key": k, "value": v, "run_uuid": run_id} for k, v in tags.items()]
        for key, history in spec["metrics"].items():
            points = [
                {"key": key, "value": value, "timestamp": start, "step": step, "is_nan": False}
                for step, value in history
            ]
            out["metrics"] += [{**p, "run_uuid": run_id} for p in points]
            out["latest"].append({**points[-1], "run_uuid": run_id})
    return out


def mlflow_compare(home: str, runs: int, reps: int) -> dict:
    """MLflow's SQLite store seeded with the same runs through its ORM tables, then searched
    through `MlflowClient`."""
    os.chdir(home)
    from mlflow import MlflowClient
    from mlflow.store.tracking.dbmodels import models as m

    _mlflow_quiet()

    uri = f"sqlite:///{home}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("search-bench", artifact_location=f"{home}/mlruns")
    store = client._tracking_client.store
    t0 = time.perf_counter()
    for start in range(0, runs, CHUNK):
        rows = _mlflow_rows(
            make_runs(start, min(runs, start + CHUNK)), int(experiment_id), f"{home}/mlruns", "u"
        )
        with store.engine.begin() as conn:
            conn.execute(m.SqlRun.__table__.insert(), rows["runs"])
            conn.execute(m.SqlParam.__table__.insert(), rows["params"])
            conn.execute(m.SqlTag.__table__.insert(), rows["tags"])
            conn.execute(m.SqlMetric.__table__.insert(), rows["metrics"])
            conn.execute(m.SqlLatestMetric.__table__.insert(), rows["latest"])
    seed_s = time.perf_counter() - t0

    def search() -> Any:
        return client.search_runs(
            experiment_ids=[experiment_id], filter_string=FILTER, order_by=ORDER, max_results=TOP
        )

    stats, page = timed(search, reps)
    values = [r.data.metrics["val/acc"] for r in page]
    assert len(page) == TOP and values == sorted(values, reverse=True), values
    return {**stats, "seed_s": seed_s, "top": [r.info.run_name for r in page]}


def mlflow_api_seed(home: str, runs: int) -> dict:
    """MLflow's public API on SQLite: create_run + log_batch + set_terminated per run."""
    os.chdir(home)
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    _mlflow_quiet()

    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    experiment_id = client.create_experiment("seed", artifact_location=f"{home}/mlruns")
    specs = make_runs(0, runs)
    t0 = time.perf_counter()
    for spec in specs:
        run = client.create_run(
            experiment_id, start_time=spec["start_time"], run_name=spec["run_name"]
        )
        metrics = [
            Metric(k, v, spec["start_time"], s) for k, h in spec["metrics"].items() for s, v in h
        ]
        client.log_batch(
            run.info.run_id,
            metrics=metrics,
            params=[Param(k, v) for k, v in spec["params"].items()],
            tags=[RunTag(k, v) for k, v in spec["tags"].items()],
        )
        client.set_terminated(run.info.run_id, spec["status"], spec["end_time"])
    seconds = time.perf_counter() - t0
    return {"runs": runs, "seconds": seconds, "runs_per_s": runs / seconds}


# -- driver ------------------------------------------------------------------------------------


def run_all(size: dict) -> dict:
    results: dict[str, Any] = {}
    home = tempfile.mkdtemp(prefix="bench-search-")
    try:
        print(f"... ours_seed ({size['runs']:,} runs)", flush=True)
        results["ours_seed"] = isolated(ours_seed, size["runs"], home=home)
        os.sync()
        print("... ours_queries", flush=True)
        results["ours_queries"] = isolated(ours_queries, size["reps"], size["walks"], home=home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        os.sync()
    steps: list[tuple[str, Callable[..., dict], tuple]] = [
        ("ours_compare", ours_compare, (size["compare_runs"], size["reps"])),
        ("mlflow_compare", mlflow_compare, (size["compare_runs"], size["reps"])),
        ("mlflow_api_seed", mlflow_api_seed, (size["mlflow_api_runs"],)),
    ]
    for name, fn, args in steps:
        print(f"... {name}", flush=True)
        results[name] = isolated(fn, *args)
    return results


# -- report ------------------------------------------------------------------------------------


def build_rows(r: dict, size: dict) -> list[list[str]]:
    """Table rows: workload, figure, value, target, whether the target is met."""
    rows: list[list[str]] = []

    def add(w: str, figure: str, value: str, target: str = "", ok: bool | None = None) -> None:
        rows.append([w, figure, value, target, "" if ok is None else "yes" if ok else "**NO**"])

    def ms(stats: dict) -> str:
        p50, p90, cpu = stats["p50_ms"], stats["p90_ms"], stats["cpu_p50_ms"]
        return f"{p50:.1f} ms (p90 {p90:.1f}; CPU {cpu:.1f})"

    n, seed = size["runs"], r["ours_seed"]
    w = f"1. Seed {n:,} runs x 10 params x 10 metrics x {STEPS} steps x 5 tags"
    limit = 60 * n / 100_000
    s = seed["seconds"]
    value = f"{s:.1f} s (CPU {seed['cpu_seconds']:.1f} s)"
    add(w, "prefect-mlops `create_runs_bulk`", value, f"≤ {limit:g} s", s <= limit)
    add(w, "runs/s; rows written; SQLite size", f"{seed['runs_per_s']:,.0f} runs/s; "
        f"{seed['rows']:,} rows; {seed['db_mb']:,.0f} MB")  # fmt: skip
    api = r["mlflow_api_seed"]
    x = seed["runs_per_s"] / api["runs_per_s"]
    add(w, f"MLflow public API, SQLite ({api['runs']} runs; ratio)",
        f"{api['runs_per_s']:,.1f} runs/s ({x:,.0f}x); {n:,} runs ≈ "
        f"{n / api['runs_per_s'] / 60:,.0f} min")  # fmt: skip

    q = r["ours_queries"]
    w = f"2. Filter + order + top {TOP}, {q['runs']:,} runs"
    p50 = q["search"]["p50_ms"]
    add(w, f"`search_runs` ({q['count']['matched']:,} match)", ms(q["search"]), "p50 ≤ 50 ms",
        p50 <= 50)  # fmt: skip

    w = f"3. Count, full-text, aggregate, {q['runs']:,} runs"
    p50 = q["count"]["p50_ms"]
    add(w, "`count_runs`, same filter", ms(q["count"]), "p50 ≤ 100 ms", p50 <= 100)
    p50 = q["full_text"]["p50_ms"]
    add(w, f"`search_runs(query={QUERY!r})`, top {TOP} ({q['full_text']['matched']:,} match)",
        ms(q["full_text"]), "p50 ≤ 100 ms", p50 <= 100)  # fmt: skip
    p50 = q["aggregate"]["p50_ms"]
    add(w, "`aggregate_runs` by optimizer: val/acc mean, max, count", ms(q["aggregate"]),
        "p50 ≤ 500 ms", p50 <= 500)  # fmt: skip

    walk = q["walk"]
    w = f"4. Walk all pages of {walk['runs']:,} runs, {PAGE} per page"
    limit = 2 * walk["runs"] / 10_000
    s = walk["seconds"]
    add(w, f"default order, {walk['pages']} pages", f"{s:.2f} s", f"≤ {limit:g} s", s <= limit)
    add(w, "no duplicates; total equals `count_runs`",
        "yes" if walk["no_duplicates_and_count_matches"] else "no")  # fmt: skip
    walk = q["walk_by_metric"]
    add(w, "ordered by val/acc DESC", f"{walk['seconds']:.2f} s")

    ours, peer = r["ours_compare"], r["mlflow_compare"]
    w = f"5. Same search vs MLflow, {size['compare_runs']:,} runs"
    add(w, "MLflow `MlflowClient.search_runs`, SQLite", ms(peer))
    add(w, "prefect-mlops `search_runs`", ms(ours))
    x = peer["p50_ms"] / ours["p50_ms"]
    if size["compare_runs"] >= 10_000:
        add(w, "ratio of p50s", f"{x:,.1f}x", "≥ 20x", x >= 20)
    else:  # the target is for 10,000 runs
        add(w, "ratio of p50s", f"{x:,.1f}x", "(≥ 20x at 10,000 runs)")
    add(w, "ratio of CPU p50s", f"{peer['cpu_p50_ms'] / ours['cpu_p50_ms']:,.1f}x")
    same = ours["top"] == peer["top"]
    add(w, f"same top {TOP} run names, same order", "yes" if same else "**no**")
    return rows


NOTES = f"""\
Notes:

- Targets are for a 2-core machine; in `--quick` mode the seeding and paging targets scale
  with the number of runs, latency targets do not.
- Runs are deterministic (run `i` is built from `random.Random(i)`): params `optimizer`
  (adam/sgd/rmsprop), `lr` (0.001..0.1, log-uniform), `model` (resnet18/resnet50/vit),
  `batch_size`, `epochs`, `weight_decay`, `dropout`, `scheduler`, `warmup_steps`, `seed`
  (run number mod 10); tags `team`, `stage`, `dataset`, `arch` (resnet/vit) and `note` (3-6
  words, e.g. "augment", "mixup"); names like `resnet50-augment-123`; 10 metrics (`val/acc`,
  `val/loss`, `train/loss`, ...) of {STEPS} random points; start times spread over 90 days.
- 1: time spent inside `create_runs_bulk` (chunks of {CHUNK:,} runs; building them is not
  timed). Rows: runs, params, tags, metric points and latest-metric rows. The MLflow line is
  `create_run` + `log_batch` (params, tags, 30 points) + `set_terminated` per run, extrapolated.
- 2-4 run in a fresh interpreter on the store that step 1 filled. Each figure is the p50 (p90)
  of repeated calls after warm-up calls; CPU is the p50 of the process's CPU time per call,
  steadier than wall time when the machine is shared. Filter: ``{FILTER}``, order
  ``{ORDER[0]}``. Full text: run name and tag values (SQLite FTS5; "resnet" comes from
  the `arch` tag).
- 4: filter `{PAGE_FILTER}`, following `.token` until it is None; the run ids of all pages are
  unique and as many as `count_runs` says.
- 5: each engine on its own fresh store holding the same runs, searched with the same filter,
  order and `max_results` (MLflow accepts the backticked `val/acc`). MLflow's store is seeded
  through its SQLAlchemy ORM tables (`SqlRun`, `SqlParam`, `SqlTag` with its `mlflow.runName`
  and `mlflow.user` tags, `SqlMetric`, `SqlLatestMetric`, bulk inserts in one transaction per
  {CHUNK:,} runs), since its public API seeds at the rate shown in 1.
"""


def markdown(rows: list[list[str]], info: dict, mode: str, seconds: float) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    head = (
        f"{info['date']}, {mode} run ({seconds:.0f} s) on {info['cpus']} CPUs, "
        f"{info['platform']}, Python {info['python']}, SQLite {info['sqlite']}; {versions}. "
        "Every workload ran in its own subprocess with a fresh temporary home. Load average "
        f"at the start {info['load_average_at_start']}, at the end "
        f"{info['load_average_at_end']}."
    )
    table = ["| Workload | Figure | Value | Target | Met |", "|---|---|---|---|---|"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(["# Search benchmark: prefect-mlops", "", head, "", *table, "", NOTES])


def main() -> None:
    import sqlite3
    from importlib.metadata import version

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    mode = "quick" if parser.parse_args().quick else "full"
    size = SIZES[mode]
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    results = run_all(size)
    seconds = time.perf_counter() - started
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_at_start": load_at_start,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "versions": {p: version(p) for p in ("prefect-mlops", "mlflow-skinny", "sqlalchemy")},
    }
    rows = build_rows(results, size)
    text = markdown(rows, info, mode, seconds)
    print("\n" + text)
    stem = "search" if mode == "full" else "search-quick"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(text, encoding="utf-8")
    raw = {"mode": mode, "seconds": seconds, "sizes": size, "machine": info, "results": results}
    (RESULTS / f"{stem}.json").write_text(json.dumps({**raw, "table": rows}, indent=2))
    print(f"Wrote {RESULTS / stem}.md and {RESULTS / stem}.json")


if __name__ == "__main__":
    main()
