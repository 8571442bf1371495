"""PyTorch autolog: SummaryWriter calls and torch.save land in the run, TensorBoard still works."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import prefect_mlops as mlops  # noqa: E402
from prefect_mlops.tracking.autolog import AutologConfig, installed  # noqa: E402
from prefect_mlops.tracking.autolog import pytorch as torch_autolog  # noqa: E402

FRAMEWORKS = ["pytorch"]
METHODS = ("add_scalar", "add_scalars", "add_histogram", "add_image")


def _writer_classes() -> list[Any]:
    classes = []
    try:
        from torch.utils.tensorboard import SummaryWriter

        classes.append(pytest.param(SummaryWriter, id="torch.utils.tensorboard"))
    except ImportError:
        pass
    try:
        from tensorboardX import SummaryWriter as XSummaryWriter

        classes.append(pytest.param(XSummaryWriter, id="tensorboardX"))
    except ImportError:
        pass
    return classes


WRITERS = _writer_classes()


@pytest.fixture
def autolog(mlops_home: Path) -> Iterator[None]:
    assert mlops.autolog(frameworks=FRAMEWORKS) == ["pytorch"]
    yield
    mlops.autolog(disable=True, frameworks=FRAMEWORKS)


def _train(writer: Any, steps: int = 3) -> dict[str, Any]:
    """A tiny regression trained for a few steps, logged the TensorBoard way."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    losses = []
    for step in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        writer.add_scalar("train/loss", loss.item(), step)
        writer.add_scalar("acc@top:1", torch.tensor(0.5 + step / 10), global_step=step)
        writer.add_scalars("lr", {"base": 0.1, "head": 0.01 * (step + 1)}, step)
        writer.add_histogram("fc.weight", model.weight, step)  # requires_grad tensor
    writer.add_image("inputs", torch.rand(3, 8, 12), 2)  # CHW float in [0, 1]
    hwc = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    writer.add_image("raw/hwc", hwc, 1, dataformats="HWC")
    writer.flush()
    return {"losses": losses, "model": model, "hwc": hwc}


@pytest.mark.parametrize("writer_class", WRITERS)
def test_summary_writer_calls_are_tracked(autolog: None, writer_class: Any, tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    with mlops.start_run() as run:
        writer = writer_class(log_dir=str(logdir))
        out = _train(writer)
        writer.close()
    client = mlops.get_client()
    loss = client.get_metric_history(run.run_id, "train/loss")
    assert list(loss.steps) == [0, 1, 2]
    assert list(loss.values) == out["losses"]
    acc = client.get_metric_history(run.run_id, "acc_top_1")  # '@' and ':' are not key chars
    assert list(acc.steps) == [0, 1, 2]
    assert list(acc.values) == pytest.approx([0.5, 0.6, 0.7])
    head = client.get_metric_history(run.run_id, "lr/head")
    assert (list(head.steps), list(head.values)) == ([0, 1, 2], [0.01, 0.02, 0.03])
    assert list(client.get_metric_history(run.run_id, "lr/base").values) == [0.1] * 3

    histograms = client.get_histograms(run.run_id, "fc.weight")
    assert [h.step for h in histograms] == [0, 1, 2]
    assert all(sum(h.counts) == 8 for h in histograms)  # Linear(4, 2) has 8 weights
    weights = out["model"].weight.detach().numpy()
    assert histograms[-1].edges[0] == pytest.approx(float(weights.min()))
    assert histograms[-1].edges[-1] == pytest.approx(float(weights.max()))

    with client.open_artifact(run.run_id, "tensorboard/images/inputs/step_2.png") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with client.open_artifact(run.run_id, "tensorboard/images/inputs/step_2.png") as fh:
        image = Image.open(fh)
        assert (image.size, image.mode) == ((12, 8), "RGB")
    with client.open_artifact(run.run_id, "tensorboard/images/raw/hwc/step_1.png") as fh:
        assert np.array_equal(np.asarray(Image.open(fh)), out["hwc"])

    # TensorBoard itself still got everything.
    assert list(logdir.glob("events.out.tfevents.*"))


@pytest.mark.parametrize("writer_class", WRITERS[:1])
def test_tensorboard_event_file_still_holds_the_scalars(
    autolog: None, writer_class: Any, tmp_path: Path
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with mlops.start_run():
        writer = writer_class(log_dir=str(tmp_path))
        for step in range(3):
            writer.add_scalar("loss", 1.0 / (step + 1), step)
        writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("loss")] == [
        (0, 1.0),
        (1, 0.5),
        (2, 0.3333),
    ]


@pytest.mark.parametrize("writer_class", WRITERS[:1])
def test_writer_without_a_run_starts_one(autolog: None, writer_class: Any, tmp_path: Path) -> None:
    writer = writer_class(log_dir=str(tmp_path))
    writer.add_scalar("auto", 3.0, 7)
    writer.close()
    active = mlops.active_run()
    assert active is not None
    history = mlops.get_metric_history(active.run_id, "auto")
    assert (list(history.steps), list(history.values)) == ([7], [3.0])
    mlops.end_run()


def test_torch_save_uploads_checkpoint(autolog: None, tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 3)
    target = tmp_path / "model.pt"
    with mlops.start_run() as run:
        torch.save(model.state_dict(), target)
        torch.save({"epoch": 1}, f=str(tmp_path / "last.ckpt"))
    data = target.read_bytes()
    client = mlops.get_client()
    files = {f.path: f for f in client.list_artifacts(run.run_id, "checkpoints")}
    assert set(files) == {"checkpoints/model.pt", "checkpoints/last.ckpt"}
    assert files["checkpoints/model.pt"].file_size == len(data)
    assert files["checkpoints/model.pt"].sha256 == hashlib.sha256(data).hexdigest()
    with client.open_artifact(run.run_id, "checkpoints/model.pt") as fh:
        assert fh.read() == data
    tags = mlops.get_run(run.run_id).data.tags
    assert tags["checkpoint.model.pt.path"] == str(target.resolve())
    assert tags["checkpoint.model.pt.size"] == str(len(data))
    assert tags["checkpoint.model.pt.sha256"] == hashlib.sha256(data).hexdigest()
    assert tags["checkpoint.model.pt.uploaded"] == "true"
    # The user's file is the real checkpoint.
    state = torch.load(target)
    assert torch.equal(state["weight"], model.state_dict()["weight"])


def test_large_checkpoint_is_recorded_not_uploaded(mlops_home: Path, tmp_path: Path) -> None:
    mlops.autolog(frameworks=FRAMEWORKS, max_artifact_mb=0.0001)  # about 100 bytes
    try:
        target = tmp_path / "big.pt"
        with mlops.start_run() as run:
            torch.save(torch.zeros(1000), target)
        data = target.read_bytes()
        assert len(data) > 0.0001 * 1024 * 1024
        assert mlops.get_client().list_artifacts(run.run_id) == []
        tags = mlops.get_run(run.run_id).data.tags
        assert tags["checkpoint.big.pt.path"] == str(target.resolve())
        assert tags["checkpoint.big.pt.size"] == str(len(data))
        assert tags["checkpoint.big.pt.sha256"] == hashlib.sha256(data).hexdigest()
        assert tags["checkpoint.big.pt.uploaded"] == "false"
    finally:
        mlops.autolog(disable=True, frameworks=FRAMEWORKS)


def test_torch_save_to_buffer_or_outside_a_run_is_untouched(autolog: None, tmp_path: Path) -> None:
    torch.save({"x": 1}, tmp_path / "no-run.pt")  # no run: nothing recorded, none started
    assert mlops.active_run() is None
    assert mlops.search_runs() == []
    buffer = io.BytesIO()
    with mlops.start_run() as run:
        torch.save(torch.arange(4), buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer), torch.arange(4))
    assert mlops.get_client().list_artifacts(run.run_id) == []
    assert mlops.get_run(run.run_id).data.tags == {}


