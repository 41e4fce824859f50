"""Environments: a user's Spark resources and extra packages, validated, built, packed, uploaded and
published as a kernelspec."""
from __future__ import annotations

from .service import EnvironmentService, FieldError, kernel_name_for, redact

__all__ = ["EnvironmentService", "FieldError", "kernel_name_for", "redact"]
