"""Files, bytes used and free, storages, and how users' storage and quotas are distributed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Float, case, cast, func, select

from collectors.base import (
    BYTE_BOUNDS,
    REFRESH_NOTE,
    Collector,
    CollectorResult,
    Gauge,
    Metric,
    Source,
    cumulative_bucket_counts,
    histogram,
)
from exporter.usercolumns import user_columns

QUOTA_RATIO_BOUNDS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)


class StorageCollector(Collector):
    name = "storage"
    relations = ("home_storage", "storage_roots")
    optional_relations = ("quotas", "storages")

    def collect(self, source: Source) -> CollectorResult:
        conn, rel = source.conn, source.relations
        home = rel["home_storage"]
        count, used_sum, files, *buckets = conn.execute(select(
            func.count(), func.coalesce(func.sum(home.c.used_bytes), 0),
            func.coalesce(func.sum(home.c.files), 0),
            *cumulative_bucket_counts(home.c.used_bytes, BYTE_BOUNDS))).one()
        roots = rel["storage_roots"]
        used = conn.execute(select(func.coalesce(func.sum(roots.c.used_bytes), 0))
                            .where(roots.c.used_bytes > 0)).scalar_one()
        metrics: list[Metric] = [
            Gauge.single("usage_files", "Files (not folders) in users' home storages. "
                         + REFRESH_NOTE, files),
            Gauge.single("usage_storage_used_bytes", "Bytes used by all storages (sum of their "
                         "root folders). " + REFRESH_NOTE, used),
            histogram("usage_user_storage_used_bytes", "Users by bytes used in their home "
                      "storage. " + REFRESH_NOTE, BYTE_BOUNDS, buckets, count, used_sum),
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
        per_user: dict[str, Mapping[str, Any]] = user_columns(conn.execute(
            select(home.c.user_id, home.c.used_bytes, home.c.files)),
            ("used_bytes", "files")) | {"quota_bytes": {}}
        if "quotas" in rel:
            metrics += self._quota_metrics(source)
            quotas = rel["quotas"]
            per_user |= user_columns(conn.execute(
                select(quotas.c.user_id, quotas.c.quota_bytes)), ("quota_bytes",))
        return CollectorResult(metrics=tuple(metrics), users=per_user)

    def _quota_metrics(self, source: Source) -> list[Metric]:
        home, quotas = source.relations["home_storage"], source.relations["quotas"]
        used = func.coalesce(home.c.used_bytes, 0)
        ratio = cast(used, Float) / quotas.c.quota_bytes
        count, ratio_sum, over, *buckets = source.conn.execute(
            select(func.count(), func.coalesce(func.sum(ratio), 0),
                   func.coalesce(func.sum(case((used > quotas.c.quota_bytes, 1), else_=0)), 0),
                   *cumulative_bucket_counts(ratio, QUOTA_RATIO_BOUNDS))
            .select_from(quotas.outerjoin(home, home.c.user_id == quotas.c.user_id))
            .where(quotas.c.quota_bytes > 0)).one()
        return [
            histogram("usage_user_quota_utilization_ratio", "Users with a quota by the share "
                      "of it they use. " + REFRESH_NOTE, QUOTA_RATIO_BOUNDS, buckets, count,
                      ratio_sum),
            Gauge.single("usage_users_over_quota", "Users whose usage exceeds their quota. "
                         + REFRESH_NOTE, over),
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
