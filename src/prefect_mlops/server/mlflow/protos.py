"""Our entities as MLflow's protos spell them in JSON, and MLflow's ids and URIs as ours.

- Experiment ids: ours are 32-hex strings; MLflow's default experiment ``"0"`` (what the
  stock client uses when none is set) is our ``Default`` experiment, created on first use,
  and that experiment is ``"0"`` in every answer.
- Artifact locations under the server's artifact root are answered as
  ``mlflow-artifacts:/<path under the root>``, so remote clients upload through the proxy.
- Empty fields are left out, int64 fields are JSON numbers, as MLflow's server writes them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request

from prefect_mlops.tracking.client import DEFAULT_EXPERIMENT, TrackingClient
from prefect_mlops.tracking.entities import (
    DatasetInput,
    Experiment,
    LoggedModel,
    MetricSummary,
    ModelOutput,
    Run,
    RunInfo,
    ViewType,
)

DEFAULT_ID = "0"
PROXY_SCHEME = "mlflow-artifacts:"
VIEW_TYPES = {
    "ACTIVE_ONLY": ViewType.ACTIVE_ONLY,
    "DELETED_ONLY": ViewType.DELETED_ONLY,
    "ALL": ViewType.ALL,
}
MODEL_STATUS_PREFIX = "LOGGED_MODEL_"


class Translator:
    """Ids and URIs between MLflow's spelling and ours, for one server's store and root."""

    def __init__(self, client: TrackingClient) -> None:
        self.client = client
        self.root = client.artifact_root.rstrip("/")
        self._default_id: str | None = None
        self._missing_since = -1.0  # when Default was last found missing (monotonic seconds)
        self._lock = threading.Lock()

    # -- experiment ids ---------------------------------------------------------------------

    def default_id(self, create: bool) -> str | None:
        """Our id of the Default experiment (created when ``create``), cached once known."""
        if self._default_id is None:
            if not create and time.monotonic() - self._missing_since < 1.0:
                return None  # looked a moment ago: answering a page must not ask per run
            with self._lock:
                if create:
                    found: Experiment | None = self.client.get_or_create_experiment(
                        DEFAULT_EXPERIMENT
                    )
                else:
                    found = self.client.get_experiment_by_name(DEFAULT_EXPERIMENT)
                if found is not None:
                    self._default_id = found.experiment_id
                else:
                    self._missing_since = time.monotonic()
        return self._default_id

    def experiment_in(self, experiment_id: str) -> str:
        if experiment_id == DEFAULT_ID:
            return self.default_id(create=True) or DEFAULT_ID
        return experiment_id

    def experiment_out(self, experiment_id: str) -> str:
        return DEFAULT_ID if experiment_id == self.default_id(create=False) else experiment_id

    # -- artifact locations -----------------------------------------------------------------

    def uri_out(self, uri: str) -> str:
        if uri == self.root:
            return f"{PROXY_SCHEME}/"
        if uri.startswith(self.root + "/"):
            return f"{PROXY_SCHEME}/{uri[len(self.root) + 1 :]}"
        return uri

    # -- entities ---------------------------------------------------------------------------

    def experiment(self, e: Experiment) -> dict[str, Any]:
        return _dropped(
            {
                "experiment_id": self.experiment_out(e.experiment_id),
                "name": e.name,
                "artifact_location": self.uri_out(e.artifact_location),
                "lifecycle_stage": e.lifecycle_stage,
                "last_update_time": e.last_update_time,
                "creation_time": e.creation_time,
                "tags": pairs(e.tags),
            }
        )

    def run_info(self, info: RunInfo) -> dict[str, Any]:
        return _dropped(
            {
                "run_id": info.run_id,
                "run_uuid": info.run_id,
                "run_name": info.run_name,
                "experiment_id": self.experiment_out(info.experiment_id),
                "user_id": info.user_id,
                "status": info.status.value,
                "start_time": info.start_time,
                "end_time": info.end_time,
                "artifact_uri": self.uri_out(info.artifact_uri),
                "lifecycle_stage": info.lifecycle_stage,
            }
        )

    def run(
        self,
        run: Run,
        summaries: Sequence[MetricSummary] = (),
        inputs: Sequence[DatasetInput] = (),
        outputs: Sequence[ModelOutput] = (),
    ) -> dict[str, Any]:
        latest = {s.key: s for s in summaries}
        metrics = []
        for key, value in sorted(run.data.metrics.items()):
            s = latest.get(key)
            point = {"key": key, "value": value, "timestamp": s.timestamp if s else 0}
            metrics.append({**point, "step": s.step if s else 0})
        # MLflow's UI and older clients read the run's name from this tag; runs our own API
        # made carry the name only in the run's info, so it is added here.
        tags = {"mlflow.runName": run.info.run_name, **run.data.tags}
        data = _dropped({"metrics": metrics, "params": pairs(run.data.params), "tags": pairs(tags)})
        dataset_inputs = [
            _dropped(
                {
                    "tags": [{"key": "mlflow.data.context", "value": d.context}]
                    if d.context
                    else [],
                    "dataset": {"name": d.name, "digest": d.digest},
                }
            )
            for d in inputs
        ]
        answer: dict[str, Any] = {
            "info": self.run_info(run.info),
            "data": data,
            "inputs": _dropped({"dataset_inputs": dataset_inputs}),
        }
        if outputs:
            answer["outputs"] = {
                "model_outputs": [{"model_id": o.model_id, "step": o.step} for o in outputs]
            }
        return answer

    def logged_model(self, m: LoggedModel) -> dict[str, Any]:
        info = _dropped(
            {
                "model_id": m.model_id,
                "experiment_id": self.experiment_out(m.experiment_id),
                "name": m.name,
                "creation_timestamp_ms": m.creation_time,
                "last_updated_timestamp_ms": m.last_update_time,
                "artifact_uri": self.uri_out(m.artifact_location),
                "status": MODEL_STATUS_PREFIX + m.status.value,
                "model_type": m.model_type,
                "source_run_id": m.source_run_id,
                "status_message": m.status_message,
                "tags": pairs(m.tags),
            }
        )
        return {"info": info, "data": _dropped({"params": pairs(m.params)})}


def pairs(mapping: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


def _dropped(message: dict[str, Any]) -> dict[str, Any]:
    """The message without empty fields, as protobuf's JSON leaves them out."""
    return {k: v for k, v in message.items() if v is not None and v != "" and v != []}


def translator(request: Request) -> Translator:
    """The application's translator, made on first use from its client."""
    state = request.app.state
    found = getattr(state, "mlflow_translator", None)
    if found is None:
        found = state.mlflow_translator = Translator(state.client)
    return found
