"""Experiments: create, look up, find or create by name, search."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect_mlops.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from prefect_mlops.core.storage import artifact_root_uri
from prefect_mlops.tracking import validation as v
from prefect_mlops.tracking.client.base import ClientBase, as_view, clean_tags
from prefect_mlops.tracking.entities import Experiment, ViewType
from prefect_mlops.tracking.store import ExperimentEditStore

_CREATE_ATTEMPTS = 3


class ExperimentsClient(ClientBase):
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        v.validate_name(name, "Experiment", v.MAX_EXPERIMENT_NAME_LENGTH)
        tags = clean_tags(tags)
        root = artifact_root_uri(artifact_location) if artifact_location else self.artifact_root
        return self.store.create_experiment(name, root, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.store.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.store.get_experiment_by_name(name)

    def get_or_create_experiment(self, name: str) -> Experiment:
        """The experiment called ``name``, created if missing (safe under concurrent callers:
        when another caller creates it first, theirs is returned)."""
        found = self._experiments.get(name) or self.store.get_experiment_by_name(name)
        attempts = 0
        while found is None:
            attempts += 1
            try:
                found = self.store.get_experiment(self.create_experiment(name))
            except AlreadyExists:
                # Taken by another caller; gone again only if it was deleted in between.
                found = self.store.get_experiment_by_name(name)
                if found is None and attempts >= _CREATE_ATTEMPTS:
                    raise Conflict(
                        f"Experiment {name!r} was created and removed by other callers "
                        f"{attempts} times while this one tried to create it; retry later."
                    ) from None
        if found.lifecycle_stage == "active":  # cached for run creation in this process
            self._experiments[name] = self._experiments[found.experiment_id] = found
        return found

    def search_experiments(
        self,
        view_type: ViewType | str = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
    ) -> list[Experiment]:
        """Experiments, most recently updated first, optionally filtered by name and tags:
        ``"name LIKE 'vision-%' AND tags.team = 'cv'"``."""
        return self.store.search_experiments(as_view(view_type), max_results, filter_string)

    # -- edits after creation -----------------------------------------------------------------

    def _edits(self) -> ExperimentEditStore:
        if not isinstance(self.store, ExperimentEditStore):
            raise InvalidInput(
                f"The store behind this client ({type(self.store).__name__}) cannot rename, "
                "delete or tag experiments."
            )
        return self.store

    def _forget_experiment(self, experiment_id: str) -> None:
        for key in [k for k, e in self._experiments.items() if e.experiment_id == experiment_id]:
            del self._experiments[key]

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        v.validate_name(new_name, "Experiment", v.MAX_EXPERIMENT_NAME_LENGTH)
        self._edits().rename_experiment(experiment_id, new_name)
        self._forget_experiment(experiment_id)

    def delete_experiment(self, experiment_id: str) -> None:
        """Mark the experiment deleted (its runs stay as they are; restore it to use it)."""
        self._edits().set_experiment_lifecycle(experiment_id, "deleted")
        self._forget_experiment(experiment_id)

    def restore_experiment(self, experiment_id: str) -> None:
        self._edits().set_experiment_lifecycle(experiment_id, "active")

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        ((key, text),) = clean_tags({key: value}).items()
        self._edits().set_experiment_tag(experiment_id, key, text)
        self._forget_experiment(experiment_id)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        if not self._edits().delete_experiment_tag(experiment_id, key):
            raise NotFound(f"Experiment {experiment_id} has no tag {key!r}.")
        self._forget_experiment(experiment_id)
