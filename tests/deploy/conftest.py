"""What the deployment tests share: the platform's data as a running Nextcloud leaves it."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import NEXTCLOUD


@pytest.fixture
def nextcloud_data(tmp_path) -> Iterator[Path]:
    """A Nextcloud data directory while Nextcloud runs: its WAL database has its -wal and -shm
    files beside it (held open here), so a read-only mount can still be read; readable by any
    user, as the platform's own user and group would let the exporter's read it."""
    data = tmp_path / "nextcloud-data"
    data.mkdir(mode=0o755)
    shutil.copyfile(NEXTCLOUD / "nextcloud.db", data / "owncloud.db")
    with closing(sqlite3.connect(data / "owncloud.db")) as nextcloud:
        nextcloud.execute("SELECT count(*) FROM oc_users").fetchone()
        for file in data.iterdir():
            file.chmod(0o644)
        yield data
