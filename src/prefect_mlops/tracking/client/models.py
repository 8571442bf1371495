"""Logged models (MLflow 3's ``LoggedModel``): create, read, finish, search, tag, and the
models a run produced. The model's files live in artifact storage under its own folder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prefect_mlops.core.errors import InvalidInput, NotFound
from prefect_mlops.tracking import validation as v
from prefect_mlops.tracking.client.base import ClientBase, clean_tags
from prefect_mlops.tracking.entities import LoggedModel, LoggedModelStatus, ModelOutput, PagedList
from prefect_mlops.tracking.store import LoggedModelStore

MAX_MODEL_RESULTS = 1000


def _status(status: LoggedModelStatus | str) -> LoggedModelStatus:
    try:
        return LoggedModelStatus(str(status).upper().removeprefix("LOGGED_MODEL_"))
    except ValueError:
        raise InvalidInput(
            f"Logged model status {status!r} is not one of {[s.value for s in LoggedModelStatus]}."
        ) from None


def _params(params: Mapping[str, Any] | None) -> dict[str, str]:
    return {
        v.validate_key(k, "param"): v.validate_param_value(k, val)
        for k, val in (params or {}).items()
    }


class ModelsClient(ClientBase):
    def _models(self) -> LoggedModelStore:
        if not isinstance(self.store, LoggedModelStore):
            raise InvalidInput(
                f"The store behind this client ({type(self.store).__name__}) keeps no logged "
                "models."
            )
        return self.store

    def create_logged_model(
        self,
        experiment_id: str,
        name: str,
        *,
        source_run_id: str | None = None,
        model_type: str = "",
        tags: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> LoggedModel:
        """A new PENDING model in the experiment, its files under the experiment's artifact
        location; ``source_run_id`` must be a run of that experiment."""
        experiment = self.store.get_experiment(experiment_id)
        if experiment.lifecycle_stage != "active":
            raise InvalidInput(f"Experiment {experiment.name!r} is deleted; restore it first.")
        v.validate_name(name, "Logged model", v.MAX_RUN_NAME_LENGTH)
        if source_run_id is not None:
            run = self.store.get_run_info(source_run_id)
            if run.experiment_id != experiment_id:
                raise InvalidInput(
                    f"Run {source_run_id} is in experiment {run.experiment_id}, not "
                    f"{experiment_id}; a model is logged in its run's experiment."
                )
        return self._models().create_logged_model(
            experiment_id,
            name,
            experiment.artifact_location,
            source_run_id=source_run_id,
            model_type=model_type,
            tags=clean_tags(tags),
            params=_params(params),
        )

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        return self._models().get_logged_model(model_id, allow_deleted)

    def finalize_logged_model(
        self, model_id: str, status: LoggedModelStatus | str, message: str = ""
    ) -> LoggedModel:
        """Record that the model's upload finished (READY) or failed (UPLOAD_FAILED)."""
        return self._models().set_logged_model_status(model_id, _status(status), message)

    def delete_logged_model(self, model_id: str) -> None:
        self._models().delete_logged_model(model_id)

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        max_results: int = 100,
        order_by: Sequence[tuple[str, bool]] = (),
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        """Models of the experiments matching ``filter_string`` (``name = 'model' AND
        tags.stage = 'prod'``), newest first unless ``order_by`` says otherwise."""
        if not experiment_ids:
            raise InvalidInput("search_logged_models needs at least one experiment id.")
        if not isinstance(max_results, int) or not 0 < max_results <= MAX_MODEL_RESULTS:
            raise InvalidInput(f"max_results={max_results} is out of range 1..{MAX_MODEL_RESULTS}.")
        models, token = self._models().search_logged_models(
            experiment_ids, filter_string, max_results, order_by, page_token
        )
        return PagedList(models, token)

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, Any]) -> LoggedModel:
        self._models().set_logged_model_tags(model_id, clean_tags(tags))
        return self.get_logged_model(model_id)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        if not self._models().delete_logged_model_tag(model_id, key):
            raise NotFound(f"Logged model {model_id} has no tag {key!r}.")

    def log_logged_model_params(self, model_id: str, params: Mapping[str, Any]) -> None:
        self._models().log_logged_model_params(model_id, _params(params))

    def log_model_outputs(self, run_id: str, outputs: Sequence[ModelOutput]) -> None:
        """Record models the run produced; each must exist."""
        self.store.get_run_info(run_id)
        for output in outputs:
            self.get_logged_model(output.model_id)
        self._models().log_model_outputs(run_id, outputs)

    def get_model_outputs(self, run_id: str) -> list[ModelOutput]:
        return self._models().get_model_outputs(run_id)

    def get_model_outputs_many(self, run_ids: Sequence[str]) -> dict[str, list[ModelOutput]]:
        return self._models().get_model_outputs_many(run_ids)
