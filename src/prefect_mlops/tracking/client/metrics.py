"""Params, tags, metrics (buffered or in a batch) and histograms of a run."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from prefect_mlops.core.errors import InvalidInput, NotFound
from prefect_mlops.core.ids import now_ms
from prefect_mlops.tracking import validation as v
from prefect_mlops.tracking.client.base import ClientBase, clean_tag, metric_row
from prefect_mlops.tracking.entities import (
    Histogram,
    Metric,
    MetricHistory,
    MetricSummary,
    Param,
    RunTag,
)
from prefect_mlops.tracking.store.base import AtomicWrites


class MetricsClient(ClientBase):
    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, params=[Param(key, value)])

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, tags=[RunTag(key, value)])

    def delete_tag(self, run_id: str, key: str) -> None:
        self.require_writable(run_id, tags_only=True)
        if not self.store.delete_tag(run_id, key):
            raise NotFound(f"Run {run_id} has no tag {key!r}.")

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
    ) -> None:
        """Buffer one point; it is persisted within ``flush_interval`` seconds."""
        if run_id not in self._writable or self.recheck_writes:
            self.require_writable(run_id)
        key = v.validate_key(key)
        ts = now_ms() if timestamp is None else int(timestamp)
        self._writer.append(metric_row(run_id, key, value, ts, step))

    def log_batch(
        self,
        run_id: str,
        metrics: Iterable[Metric] = (),
        params: Iterable[Param] = (),
        tags: Iterable[RunTag] = (),
        *,
        allow_finished: bool = False,
    ) -> None:
        """Write metrics, params and tags at once, synchronously (to a finished run too with
        ``allow_finished``, as MLflow's REST API allows)."""
        metrics, params = list(metrics), list(params)
        self.require_writable(
            run_id, tags_only=not metrics and not params, allow_finished=allow_finished
        )
        now = now_ms()
        rows = [
            metric_row(
                run_id,
                v.validate_key(m.key),
                m.value,
                now if m.timestamp is None else int(m.timestamp),
                m.step,
            )
            for m in metrics
        ]
        clean_params = [
            Param(v.validate_key(p.key, "param"), v.validate_param_value(p.key, p.value))
            for p in params
        ]
        seen: dict[str, str] = {}
        for p in clean_params:
            if seen.setdefault(p.key, p.value) != p.value:
                raise InvalidInput(
                    f"Param {p.key!r} appears twice in one batch with values "
                    f"{seen[p.key]!r} and {p.value!r}."
                )
        clean = [clean_tag(t.key, t.value) for t in tags]
        if rows:
            self.flush()  # buffered points first: a batch lands after what came before it

        def write() -> None:
            self.store.log_params(run_id, clean_params)
            self.store.set_tags(run_id, clean)
            if rows:
                self.store.log_metric_rows(rows)

        if isinstance(self.store, AtomicWrites):
            self.store.atomically(write)  # all of the batch, or none of it
        else:
            write()

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        """Every point of ``key``, ordered by step then timestamp."""
        self.flush()
        self.store.get_run_info(run_id)
        return self.store.get_metric_history(run_id, key)

    def get_metric_histories(self, run_id: str, keys: Sequence[str]) -> dict[str, list[Metric]]:
        """The histories of several metrics of one run (one query), by key."""
        self.flush()
        return self.store.get_metric_histories(run_id, keys)

    def get_metric_summaries(self, run_id: str) -> list[MetricSummary]:
        """Per metric: the last value, min, max and the number of points."""
        self.flush()
        return self.store.get_metric_summaries(run_id)

    # -- histograms -------------------------------------------------------------------------

    def log_histogram(
        self,
        run_id: str,
        key: str,
        values: Any,
        step: int | None = None,
        bins: int | Sequence[float] = 30,
        timestamp: int | None = None,
    ) -> Histogram:
        """Store the bucket counts of ``values`` (not the values themselves)."""
        import numpy as np

        self.require_writable(run_id)
        key = v.validate_key(key, "histogram")
        try:
            data = np.asarray(values, dtype=float).ravel()
        except (TypeError, ValueError):
            raise InvalidInput(
                f"Histogram {key!r} needs numeric values; got {type(values).__name__}."
            ) from None
        data = data[np.isfinite(data)]
        if data.size == 0:
            raise InvalidInput(f"Histogram {key!r} got no finite values to count.")
        counts, edges = np.histogram(data, bins=bins)
        hist = Histogram(
            key=key,
            step=0 if step is None else v.metric_step(key, step),
            timestamp=now_ms() if timestamp is None else int(timestamp),
            edges=[float(e) for e in edges],
            counts=[int(c) for c in counts],
        )
        self.store.log_histogram(run_id, hist)
        return hist

    def get_histograms(self, run_id: str, key: str) -> list[Histogram]:
        return self.store.get_histograms(run_id, key)

    def list_histogram_keys(self, run_id: str) -> list[str]:
        """The keys the run has histograms for, sorted."""
        return self.store.list_histogram_keys(run_id)
