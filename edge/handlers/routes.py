"""Every route of the edge, in one list.
"""
from __future__ import annotations

from .base import NotFoundHandler
from .environments import (
    EnvironmentEventsHandler,
    EnvironmentHandler,
    EnvironmentLogHandler,
    EnvironmentRebuildHandler,
    EnvironmentsHandler,
)
from .gateway import (
    GatewayRootHandler,
    KernelActionHandler,
    KernelChannelsHandler,
    KernelHandler,
    KernelProgressHandler,
    KernelSessionHandler,
    KernelsHandler,
    KernelSpecHandler,
    KernelSpecResourceHandler,
    KernelSpecsHandler,
    KernelStartsHandler,
    WarmPoolHandler,
)
from .jobs import AppHandler, AppsHandler, ClusterHandler
from .ops import HealthHandler, MeHandler, MetricsHandler
from .sparkui import OAuthCallbackHandler, SparkUIHandler
from .storage import FilesHandler, StorageHandler


def gateway_routes(base: str) -> list[tuple]:
    gw = base.rstrip("/") + "/gateway"
    kid = r"([^/]+)"
    return [
        (gw + "/api", GatewayRootHandler),
        (gw + "/api/kernelspecs", KernelSpecsHandler),
        (gw + r"/api/kernelspecs/([^/]+)", KernelSpecHandler),
        (gw + r"/kernelspecs/([^/]+)/(.+)", KernelSpecResourceHandler),
        (gw + "/api/kernels", KernelsHandler),
        (gw + f"/api/kernels/{kid}", KernelHandler),
        (gw + f"/api/kernels/{kid}/(interrupt|restart)", KernelActionHandler),
        (gw + f"/api/kernels/{kid}/channels", KernelChannelsHandler),
    ]


def routes(base_url: str) -> list[tuple[str, type, dict] | tuple[str, type]]:
    api = base_url.rstrip("/") + "/api/v1"
    return gateway_routes(base_url) + [
        (base_url.rstrip("/") + "/health", HealthHandler),
        (base_url.rstrip("/") + "/metrics", MetricsHandler),
        (api + "/me", MeHandler),
        (api + "/cluster", ClusterHandler),
        (api + "/apps", AppsHandler),
        (api + r"/apps/([^/]+)", AppHandler),
        (api + "/kernels/warm", WarmPoolHandler),
        (api + "/kernels/starting", KernelStartsHandler),
        (api + r"/kernels/([^/]+)/session", KernelSessionHandler),
        (api + r"/kernels/([^/]+)/progress", KernelProgressHandler),
        (api + "/storage", StorageHandler),
        (api + "/environments/?", EnvironmentsHandler),
        (api + r"/environments/([^/]+)/([^/]+)/log", EnvironmentLogHandler),
        (api + r"/environments/([^/]+)/([^/]+)/rebuild", EnvironmentRebuildHandler),
        (api + r"/environments/([^/]+)/([^/]+)/events", EnvironmentEventsHandler),
        (api + r"/environments/([^/]+)/([^/]+)/?", EnvironmentHandler),
        (api + r"/files/?(.*)", FilesHandler),
        # the Spark UI (browsers log in with the hub's OAuth; the path is checked in the handler)
        (base_url.rstrip("/") + r"/proxy/.*", SparkUIHandler),
        (base_url.rstrip("/") + "/oauth_callback", OAuthCallbackHandler),
        (base_url.rstrip("/") + r"/.*", NotFoundHandler),
    ]
