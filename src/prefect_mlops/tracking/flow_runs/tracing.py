"""Seeing Prefect's flow-run and task-run spans: our processor on OpenTelemetry's provider.

When nothing else traces the process, the provider installed here records spans (so our
processor sees them) without trace context: Prefect then has none to save on the flow run, which
would cost one more API call per flow run. A user who traces for real configures a provider
before Prefect starts, and our processor is added to it.
"""

from __future__ import annotations

import logging

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Decision, StaticSampler

logger = logging.getLogger("prefect_mlops.auto_track")


class NoTraceContext(IdGenerator):
    """Ids of an invalid span context: with a record-only sampler, spans are recorded
    (processors see them) but never propagated."""

    def generate_span_id(self) -> int:
        return 0

    def generate_trace_id(self) -> int:
        return 0


class ValidContextOnly(TextMapPropagator):
    """The global propagator, minus injecting the invalid contexts of our spans (a flow run
    that arrives with a trace id of its own gives them a valid trace and span id 0)."""

    def __init__(self, inner: TextMapPropagator) -> None:
        self._inner = inner

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        return self._inner.extract(carrier, context, getter)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        if trace.get_current_span(context).get_span_context().is_valid:
            self._inner.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return self._inner.fields


def add_span_processor(processor: SpanProcessor) -> bool:
    """Add ``processor`` to the process's tracer provider, installing a record-only provider
    without trace context when there is none; False if the provider takes no processors."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(
            TracerProvider(
                sampler=StaticSampler(Decision.RECORD_ONLY), id_generator=NoTraceContext()
            )
        )
        propagate.set_global_textmap(ValidContextOnly(propagate.get_global_textmap()))
        provider = trace.get_tracer_provider()
    if not hasattr(provider, "add_span_processor"):
        logger.warning("prefect-mlops: the OpenTelemetry tracer provider takes no processors")
        return False
    provider.add_span_processor(processor)
    return True
