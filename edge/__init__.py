"""yardlab.edge: the tornado service on the Hadoop edge node, the one place where policy is decided."""
from __future__ import annotations

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("yardlab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
