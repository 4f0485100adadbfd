import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# flotilla.testkit.plugin: a missing program fails its test in one line, and no failure's
# traceback can end the session (its docstring tells the Python 3.11.7 crash it prevents).
pytest_plugins = [
    "flotilla.testkit.services",
    "flotilla.testkit.asyncio_debug",
    "flotilla.testkit.plugin",
]

_exporter = InMemorySpanExporter()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """This process's finished spans (an SDK provider installed once, on first use)."""
    # OpenTelemetry allows one global provider per process: every test shares this one.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    return _exporter
