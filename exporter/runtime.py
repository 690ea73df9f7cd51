"""The exporter's own process and runtime metrics (process_*, python_*), from prometheus_client's
ProcessCollector, PlatformCollector and GCCollector.

/metrics is bytes rendered ahead of time and a scrape does no I/O, but process metrics read /proc.
So they are rendered on a timer, every REFRESH_SECONDS off the scrape path (the scheduler runs it),
and appended to the snapshot's own body there and whenever a collector run publishes a new
snapshot: what a scrape sends is at most REFRESH_SECONDS old, and rendering them costs about a
millisecond each time (a few with the gzip of the whole body). `collect` prints the snapshot alone:
a one-shot process has no runtime worth reporting.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass

from prometheus_client import (
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import CollectorRegistry

from exporter.snapshot import Bodies

REFRESH_SECONDS = 5.0
EOF = b"# EOF\n"


@dataclass(frozen=True)
class Rendered:
    text: bytes = b""
    openmetrics: bytes = EOF


class RuntimeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self._lock = threading.Lock()
        self.latest = Rendered()
        self.refresh()

    def refresh(self) -> Rendered:
        """Read /proc and the interpreter's counters now."""
        with self._lock:
            self.latest = Rendered(generate_latest(self.registry),
                                   generate_openmetrics(self.registry))
            return self.latest

    def appended(self, own: Bodies) -> Bodies:
        """The snapshot's body followed by the latest runtime metrics, in each format."""
        latest = self.latest
        text = own.text + latest.text
        openmetrics = own.openmetrics.removesuffix(EOF) + latest.openmetrics
        return Bodies(text=text, text_gzip=gzip.compress(text, 6), openmetrics=openmetrics,
                      openmetrics_gzip=gzip.compress(openmetrics, 6))
