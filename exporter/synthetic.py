"""What every synthetic platform database is made of: tables whose rows are generated as they are
written, the SQL script splitter, people's names, the activity bands and the Pareto law that skew
a population like a real instance's, apportioning, and the streaming SQLite writer.

The Nextcloud generator (exporter.nextcloud_data, with the demo's instance in exporter.demo_data)
and bench's Synapse generator (bench/generate.py) are built on these pieces. Rows are never held
all at once: a table's rows come from a generator and are written in batches, so a million users
cost no more memory than a thousand.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import sqlite3
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Row = Sequence[Any]

MINUTE, HOUR, DAY = 60, 3600, 86400
YEAR = 365 * DAY


@dataclass(frozen=True)
class Table:
    """A table's name, the columns its rows fill, and a function giving the rows afresh (each
    call starts the table's generator again from its seed)."""

    name: str
    columns: tuple[str, ...]
    rows: Callable[[], Iterable[Row]]


def table(name: str, columns: str, rows: Callable[[], Iterable[Row]]) -> Table:
    """A Table from its space-separated column names."""
    return Table(name, tuple(columns.split()), rows)


@dataclass(frozen=True)
class Dataset:
    """DDL in SQLite's dialect (tables and indexes, as sqlite_master holds them) and the rows."""

    ddl: tuple[str, ...]
    tables: tuple[Table, ...]


def statements(script: str) -> tuple[str, ...]:
    """The statements of an SQL script. SQLite decides where each ends, so a statement may span
    lines and a `;` inside a comment or a string does not split it."""
    found, buffer = [], ""
    for line in script.strip().splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            found.append(buffer.strip())
            buffer = ""
    return tuple(found)


def is_index(statement: str) -> bool:
    return statement.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX"))


def table_rng(seed: int, name: str) -> random.Random:
    """The random numbers of one table: each table draws from its own seed, so a table's rows do
    not depend on how many numbers another table drew, and a table can be generated again."""
    return random.Random(f"{seed}:{name}")


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# Given names, and family names as (display form, ASCII form used in ids and e-mail addresses).
FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hannah", "Ivan", "Julia", "Karl",
    "Lena", "Max", "Nina", "Oscar", "Paula", "Rosa", "Simon", "Tara", "Vera", "Amir", "Chen",
    "Elif", "Farah", "Hiro", "Ines", "Jonas", "Lucia", "Mateo", "Priya", "Quentin", "Uwe",
    "Walter", "Xenia", "Yusuf", "Zoe", "Bianca", "Dana", "Gustav", "Kai", "Noah", "Olga",
    "Rafael", "Sofia", "Tom", "Ulrike", "Viktor", "Wei", "Yara", "Zeynep", "Alice", "Bob",
    "Carol", "Erin", "Frank", "Grace", "Heidi", "Judy", "Olivia", "Rupert")
LAST_NAMES = (
    ("Anderson", "anderson"), ("Becker", "becker"), ("Costa", "costa"), ("Dubois", "dubois"),
    ("Fischer", "fischer"), ("García", "garcia"), ("Hoffmann", "hoffmann"), ("Jensen", "jensen"),
    ("Kowalski", "kowalski"), ("Larsen", "larsen"), ("Müller", "mueller"), ("Nowak", "nowak"),
    ("Petrov", "petrov"), ("Rossi", "rossi"), ("Schmidt", "schmidt"), ("Tanaka", "tanaka"),
    ("Weber", "weber"), ("Yilmaz", "yilmaz"), ("Zhang", "zhang"), ("Silva", "silva"),
    ("Park", "park"), ("Nguyen", "nguyen"), ("Singh", "singh"), ("Kaya", "kaya"),
    ("Novak", "novak"), ("Eriksen", "eriksen"), ("Ivanova", "ivanova"), ("O'Brien", "obrien"),
    ("Quinn", "quinn"), ("Ulrich", "ulrich"), ("Varga", "varga"), ("Andersson", "andersson"),
    ("Brown", "brown"), ("Clark", "clark"), ("Davis", "davis"), ("Evans", "evans"),
    ("Fernández", "fernandez"), ("Green", "green"), ("Hansen", "hansen"), ("Ito", "ito"),
    ("Johnson", "johnson"), ("Kim", "kim"), ("Lopez", "lopez"), ("Martin", "martin"),
    ("Nielsen", "nielsen"), ("Olsen", "olsen"), ("Richter", "richter"), ("Taylor", "taylor"),
    ("Vogel", "vogel"), ("Wagner", "wagner"), ("Young", "young"), ("Zimmermann", "zimmermann"),
    ("Bauer", "bauer"), ("Wolf", "wolf"), ("Keller", "keller"), ("Lange", "lange"))
