"""Scratch PostgreSQL databases for the benchmarks: each run builds its data in a database of its own,
created fresh and dropped afterwards, so that a benchmark never touches a working database."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict


def recreate_db(server: str, name: str) -> str:
    """Drop and create ``name`` on the server ``server`` (a URL or conninfo); return the new database's URL."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server)
    user = params.get("user", "postgres")
    pw = f":{params['password']}" if params.get("password") else ""
    return f"postgres://{user}{pw}@{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/{name}"


def drop_db(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
