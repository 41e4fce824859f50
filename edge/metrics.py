"""Prometheus metrics of the edge service (served at /metrics)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUEST_DURATION = Histogram(
    "yardlab_edge_request_duration_seconds", "Edge API request durations", ["handler", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
RM_CALL_DURATION = Histogram(
    "yardlab_edge_rm_call_duration_seconds", "ResourceManager REST call durations", ["call"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RM_ERRORS = Counter("yardlab_edge_rm_errors_total", "ResourceManager REST calls that failed", ["call"])
SNAPSHOT_AGE = Gauge("yardlab_edge_snapshot_age_seconds", "Seconds since the last good YARN snapshot")
SNAPSHOT_APPS = Gauge("yardlab_edge_snapshot_apps", "Applications held in the YARN snapshot")
KILLS = Counter("yardlab_edge_kills_total", "Application kills by actor kind and outcome",
                ["actor_kind", "outcome"])
GATEWAY_RESTARTS = Counter("yardlab_edge_gateway_restarts_total", "Times the edge restarted Enterprise Gateway")
WARM_HANDED_OUT = Counter("yardlab_warm_kernels_handed_out_total",
                          "Kernel starts answered with a warm kernel of the user's.")
KERNEL_LAUNCH_SECONDS = Histogram(
    "yardlab_edge_kernel_launch_seconds", "Seconds from a kernel start request to EG's answer",
    buckets=(5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300))
REAPED = Counter("yardlab_edge_reaped_total", "YARN applications of kernels that no longer exist, killed",
                 ["state"])
