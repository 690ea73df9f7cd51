"""Messages of the last day, and the rooms they were sent in, as Synapse's phone-home counts them.

Synapse does not compare receive times: it finds the stream position a day ago (by a binary
search, as received times have no index) and counts the messages after it. The collector does
the same, so the event found, the first received within the day, is not counted either.
"""

from __future__ import annotations

from sqlalchemy import Connection, Subquery, bindparam, func, select

from collectors.base import REFRESH_NOTE, Collector, CollectorResult, Gauge, Source

DAY_MS = 86_400_000
WINDOW = "1d"
ENCRYPTED = {0: "false", 1: "true"}
ORIGINS = ("local", "remote")


def first_position_received_since(conn: Connection, stream: Subquery, since_ms: int) -> int:
    """Synapse's stream_ordering_day_ago (event_push_actions.py
    _find_first_stream_ordering_after_ts_txn): the lowest position from 0 up whose latest event
    at or before it was received at or after `since_ms`; one past the last position when none
    was, 0 for an empty stream. A binary search over positions, each step one indexed lookup;
    like Synapse's, it takes receive times to rise with positions."""
    last = conn.execute(select(func.max(stream.c.position))).scalar()
    if last is None:
        return 0
    received_at_or_before = (select(stream.c.received_ms)
                             .where(stream.c.position <= bindparam("position"))
                             .order_by(stream.c.position.desc()).limit(1))
    low, high = 0, int(last) + 1
    while low < high:
        middle = (low + high) // 2
        received = conn.execute(received_at_or_before, {"position": middle}).scalar()
        if received is None or received < since_ms:
            low = middle + 1
        else:
            high = middle
    return high


class MessagesCollector(Collector):
    name = "messages"
    relations = ("event_stream", "messages")

    def collect(self, source: Source) -> CollectorResult:
        messages = source.relations["messages"]
        # Synapse's clock in whole milliseconds.
        since = first_position_received_since(source.conn, source.relations["event_stream"],
                                              int(source.now * 1000) - DAY_MS)
        # Per room first, then per kind: a hash aggregate over the day's messages, where
        # COUNT(DISTINCT room_id) would sort them all.
        per_room = (select(messages.c.encrypted, func.count().label("messages"),
                           func.sum(messages.c.local).label("local"))
                    .where(messages.c.position > since)
                    .group_by(messages.c.encrypted, messages.c.room_id).subquery("per_room"))
        counts = {encrypted: (0, 0, 0) for encrypted in ENCRYPTED}
        counts |= {encrypted: (int(total), int(local), rooms) for encrypted, total, local, rooms
                   in source.conn.execute(
                       select(per_room.c.encrypted, func.sum(per_room.c.messages),
                              func.sum(per_room.c.local), func.count())
                       .group_by(per_room.c.encrypted))}
        return CollectorResult(metrics=(
            Gauge("usage_messages", "Messages (m.room.message) and encrypted messages "
                  "(m.room.encrypted) received within the window, by whether an account of "
                  "this server sent them. " + REFRESH_NOTE, ("window", "encrypted", "origin"),
                  tuple(((WINDOW, ENCRYPTED[encrypted], origin), float(value))
                        for encrypted, (total, local, _) in counts.items()
                        for origin, value in zip(ORIGINS, (local, total - local), strict=True))),
            Gauge("usage_rooms_active", "Rooms with at least one message (encrypted=false) or "
                  "encrypted message (encrypted=true) within the window. " + REFRESH_NOTE,
                  ("window", "encrypted"),
                  tuple(((WINDOW, ENCRYPTED[encrypted]), float(rooms))
                        for encrypted, (_, _, rooms) in counts.items())),
        ))