def test_user_errors_propagate_and_hook_failures_do_not(
    autolog: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with mlops.start_run() as run:
        with pytest.raises(RuntimeError):
            torch.save({"x": 1}, tmp_path / "missing-dir" / "model.pt")
        writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
        with pytest.raises(Exception):  # noqa: B017 - TensorBoard's own error for a bad image
            writer.add_image("bad", np.zeros((2, 2)), 0, dataformats="CHW")
        # Our hook fails (the run was deleted under it); the user's call still succeeds.
        mlops.get_client().delete_run(run.run_id)
        with caplog.at_level(logging.WARNING, logger="prefect_mlops.autolog"):
            writer.add_scalar("loss", 1.0, 0)
            writer.add_scalar("loss", 2.0, 1)
        writer.close()
        mlops.get_client().restore_run(run.run_id)
    failures = [r for r in caplog.records if "pytorch.add_scalar" in r.getMessage()]
    assert len(failures) == 1  # logged once
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert mlops.get_client().list_artifacts(run.run_id) == []


def test_install_is_idempotent_and_uninstall_restores(mlops_home: Path, tmp_path: Path) -> None:
    classes = [p.values[0] for p in WRITERS]
    originals = {(c, m): c.__dict__[m] for c in classes for m in METHODS}
    original_save = torch.save

    mlops.autolog(frameworks=FRAMEWORKS)
    mlops.autolog(frameworks=FRAMEWORKS)
    torch_autolog.install(AutologConfig())  # direct second install: still patched once
    assert installed() == ["pytorch"]
    for (cls, method), original in originals.items():
        patched = getattr(cls, method)
        assert patched is not original
        assert patched.__prefect_mlops_original__ is original
    assert torch.save.__prefect_mlops_original__ is original_save  # type: ignore[attr-defined]

    mlops.autolog(disable=True, frameworks=FRAMEWORKS)
    assert installed() == []
    for (cls, method), original in originals.items():
        assert getattr(cls, method) is original
        assert cls.__dict__[method] is original
    assert torch.save is original_save

    # Disabled: nothing is recorded any more.
    with mlops.start_run() as run:
        for cls in classes:
            writer = cls(log_dir=str(tmp_path / cls.__module__))
            writer.add_scalar("loss", 1.0, 0)
            writer.close()
        torch.save({"x": 1}, tmp_path / "after.pt")
    finished = mlops.get_run(run.run_id)
    assert finished.data.metrics == {} and finished.data.tags == {}
    assert mlops.get_client().list_artifacts(run.run_id) == []
