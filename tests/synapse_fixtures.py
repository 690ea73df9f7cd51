"""The two real Synapse 1.163 homeservers the Synapse tests run on, each with its own answers:
tests/fixtures/synapse (Synapse on SQLite) and tests/fixtures/synapse_pg (Synapse on PostgreSQL
15, restored from its pg_dump by conftest's synapse_pg_url), and the databases each is read on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest

from exporter.config import DatabaseConfig
from exporter.platforms.synapse import (
    SYNAPSE_ON_POSTGRESQL,
    SYNAPSE_ON_SQLITE,
    SynapseEngine,
    synapse_engine,
)
from tests.conftest import SYNAPSE, SYNAPSE_PG, fixture_copy, read_json

MEDIA_STATISTICS_PATH = "/_synapse/admin/v1/statistics/users/media"


def canonical(value: Any) -> str:
    """JSON text that tells 1 from 1.0 and true from 1, which == would not."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True, eq=False)
class Homeserver:
    """One fixture: its folder and the engine its Synapse ran on."""

    name: str
    folder: Path
    engine: SynapseEngine

    def read(self, relative: str) -> Any:
        return read_json(self.folder / relative)

    def api(self, name: str) -> Any:
        """The body of one captured admin API answer."""
        return self.read(f"api/{name}.json")["body"]

    @cached_property
    def phone_home(self) -> dict[str, Any]:
        return self.read("phone_home_stats.json")

    @property
    def now_ms(self) -> int:
        """The instant Synapse computed its phone-home stats at; windows are measured from it."""
        return self.phone_home["now_ms"]

    @cached_property
    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """The rows of the tables the exporter reads, as dumped from the homeserver's database."""
        return self.read("db_tables.json")["rows"]

    @cached_property
    def media_captures(self) -> list[dict[str, Any]]:
        """Every captured call of the media statistics API (api_index.json)."""
        return [entry for entry in self.read("api_index.json")["entries"]
                if entry["path"] == MEDIA_STATISTICS_PATH]

    def comparable(self, body: dict[str, Any], order_by: str) -> str:
        """A media statistics answer as JSON text, which tells 1 from 1.0. On PostgreSQL, rows
        with equal sort keys come in no fixed order (docs/platforms/synapse.md, "On
        PostgreSQL"), so there the rows are compared as the sequence of their runs of equal
        `order_by`, each run in user id order; on SQLite that order is Synapse's own and the
        rows are compared as they come."""
        if self.engine is SYNAPSE_ON_SQLITE or "users" not in body:
            return canonical(body)
        return canonical({**body, "users": tie_runs(body["users"], order_by)})


def tie_runs(users: list[dict[str, Any]], order_by: str) -> list[list[dict[str, Any]]]:
    """The rows in runs of equal `order_by`, each run's rows in user id order."""
    return [sorted(run, key=lambda user: user["user_id"])
            for _, run in groupby(users, key=lambda user: user[order_by])]


SQLITE_HOMESERVER = Homeserver("synapse", SYNAPSE, SYNAPSE_ON_SQLITE)
POSTGRESQL_HOMESERVER = Homeserver("synapse_pg", SYNAPSE_PG, SYNAPSE_ON_POSTGRESQL)
SQLITE_DB = fixture_copy(SYNAPSE / "homeserver.db")


@dataclass(frozen=True, eq=False)
class Setup:
    """A homeserver's database on one database server: the SQLite one as it is and copied into
    PostgreSQL and MariaDB (as synapse_port_db would, and as a copy elsewhere), the PostgreSQL
    one restored from its dump."""

    homeserver: Homeserver
    backend: str

    @property
    def engine(self) -> SynapseEngine:
        """The engine the exporter answers as on this database: the profile's own rule."""
        return synapse_engine(DatabaseConfig(url=f"{self.backend}://", platform="synapse"))

    @property
    def id(self) -> str:
        if self.backend == self.homeserver.engine.name:
            return self.homeserver.name
        return f"{self.homeserver.name}-on-{self.backend}"

    def url(self, request: pytest.FixtureRequest, name: str) -> str:
        """The database's URL; `name` names a copy into a server."""
        if self.homeserver is POSTGRESQL_HOMESERVER:
            return str(request.getfixturevalue("synapse_pg_url"))
        if self.backend == "sqlite":
            return f"sqlite:///{SQLITE_DB}"
        return str(request.getfixturevalue("server_database")(self.backend, name, SQLITE_DB))


SETUPS = (Setup(SQLITE_HOMESERVER, "sqlite"), Setup(SQLITE_HOMESERVER, "postgresql"),
          Setup(SQLITE_HOMESERVER, "mariadb"), Setup(POSTGRESQL_HOMESERVER, "postgresql"))
