"""Platform profiles map a platform's schema to canonical relations.

Canonical relations (each a SELECT whose columns carry exactly these labels):

| relation | columns |
| --- | --- |
| users | user_id, display_name, backend, status, is_admin, created_at, last_login |
| sessions | user_id, client, last_activity |
| shares | owner, type, password_protected |
| incoming_federated_shares | user_id |
| home_storage | user_id, used_bytes, files |
| quotas | user_id, quota_bytes (NULL = unlimited) |
| storages | kind (home, local, other), entries |
| storage_roots | used_bytes |

Timestamps are Unix seconds; `last_login` is NULL for accounts that never logged in. `type` is a
canonical share type: user, group, guest, link, email, federated, federated_group, team, room, deck.
A profile leaves out what its platform lacks; collectors that need it are then not applicable.
"""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import Connection, Select

from exporter.config import DatabaseConfig

RELATIONS = ("users", "sessions", "shares", "incoming_federated_shares", "home_storage",
             "quotas", "storages", "storage_roots")


class Profile:
    name: ClassVar[str]

    def __init__(self, database: DatabaseConfig) -> None:
        self.database = database
        self.prefix = database.table_prefix

    def provides(self) -> frozenset[str]:
        return frozenset(name for name in RELATIONS if hasattr(self, name))

    def relation(self, name: str, conn: Connection) -> Select:
        """Build a relation. It may run small lookups (a default quota, say) on `conn`."""
        return getattr(self, name)(conn)

    def version(self, conn: Connection) -> str:
        """The platform's version as it records it, '' if unknown."""
        return ""
