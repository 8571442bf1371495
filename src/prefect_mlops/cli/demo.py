"""The demo job: logistic regression trained with numpy inside a tracked Prefect flow."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from prefect import flow, task
from prefect.runtime import flow_run as current_flow_run

import prefect_mlops as mlops
from prefect_mlops.cli.output import console, print_run


@task
def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two overlapping Gaussian blobs in 8 dimensions, split 80/20."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.2, size=(2, 8))
    y = rng.integers(0, 2, size=n)
    x = centers[y] + rng.normal(0, 1.5, size=(n, 8))
    cut = int(n * 0.8)
    mlops.log_param("data.features", x.shape[1])
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _loss_and_grad(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    p = 1 / (1 + np.exp(-(x @ w)))
    eps = 1e-12
    loss = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
    return float(loss), x.T @ (p - y) / len(y)


@task
def train_model(
    x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, lr: float, epochs: int, batch: int
) -> np.ndarray:
    rng = np.random.default_rng(0)
    xb = np.hstack([x, np.ones((len(x), 1))])
    xvb = np.hstack([xv, np.ones((len(xv), 1))])
    w = np.zeros(xb.shape[1])
    for epoch in range(epochs):
        order = rng.permutation(len(xb))
        for start in range(0, len(xb), batch):
            idx = order[start : start + batch]
            _, grad = _loss_and_grad(w, xb[idx], y[idx])
            w -= lr * grad
        train_loss, _ = _loss_and_grad(w, xb, y)
        val_loss, _ = _loss_and_grad(w, xvb, yv)
        val_acc = float(np.mean(((xvb @ w) > 0) == yv))
        mlops.log_metrics(
            {"train/loss": train_loss, "val/loss": val_loss, "val/acc": val_acc}, step=epoch
        )
        mlops.log_histogram("weights", w, step=epoch, bins=10)
    return w


@task
def evaluate(w: np.ndarray, xv: np.ndarray, yv: np.ndarray) -> dict[str, int]:
    pred = (np.hstack([xv, np.ones((len(xv), 1))]) @ w) > 0
    confusion = {
        "tp": int(np.sum(pred & (yv == 1))),
        "fp": int(np.sum(pred & (yv == 0))),
        "tn": int(np.sum(~pred & (yv == 0))),
        "fn": int(np.sum(~pred & (yv == 1))),
    }
    mlops.log_dict(confusion, "eval/confusion.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.npz"
        np.savez(path, w=w)
        mlops.log_artifact(path, "model")
    return confusion


@flow(name="mlops-demo", log_prints=True)
def demo_train(
    lr: float = 0.002, epochs: int = 20, batch_size: int = 64, n_samples: int = 4000, seed: int = 7
) -> str:
    """A small but real training job: every value logged here lands in the tracking store."""
    x, y, xv, yv = make_data(n_samples, seed)
    w = train_model(x, y, xv, yv, lr, epochs, batch_size)
    confusion = evaluate(w, xv, yv)
    print(f"validation confusion matrix: {json.dumps(confusion)}")
    return str(current_flow_run.id)


def run_demo(epochs: int = 20, lr: float = 0.002, batch_size: int = 64) -> None:
    console.print(
        "[bold]Running the demo flow[/bold] (Prefect starts its own server if none is set)…"
    )
    flow_run_id = demo_train(lr=lr, epochs=epochs, batch_size=batch_size)
    run = mlops.get_client().get_run_by_flow_run_id(flow_run_id)
    if run is None:
        raise mlops.NotFound(f"The demo's flow run {flow_run_id} has no tracked run.")
    run_id = run.info.run_id
    console.rule("What was tracked")
    print_run(mlops.get_client(), run_id)
    console.rule("Next")
    url = run.data.tags.get("prefect.url")
    ui = (
        f"- in the Prefect UI (Artifacts tab: summary and charts): {url}"
        if url
        else "- in the Prefect UI: this ran on a temporary Prefect server, gone now. Start one "
        "with `prefect server start`, `prefect config set "
        "PREFECT_API_URL=http://127.0.0.1:4200/api`, and run the demo again: each run then "
        "links to its flow run's page (Artifacts tab: summary and charts)."
    )
    for line in (
        f"- this run again: prefect-mlops runs show {run_id}",
        "- all runs: prefect-mlops runs list",
        f"- a metric's history: prefect-mlops runs history {run_id} val/acc",
        ui,
    ):
        console.print(line, soft_wrap=True, highlight=False)
