"""Environments: a user's Spark resources and extra packages, validated, built, packed, uploaded and
published as a kernelspec (request.py -> store.py -> builder.py, behind service.py's API)."""
from __future__ import annotations

from .request import FieldError, kernel_name_for, redact
from .service import EnvironmentService

__all__ = ["EnvironmentService", "FieldError", "kernel_name_for", "redact"]
