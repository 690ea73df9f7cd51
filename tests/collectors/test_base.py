"""A histogram of values a collector has read counts them as SQL counts them."""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing

from collectors.base import INF, histogram_of

BOUNDS = (0.0, 0.5, 1.0, 2.5, 10.0)


def test_histogram_of_equals_sqlite_count_sum_and_buckets_on_random_values():
    draw = random.Random(6)
    with closing(sqlite3.connect(":memory:")) as db:
        db.execute("CREATE TABLE v (x REAL)")
        for _ in range(200):
            # Values on the bounds, between them, beyond the last one, and NULLs.
            values = [draw.choice([None, *BOUNDS, draw.uniform(-1, 12), draw.randint(0, 12)])
                      for _ in range(draw.randint(0, 40))]
            db.execute("DELETE FROM v")
            db.executemany("INSERT INTO v VALUES (?)", [(x,) for x in values])
            buckets = ", ".join(f"SUM(CASE WHEN x <= {b!r} THEN 1 ELSE 0 END)"
                                for b in BOUNDS)
            count, total, *counts = db.execute(
                f"SELECT COUNT(*), TOTAL(x), {buckets} FROM v").fetchone()
            histogram = histogram_of("h", "help", BOUNDS, values)
            sql_buckets = zip(BOUNDS, (c or 0 for c in counts), strict=True)
            assert histogram.buckets == (*sql_buckets, (INF, count))
            assert histogram.count == count
            assert abs(histogram.sum - total) <= 1e-9 * max(1.0, abs(total))


def test_nulls_are_counted_but_in_no_bucket_and_not_summed():
    histogram = histogram_of("h", "help", (1.0,), [None, 1, 2, None])
    assert histogram.buckets == ((1.0, 1), (INF, 4))
    assert histogram.sum == 3.0
