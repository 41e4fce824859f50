"""The edge's database: one SQLAlchemy declarative base for every table, and the one way a row changes.

SQLite by default (a file on the edge node); any SQLAlchemy URL in production.
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session

R = TypeVar("R")


class Base(DeclarativeBase):
    """Declarative base of the edge's tables (kernels, their applications, environments)."""


def open_database(url: str) -> Engine:
    """An engine for ``url`` with every table of the edge created."""
    engine = create_engine(url, future=True)
    Base.metadata.create_all(engine)
    add_new_columns(engine)
    return engine


def add_new_columns(engine: Engine) -> None:
    """Columns added to a table after its database was made (nullable ones only): an edge upgraded
    in place keeps its ledger, with NULL where the old rows knew nothing."""
    quote = engine.dialect.identifier_preparer.quote
    for table in Base.metadata.sorted_tables:
        have = {c["name"] for c in inspect(engine).get_columns(table.name)}
        for column in table.columns:
            if column.name in have or not column.nullable:
                continue
            kind = column.type.compile(engine.dialect)
            try:
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"))
            except DBAPIError:
                # another edge starting on the same database added it first
                if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                    raise


def update_row(engine: Engine, model: type[Base], key: Any, fields: dict[str, Any],
               view: Callable[[Any], R]) -> R | None:
    """Set ``fields`` on the row of ``model`` with primary key ``key`` in one transaction; its view
    afterwards, or None when there is no such row."""
    with Session(engine) as s, s.begin():
        rec = s.get(model, key)
        if rec is None:
            return None
        for name, value in fields.items():
            setattr(rec, name, value)
        return view(rec)
