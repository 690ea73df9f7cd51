"""Platform profiles map a platform's schema to the canonical relations of exporter.relations.

A profile leaves out what its platform lacks; collectors that need it are then not applicable.
"""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import Connection, Float, Label, SelectBase, cast, null

from exporter.config import DatabaseConfig
from exporter.relations import RELATIONS


def never_expires() -> Label[float]:
    """The sessions relation's expires_at for a platform whose sessions last until deleted."""
    return cast(null(), Float).label("expires_at")


class Profile:
    name: ClassVar[str]
    # Whether activity exactly one window ago still counts as active in that window.
    activity_window_inclusive: ClassVar[bool] = True
    # Whether the activity relation is the users relation's last_login (one row per user).
    activity_is_last_login: ClassVar[bool] = False
    # Whether table names carry database.table_prefix (ownCloud's and Nextcloud's dbtableprefix).
    uses_table_prefix: ClassVar[bool] = False

    def __init__(self, database: DatabaseConfig) -> None:
        self.database = database
        self.prefix = database.table_prefix

    def provides(self) -> frozenset[str]:
        return frozenset(name for name in RELATIONS if hasattr(self, name))

    def relation(self, name: str, conn: Connection) -> SelectBase:
        """Build a relation. It may run small lookups (a default quota, say) on `conn`."""
        return getattr(self, name)(conn)

    def version(self, conn: Connection) -> str:
        """The platform's version as it records it, '' if unknown."""
        return ""
