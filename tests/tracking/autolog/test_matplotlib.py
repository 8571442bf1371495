"""matplotlib autolog: figures saved or shown during a run become PNG artifacts."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

import prefect_mlops as mlops  # noqa: E402
from prefect_mlops.tracking.autolog import AutologConfig, installed  # noqa: E402
from prefect_mlops.tracking.autolog import matplotlib as mpl_autolog  # noqa: E402

FRAMEWORKS = ["matplotlib"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def autolog(mlops_home: Path) -> Iterator[None]:
    plt.close("all")
    assert mlops.autolog(frameworks=FRAMEWORKS) == ["matplotlib"]
    yield
    mlops.autolog(disable=True, frameworks=FRAMEWORKS)
    plt.close("all")


def _show() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Agg: "FigureCanvasAgg is non-interactive"
        plt.show()


def _artifacts(run_id: str) -> dict[str, Any]:
    return {f.path: f for f in mlops.get_client().list_artifacts(run_id, "figures")}


def _png_size(run_id: str, path: str) -> tuple[int, int]:
    with mlops.get_client().open_artifact(run_id, path) as fh:
        data = fh.read()
    assert data[:8] == PNG
    return Image.open(io.BytesIO(data)).size


def test_savefig_and_show_are_recorded(autolog: None, tmp_path: Path) -> None:
    with mlops.start_run() as run:
        fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
        ax.plot([1, 2, 3])
        fig.savefig(tmp_path / "loss curve.pdf")  # any format: the artifact is a PNG
        plt.figure(figsize=(2, 2), dpi=50)
        plt.plot([3, 2, 1])
        plt.savefig(str(tmp_path / "acc.png"))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")  # no file name: not recorded
        _show()
        _show()  # the same figures again: their images are replaced, not duplicated
        fig3 = plt.figure(figsize=(1, 1), dpi=50)
        fig3.gca().plot([0, 1])
        _show()
    # The user's files and buffer were written as asked.
    assert (tmp_path / "loss curve.pdf").read_bytes()[:4] == b"%PDF"
    assert (tmp_path / "acc.png").read_bytes()[:8] == PNG
    assert buffer.getvalue()[:8] == PNG
    assert set(_artifacts(run.run_id)) == {
        "figures/loss curve.png",
        "figures/acc.png",
        "figures/figure_1.png",
        "figures/figure_2.png",
        "figures/figure_3.png",
    }
    dpi = plt.rcParams["savefig.dpi"]
    scale = 50 if dpi == "figure" else dpi
    assert _png_size(run.run_id, "figures/loss curve.png") == (4 * scale, 3 * scale)
    assert _png_size(run.run_id, "figures/acc.png") == (2 * scale, 2 * scale)
    assert _png_size(run.run_id, "figures/figure_1.png") == (4 * scale, 3 * scale)
    assert _png_size(run.run_id, "figures/figure_3.png") == (1 * scale, 1 * scale)


def test_no_active_run_records_nothing_and_starts_no_run(autolog: None, tmp_path: Path) -> None:
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    fig.savefig(tmp_path / "a.png")
    plt.savefig(tmp_path / "b.png")
    _show()
    assert (tmp_path / "a.png").exists() and (tmp_path / "b.png").exists()
    assert mlops.active_run() is None
    assert mlops.search_runs() == []


def test_user_errors_propagate(autolog: None, tmp_path: Path) -> None:
    with mlops.start_run() as run:
        fig, ax = plt.subplots()
        ax.plot([1, 2])
        with pytest.raises(ValueError, match="not supported"):
            fig.savefig(tmp_path / "x.unknownformat")
        fig.savefig(tmp_path / "ok.png")  # the failed call left nothing half-done behind
    assert set(_artifacts(run.run_id)) == {"figures/ok.png"}


def test_install_is_idempotent_and_uninstall_restores(mlops_home: Path, tmp_path: Path) -> None:
    originals = {
        (Figure, "savefig"): Figure.__dict__["savefig"],
        (plt, "savefig"): plt.savefig,
        (plt, "show"): plt.show,
    }
    mlops.autolog(frameworks=FRAMEWORKS)
    mlops.autolog(frameworks=FRAMEWORKS)
    mpl_autolog.install(AutologConfig())
    assert installed() == ["matplotlib"]
    for (owner, name), original in originals.items():
        patched = getattr(owner, name)
        assert patched is not original and patched.__prefect_mlops_original__ is original

    mlops.autolog(disable=True, frameworks=FRAMEWORKS)
    assert installed() == []
    for (owner, name), original in originals.items():
        assert getattr(owner, name) is original

    with mlops.start_run() as run:  # disabled: nothing recorded
        fig, ax = plt.subplots()
        ax.plot([1, 2])
        fig.savefig(tmp_path / "after.png")
        _show()
    plt.close("all")
    assert mlops.get_client().list_artifacts(run.run_id) == []
