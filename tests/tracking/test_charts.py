"""The SVG charts and summaries shown on a flow run's Artifacts tab."""

from __future__ import annotations

import base64
import math
import xml.etree.ElementTree as ET

from prefect_mlops.tracking.charts import downsample, line_chart_svg, svg_data_uri
from prefect_mlops.tracking.flow_runs.summary import artifact_key


def test_downsample_keeps_extremes_and_bounds_size() -> None:
    xs = list(range(10_000))
    ys = [math.sin(i / 100) for i in xs]
    ys[1234] = 50.0  # a spike must survive
    dx, dy = downsample(xs, ys, limit=400)
    assert len(dx) <= 400
    assert 50.0 in dy and min(dy) == min(ys)
    assert dx == sorted(dx)
    assert downsample([1, 2], [3, 4]) == ([1, 2], [3, 4])


def test_chart_is_valid_svg_and_skips_non_finite_points() -> None:
    svg = line_chart_svg("val/<acc>", [0, 1, 2, 3], [0.1, float("nan"), 0.5, float("inf")])
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    (line,) = root.iter(f"{ns}polyline")
    assert len(line.attrib["points"].split()) == 2
    assert "val/<acc>" in "".join(root.itertext())
    uri = svg_data_uri(svg)
    assert base64.b64decode(uri.split(",", 1)[1]).decode() == svg


def test_chart_with_no_finite_values_says_so() -> None:
    assert "no finite values" in line_chart_svg("x", [0], [float("nan")])


def test_artifact_keys_follow_prefect_rules() -> None:
    assert artifact_key("mlops-summary", "My Exp_v2/\u00e9") == "mlops-summary-my-exp-v2"
    assert artifact_key("", "") == "mlops"
