"""Collectors: one module each, found through the `usage_exporter.collectors` entry-point group.

A third-party package adds a collector by subclassing collectors.base.Collector and declaring it in
its own pyproject.toml:

    [project.entry-points."usage_exporter.collectors"]
    tickets = "mypackage.tickets:TicketsCollector"
"""

from __future__ import annotations

from importlib.metadata import entry_points

from collectors.apps import AppsCollector
from collectors.base import Collector
from collectors.dau import DauCollector
from collectors.events import EventsCollector
from collectors.media import MediaCollector
from collectors.messages import MessagesCollector
from collectors.registrations import RegistrationsCollector
from collectors.retention import RetentionCollector
from collectors.rooms import RoomsCollector
from collectors.sessions import SessionsCollector
from collectors.shares import SharesCollector
from collectors.storage import StorageCollector
from collectors.users import UsersCollector

ENTRY_POINT_GROUP = "usage_exporter.collectors"
BUILT_IN: tuple[type[Collector], ...] = (UsersCollector, SessionsCollector, SharesCollector,
                                         StorageCollector, DauCollector, MediaCollector,
                                         RegistrationsCollector, RetentionCollector,
                                         RoomsCollector, MessagesCollector, EventsCollector,
                                         AppsCollector)


def available() -> dict[str, type[Collector]]:
    """Built-in collectors (also when running from a source tree) plus installed plug-ins."""
    found = {cls.name: cls for cls in BUILT_IN}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Collector)):
            raise TypeError(f"entry point {entry.name} = {entry.value} is not a Collector class")
        found[entry.name] = cls
    return found
