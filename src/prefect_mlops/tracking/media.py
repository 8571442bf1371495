"""Turning tables, images and figures into artifact bytes. numpy, PIL, pandas and matplotlib
are used only when the caller passes their objects (or asks for a format that needs them)."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

from prefect_mlops.core.errors import InvalidInput

_IMAGE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".gif": "GIF",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot >= 0 else ""


def table_json(data: Any) -> str:
    """MLflow's table format: ``{"columns": [...], "data": [[row], ...]}``."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        columns = [str(c) for c in data.columns]
        rows = data.astype(object).where(data.notna(), None).values.tolist()
        return json.dumps({"columns": columns, "data": rows}, default=str)
    if not isinstance(data, dict) or not data:
        raise InvalidInput(
            "log_table needs a non-empty dict of equal-length columns or a pandas DataFrame; "
            f"got {type(data).__name__}."
        )
    columns = [str(c) for c in data]
    lengths = {c: len(list(col)) for c, col in zip(columns, data.values(), strict=True)}
    if len(set(lengths.values())) != 1:
        raise InvalidInput(f"log_table columns differ in length: {lengths}.")
    rows = [list(r) for r in zip(*(list(c) for c in data.values()), strict=True)]
    return json.dumps({"columns": columns, "data": rows}, default=str)


def image_bytes(image: Any, artifact_file: str) -> bytes:
    fmt = _IMAGE_FORMATS.get(_suffix(artifact_file))
    if fmt is None:
        raise InvalidInput(
            f"Image artifact {artifact_file!r} needs one of the suffixes {sorted(_IMAGE_FORMATS)}."
        )
    try:
        from PIL import Image
    except ImportError:
        raise InvalidInput("log_image needs Pillow: pip install 'prefect-mlops[images]'.") from None
    if not isinstance(image, Image.Image):
        import numpy as np

        array = np.asarray(image)
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
            raise InvalidInput(
                f"log_image needs an array shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); "
                f"got {array.shape}."
            )
        if array.dtype.kind == "f":
            if array.size and (array.min() < 0 or array.max() > 1):
                raise InvalidInput(
                    "log_image float arrays must hold values in [0, 1]; scale them or pass uint8."
                )
            array = (array * 255).round().astype("uint8")
        elif array.dtype != np.uint8:
            if array.size and (array.min() < 0 or array.max() > 255):
                raise InvalidInput("log_image integer arrays must hold values in [0, 255].")
            array = array.astype("uint8")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        image = Image.fromarray(array)
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def figure_bytes(figure: Any, artifact_file: str) -> bytes:
    if not hasattr(figure, "savefig"):
        raise InvalidInput(f"log_figure needs a matplotlib Figure; got {type(figure).__name__}.")
    fmt = _suffix(artifact_file).lstrip(".") or "png"
    buf = io.BytesIO()
    try:
        figure.savefig(buf, format=fmt)
    except ValueError as exc:
        raise InvalidInput(f"Cannot save figure as {artifact_file!r}: {exc}") from None
    return buf.getvalue()
