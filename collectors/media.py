"""Uploaded media: files, bytes, pending uploads, and how media bytes are spread over users.

Counts every row of the media relation, as Synapse's media statistics API does (quarantined and
pending uploads included). Per user: media_count and media_bytes, where media_bytes is None when
none of the user's uploads has a size yet (Synapse's SUM gives null there too).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, cast, func, select

from collectors.base import (
    BYTE_BOUNDS,
    REFRESH_NOTE,
    Collector,
    CollectorResult,
    Gauge,
    Source,
    histogram_of,
)
from exporter.usercolumns import user_columns


class MediaCollector(Collector):
    name = "media"
    relations = ("media",)

    def collect(self, source: Source) -> CollectorResult:
        conn, media = source.conn, source.relations["media"]
        files, total_bytes, sized = conn.execute(select(
            func.count(), cast(func.coalesce(func.sum(media.c.bytes), 0), BigInteger),
            func.count(media.c.bytes))).one()

        # Rows without a user id have nobody to be attributed to (Synapse would show them as
        # one group with media_count 0), so only the totals above include them.
        per_user = (select(media.c.user_id, func.count().label("media_count"),
                           cast(func.sum(media.c.bytes), BigInteger).label("media_bytes"))
                    .where(media.c.user_id.is_not(None))
                    .group_by(media.c.user_id).subquery("per_user"))
        columns = user_columns(conn.execute(
            select(per_user.c.user_id, per_user.c.media_count, per_user.c.media_bytes)),
            ("media_count", "media_bytes"))
        # Users whose media have no size yet have 0 bytes.
        user_bytes = [value or 0 for value in columns["media_bytes"].values()]
        return CollectorResult(
            metrics=(
                Gauge.single("usage_media_files", "Uploaded media files, including quarantined "
                             "ones and pending uploads. " + REFRESH_NOTE, files),
                Gauge.single("usage_media_bytes", "Bytes of uploaded media. " + REFRESH_NOTE,
                             total_bytes),
                Gauge.single("usage_media_pending_uploads", "Media created for an upload whose "
                             "content has not arrived yet (no size). " + REFRESH_NOTE,
                             files - sized),
                histogram_of("usage_user_media_bytes", "Users with uploaded media by their "
                             "media bytes. " + REFRESH_NOTE, BYTE_BOUNDS, user_bytes),
            ),
            users=columns,
        )
