"""Files, bytes used and free, storages, and how users' storage and quotas are distributed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from collectors.base import (
    BYTE_BOUNDS,
    REFRESH_NOTE,
    Collector,
    CollectorResult,
    Gauge,
    Metric,
    Source,
    histogram_of,
)
from exporter.usercolumns import cells, user_columns

QUOTA_RATIO_BOUNDS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)


class StorageCollector(Collector):
    name = "storage"
    relations = ("home_storage", "storage_roots")
    optional_relations = ("quotas", "storages")

    def collect(self, source: Source) -> CollectorResult:
        conn, rel = source.conn, source.relations
        home = rel["home_storage"]
        listing = [home.c.listing_order] if "listing_order" in home.c else []
        per_user: dict[str, Mapping[str, Any]] = user_columns(conn.execute(
            select(home.c.user_id, home.c.used_bytes, home.c.files).order_by(*listing)),
            ("used_bytes", "files")) | {"quota_bytes": {}}
        # The sums and histograms over users come from these rows: the home storage join is the
        # most expensive query here, and is run once.
        used_bytes, files = per_user["used_bytes"].values(), per_user["files"].values()
        roots = rel["storage_roots"]
        used = conn.execute(select(func.coalesce(func.sum(roots.c.used_bytes), 0))
                            .where(roots.c.used_bytes > 0)).scalar_one()
        metrics: list[Metric] = [
            Gauge.single("usage_files", "Files (not folders) in users' home storages. "
                         + REFRESH_NOTE, sum(filter(None, files))),
            Gauge.single("usage_storage_used_bytes", "Bytes used by the storages users own (sum "
                         "of their root folders). " + REFRESH_NOTE, used),
            Gauge.single("usage_storage_files_bytes", "Bytes of users' files, what quotas "
                         "count (the rest of the used bytes are versions, trash and previews). "
                         + REFRESH_NOTE, sum(filter(None, used_bytes))),
            histogram_of("usage_user_storage_used_bytes", "Users by bytes used in their home "
                         "storage. " + REFRESH_NOTE, BYTE_BOUNDS, used_bytes),
        ]
        free = self._free_bytes(source, int(used))
        if free is not None:
            metrics += [
                Gauge.single("usage_storage_free_bytes", "Bytes free for user data. "
                             + REFRESH_NOTE, free),
                Gauge.single("usage_storage_total_bytes", "Bytes used plus bytes free. "
                             + REFRESH_NOTE, free + int(used)),
            ]
        if "storages" in rel:
            storages = rel["storages"]
            by_kind = {"home": 0, "local": 0, "other": 0} | dict(conn.execute(
                select(storages.c.kind, func.count()).group_by(storages.c.kind)).all())
            entries = conn.execute(
                select(func.coalesce(func.sum(storages.c.entries), 0))).scalar_one()
            metrics += [
                Gauge.by("usage_storages", "Storages by kind. " + REFRESH_NOTE, "kind", by_kind),
                Gauge.single("usage_file_cache_entries", "File cache entries of all storages: "
                             "files, folders, previews, versions and trash. " + REFRESH_NOTE,
                             entries),
            ]
        if "quotas" in rel:
            quotas = rel["quotas"]
            per_user |= user_columns(conn.execute(
                select(quotas.c.user_id, quotas.c.quota_bytes)), ("quota_bytes",))
            metrics += self._quota_metrics(per_user["quota_bytes"], per_user["used_bytes"])
        return CollectorResult(metrics=tuple(metrics), users=per_user)

    @staticmethod
    def _quota_metrics(quota_bytes: Mapping[str, Any],
                       used_bytes: Mapping[str, Any]) -> list[Metric]:
        """Over the users with a quota (> 0): the share of it their home storage uses (none
        used when they have no home storage) and how many use more."""
        limited = [user for user, quota in quota_bytes.items() if quota and quota > 0]
        home_used, limits = cells((used_bytes, quota_bytes), limited)
        used = [value or 0 for value in home_used]
        ratios = [u / q for u, q in zip(used, limits, strict=True)]
        return [
            histogram_of("usage_user_quota_utilization_ratio", "Users with a quota by the "
                         "share of it they use. " + REFRESH_NOTE, QUOTA_RATIO_BOUNDS, ratios),
            Gauge.single("usage_users_over_quota", "Users whose usage exceeds their quota. "
                         + REFRESH_NOTE, sum(u > q for u, q in zip(used, limits, strict=True))),
        ]

    @staticmethod
    def _free_bytes(source: Source, used: int) -> int | None:
        """Object storage: the configured capacity minus use; otherwise the data directory's
        free space (statvfs), as the platforms report it."""
        database = source.database
        if database.available_storage_bytes is not None:
            return max(database.available_storage_bytes - used, 0)
        if database.data_directory is None:
            return None
        stats = os.statvfs(database.data_directory)
        return stats.f_bavail * stats.f_frsize
