"""The edge's database: one SQLAlchemy declarative base for every table, and the one way a row changes.

SQLite by default (a file on the edge node); any SQLAlchemy URL in production.
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session

R = TypeVar("R")


class Base(DeclarativeBase):
    """Declarative base of the edge's tables (kernels, their applications, environments)."""


def open_database(url: str) -> Engine:
    """An engine for ``url`` with every table of the edge created."""
    engine = create_engine(url, future=True)
    Base.metadata.create_all(engine)
    return engine


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