# Numbered accounts (account i of a large instance) cycle through the first 30 given and 25
# family names: the combinations the benchmark databases have always been built from.
_NUMBERED_FIRST = tuple(name.lower() for name in FIRST_NAMES[:30])
_NUMBERED_LAST = tuple(ascii_name for _, ascii_name in LAST_NAMES[:25])


def numbered_person(i: int) -> tuple[str, str]:
    """The (given, family) name of numbered account i, in lower-case ASCII."""
    return (_NUMBERED_FIRST[i % len(_NUMBERED_FIRST)],
            _NUMBERED_LAST[(i // len(_NUMBERED_FIRST)) % len(_NUMBERED_LAST)])


# Age of the last activity (seconds before now) per band and the share of users in it, in
# percent; None = never logged in. The bands are the exporter's trailing windows (5 m, 1 h, 1 d,
# 7 d, 30 d, 90 d, 365 d), so every window gets users of its own.
ACTIVITY_BANDS: tuple[tuple[tuple[int, int] | None, int], ...] = (
    ((1, 5 * MINUTE), 2),
    ((5 * MINUTE, HOUR), 3),
    ((HOUR, DAY), 10),
    ((DAY, 7 * DAY), 15),
    ((7 * DAY, 30 * DAY), 15),
    ((30 * DAY, 90 * DAY), 14),
    ((90 * DAY, 365 * DAY), 18),
    ((365 * DAY, 4 * 365 * DAY), 13),
    (None, 10),
)
_BAND_TABLE = [band for band, percent in ACTIVITY_BANDS for _ in range(percent)]

PARETO_ALPHA = 1.16  # the 80/20 rule
# The heaviest user may hold this many times the mean weight (keeps one account from owning
# half of a small instance, as a sampled Pareto tail would).
WEIGHT_CAP = 3000.0


def pareto_weights(rng: random.Random, count: int) -> array:
    """Per-user weights with mean 1: a Pareto law, capped at WEIGHT_CAP."""
    raw = array("d", (min(rng.paretovariate(PARETO_ALPHA), WEIGHT_CAP) for _ in range(count)))
    mean = sum(raw) / max(count, 1)
    return array("d", (w / mean for w in raw))


def apportion(total: int, weights: Sequence[float], rng: random.Random) -> array:
    """Integers proportional to `weights` summing to about `total` (randomised rounding: each
    share is rounded up with the probability of its fraction)."""
    scale = total / max(sum(weights), 1e-9)
    return array("q", (int(w * scale + rng.random()) for w in weights))


def last_activity(rng: random.Random, now: int, weight: float = 1.0) -> int:
    """A last-activity time drawn from ACTIVITY_BANDS, 0 = never. Heavy users (weight above 2)
    are active more recently: they get the most recent of two draws."""
    best = 0
    for _ in range(2 if weight > 2 else 1):
        band = _BAND_TABLE[int(rng.random() * len(_BAND_TABLE))]
        if band is not None:
            best = max(best, now - rng.randint(*band))
    return best


Written = Callable[[int], None]
# SQLite's page cache while writing, in KiB. It bounds the writer's memory: beyond it, pages go to
# the file (and index sorts to temporary files), so a million users need no more than ten thousand.
CACHE_KIB = 64 * 1024


def write_sqlite(path: Path, dataset: Dataset, *, batch: int = 50_000,
                 written: Written | None = None) -> dict[str, int]:
    """Write `dataset` as a new SQLite database at `path`, replacing any file there atomically;
    returns the rows written per table. Rows go in `batch` at a time (memory stays flat whatever
    the size); indexes are built after the rows and the planner's statistics gathered, as a
    live instance has them. `written` is told the rows written so far, after each batch."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    try:
        conn = sqlite3.connect(temporary, isolation_level=None)
        try:
            # Nothing to protect until the rename below: skip journaling and fsyncs.
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            conn.execute("BEGIN")
            for statement in dataset.ddl:
                if not is_index(statement):
                    conn.execute(statement)
            done = 0
            for data in dataset.tables:
                insert = (f"INSERT INTO {data.name} ({', '.join(data.columns)}) "
                          f"VALUES ({', '.join('?' * len(data.columns))})")
                rows = iter(data.rows())
                counts[data.name] = 0
                while chunk := list(itertools.islice(rows, batch)):
                    conn.executemany(insert, chunk)
                    counts[data.name] += len(chunk)
                    done += len(chunk)
                    if written is not None:
                        written(done)
            for statement in dataset.ddl:
                if is_index(statement):
                    conn.execute(statement)
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
        finally:
            conn.close()
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return counts
