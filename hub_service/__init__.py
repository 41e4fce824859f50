"""yardlab.hub_service: the managed JupyterHub service at /services/yardlab/ (admin pages and the public API)."""
from __future__ import annotations
