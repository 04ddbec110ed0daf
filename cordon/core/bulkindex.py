"""Secondary indexes built once after a bulk load instead of row by row (PostgreSQL).

A first load, one that makes up most of the table it fills, pays for every secondary index on every row:
a random insert into a B-tree that soon outgrows the server's buffers. PostgreSQL's own advice for bulk
loads is to create those indexes after the rows are in: one sort per index, run by the server's parallel
workers. ``DeferredIndexes`` does that for the tables an importer names, safely while other sessions read
and write (see its docstring); ``restore_indexes`` repairs what a load that died left missing.

Only the indexes a model declares (``Meta.indexes`` and the foreign keys' own) are deferred: the primary key
and the unique constraints stay, since they are what keeps a load's rows right, and so do indexes made by
hand in a migration (a BRIN costs nothing per row).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, transaction

logger = logging.getLogger(__name__)

# Sort memory for each index built after a load, unless the server's maintenance_work_mem is larger: an index
# of 10^6 rows on two text columns does not fit PostgreSQL's default 64 MB and sorts on disk.
BUILD_MEMORY = 256 * 2**20


def declared_indexes(model: Any, using: str = DEFAULT_DB_ALIAS) -> dict[str, str]:
    """name -> CREATE INDEX of a model's secondary indexes as it declares them (the statements its migrations
    ran): every index but the primary key and the unique constraints."""
    editor = connections[using].schema_editor(collect_sql=True)
    return {str(st.parts["name"]).strip('"'): str(st) for st in editor._model_indexes_sql(model)}


def _much_smaller_than(cur: Any, table: str, rows: int) -> bool:
    """Whether ``table`` holds at most a quarter of ``rows``: a load of that many rows then makes up most of
    it, and building its indexes afterwards sorts little more than the load itself. Counts at most that far."""
    cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT %s) AS r", [rows // 4 + 1])
    return cur.fetchone()[0] * 4 <= rows


class DeferredIndexes:
    """The secondary indexes of some tables, dropped for a load and created again when it ends.

    Safety. The indexes are dropped in one short transaction that waits at most ``lock_timeout`` for its
    ACCESS EXCLUSIVE locks (if readers or writers hold a table longer, the load keeps its indexes). While
    they are missing, searches stay correct but scan the table, which a first load keeps small next to the
    file. They are created again from their own definitions when the load ends, whether it succeeded or
    failed; each CREATE INDEX holds a SHARE lock (reads go on, writes wait a few seconds). A session advisory
    lock (``lock``) is held meanwhile: a second load does not defer, and the repair leaves the indexes to
    the load. Should the process die in between, the lock goes with it, and the next import or ``migrate``
    creates the missing ones from the model (``restore_indexes``).

    ``drop_keys(cur)`` may drop foreign keys with the indexes and return name -> definition;
    ``add_keys(cur, keys)`` adds them again after the builds.
    """

    def __init__(self, lock: int = 0) -> None:
        self.lock = lock
        self.definitions: list[str] = []
        self.keys: dict[str, str] = {}
        self._add_keys: Callable[[Any, dict[str, str]], None] | None = None

    @classmethod
    def begin(
        cls,
        models: Sequence[Any],
        *,
        lock: int,
        wanted: bool | None = True,
        rows: int = 0,
        min_rows: int = 0,
        drop_keys: Callable[[Any], dict[str, str]] | None = None,
        add_keys: Callable[[Any, dict[str, str]], None] | None = None,
    ) -> DeferredIndexes:
        """Drop the declared secondary indexes of ``models`` if this session can take ``lock`` and the tables'
        locks within two seconds; otherwise, or outside PostgreSQL or inside a transaction, change nothing
        (``finish`` then has nothing to do). ``wanted`` False: never; True: whatever the sizes; None: only for
        a load of ``rows`` (an estimate that errs low), at least ``min_rows``, into a first table (the one the
        load fills) much smaller than that."""
        deferred = cls(lock)
        if wanted is False or connection.vendor != "postgresql" or connection.in_atomic_block:
            return deferred
        if wanted is None and rows < min_rows:
            return deferred
        with connection.cursor() as cur:
            if wanted is None and not _much_smaller_than(cur, models[0]._meta.db_table, rows):
                return deferred
            cur.execute("SELECT pg_try_advisory_lock(%s)", [lock])
            if not cur.fetchone()[0]:
                return deferred
            found: dict[str, str] = {}
            keys: dict[str, str] = {}
            try:
                with transaction.atomic():
                    cur.execute("SET LOCAL lock_timeout = '2s'")
                    for model in models:
                        cur.execute(
                            "SELECT indexname, indexdef FROM pg_indexes "
                            "WHERE schemaname = current_schema() AND tablename = %s",
                            [model._meta.db_table],
                        )
                        declared = declared_indexes(model)
                        found.update({n: d for n, d in cur.fetchall() if n in declared and " WHERE " not in d})
                    for name in sorted(found):
                        cur.execute(f'DROP INDEX "{name}"')
                    if drop_keys is not None:
                        keys = drop_keys(cur)
            except OperationalError:  # a lock was not granted in time: load with the indexes
                cur.execute("SELECT pg_advisory_unlock(%s)", [lock])
                return deferred
            if not found and not keys:
                cur.execute("SELECT pg_advisory_unlock(%s)", [lock])
                return deferred
        deferred.definitions = [found[n] for n in sorted(found)]
        deferred.keys = keys
        deferred._add_keys = add_keys
        return deferred

    def finish(self, *, failing: bool) -> None:
        """Create the dropped indexes again. When the load failed, a failure here is logged, not raised over
        the load's own error (the repair at the next import or migrate creates what is missing)."""
        if not self.definitions and not self.keys:
            return
        try:
            with connection.cursor() as cur:
                try:
                    cur.execute("SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'maintenance_work_mem'")
                    memory = max(cur.fetchone()[0], BUILD_MEMORY)
                    for definition in self.definitions:
                        # One transaction per index: its SHARE lock is held for its own build only.
                        with transaction.atomic():
                            cur.execute(f"SET LOCAL maintenance_work_mem = '{memory // 1024}kB'")
                            cur.execute(definition.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1))
                    if self.keys and self._add_keys is not None:
                        self._add_keys(cur, self.keys)
                finally:
                    cur.execute("SELECT pg_advisory_unlock(%s)", [self.lock])
        except Exception:
            if not failing:
                raise
            logger.exception("indexes could not be created again after a failed import")
        self.definitions = []
        self.keys = {}


def restore_indexes(
    model: Any,
    *,
    lock: int,
    using: str = DEFAULT_DB_ALIAS,
    repair: Callable[[Any], dict[str, str]] | None = None,
) -> list[str]:
    """Create a model's declared secondary indexes that are missing, unless a load deferring them holds
    ``lock``; returns their names (and those of what ``repair(cur)`` restored besides, under the same lock).
    A load that died before creating them again leaves them missing: this runs at the start of each such
    import and after ``migrate`` (with the model as the migrations left it)."""
    conn = connections[using]
    if conn.vendor != "postgresql":
        return []
    table = model._meta.db_table
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        if not cur.fetchone()[0]:
            return []
        cur.execute("SELECT pg_try_advisory_lock(%s)", [lock])
        if not cur.fetchone()[0]:
            return []
        try:
            cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
                        [table])  # fmt: skip
            present = {r[0] for r in cur.fetchall()}
            missing = {n: sql for n, sql in declared_indexes(model, using).items() if n not in present}
            for name in sorted(missing):
                logger.warning("creating the missing index %s of %s", name, table)
                cur.execute(missing[name])
            if repair is not None:
                missing.update(repair(cur))
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s)", [lock])
    return sorted(missing)
