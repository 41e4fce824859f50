"""yardlab's jupyter_server extension: the REST API behind the JupyterLab sidebar."""
from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

from jupyter_server.extension.application import ExtensionApp
from traitlets import Integer, Unicode, default

from .handlers import default_handlers
from .sessions import follow_sessions

try:
    __version__ = version("yardlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"


class YardlabExtension(ExtensionApp):
    """Serves ``/yardlab/api/`` inside each user's Jupyter server."""

    name = "yardlab"

    edge_url_env = "YARDLAB_EDGE_URL"
    edge_url = Unicode(
        help="""Base URL of the yardlab edge service, e.g. ``http://edge.example.org:8080``.

        The sidebar's jobs, environments and storage views are served through it.
        Defaults to the ``YARDLAB_EDGE_URL`` environment variable; empty means no edge
        service is configured.
        """,
    ).tag(config=True)

    @default("edge_url")
    def _default_edge_url(self) -> str:
        return os.environ.get(self.edge_url_env, "")

    edge_token = Unicode(
        help="""Token sent to the edge service: this server's own JupyterHub token by default
        ($JUPYTERHUB_API_TOKEN), so the edge sees the user who owns the server.""",
    ).tag(config=True)

    @default("edge_token")
    def _default_edge_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    max_upload = Integer(2 * 1024**3, help="Largest upload forwarded to the edge, in bytes.").tag(config=True)

    def initialize_settings(self) -> None:
        """Publish what the handlers report in the tornado settings."""
        self.settings.update({"yardlab_version": __version__, "yardlab_edge_url": self.edge_url,
                              "yardlab_edge_token": self.edge_token, "yardlab_max_upload": self.max_upload})
        if self.edge_url and self.serverapp is not None:
            # the edge learns which notebook each kernel serves from this server's sessions
            follow_sessions(self.serverapp.session_manager, self.edge_url, self.edge_token, self.log)

    def initialize_handlers(self) -> None:
        """Register the REST API routes."""
        self.handlers.extend(default_handlers)


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """Tell jupyter_server which app to load for ``yardlab.server_extension``."""
    return [{"module": "yardlab.server_extension", "app": YardlabExtension}]
