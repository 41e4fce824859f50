"""yardlab-edge configuration of the local stack (reads the running stack from $YARDLAB_STACK_JSON)."""
# ruff: noqa: F821  (get_config is provided by traitlets)
import json
import os
from pathlib import Path

c = get_config()  # type: ignore[name-defined]
info = json.loads(Path(os.environ["YARDLAB_STACK_JSON"]).read_text())

c.EdgeApp.ip = "127.0.0.1"
c.EdgeApp.port = info["ports"]["edge_http"]
c.EdgeApp.base_url = "/services/yardlab-edge/"
c.AuditLog.path = info["edge_audit_log"]
c.TokenIdentifier.hub_api_url = f"http://127.0.0.1:{info['ports']['hub_internal']}/hub/api"
c.TokenIdentifier.hub_api_token = info["edge_service_token"]
# the stack's own OS accounts are Hadoop identities too (nm/ maps to the YARN account, the other
# daemons to the HDFS superuser): a hub user named like one must never act as it through doAs
_accounts = info.get("accounts") or {}
c.TokenIdentifier.reserved_names.extend(
    sorted({_accounts[k] for k in ("hadoop", "yarn", "service", "kafka", "users_group", "supergroup")
            if _accounts.get(k)}))
c.ResourceManagerClient.urls = [info["rm_url"]]
c.ResourceManagerClient.service_user = info["service_user"]
c.HDFSStorage.webhdfs_url = info["webhdfs_url"]
c.HDFSStorage.service_user = info["service_user"]
state = Path(info["state_dir"])
c.KernelService.kernels_dir = info["kernels_dir"]
c.KernelLedger.db_url = f"sqlite:///{state / 'edge' / 'edge.sqlite'}"
c.GatewaySupervisor.command = [info["eg_command"]]
c.GatewaySupervisor.port = info["ports"]["eg_http"]
c.GatewaySupervisor.env = info["eg_env"]
c.GatewaySupervisor.state_file = info["eg_state_file"]
c.GatewaySupervisor.log_file = str(Path(info["logs"]) / "enterprise-gateway.log")
# short enough for the test suite to watch an orphan being reaped
c.Reaper.grace = 30.0
c.Reaper.interval = 5.0

# Kafka: the local broker (in production, the site's brokers); the capacity line says whether it is up
c.KafkaService.bootstrap_servers = info.get("kafka_bootstrap", "")
c.KafkaService.interval = 10.0

# environments: built under the state folder, packed archives in HDFS /yardlab/envs
c.EnvironmentService.kernel_site = info["kernel_site"]
c.EnvironmentService.builds_dir = str(state / "edge" / "envs")
# the local conda channel (file://); the test suite writes a small package into it
c.EnvironmentService.conda_channels = [Path(info["conda_channel"]).as_uri()]
# one build for the shipped environment and one for a user at the same time
c.EnvironmentService.max_concurrent_builds = 2
# archives as plain .tar: the base (~540 MB unpacked) packs in ~6 s instead of ~25 s at gzip level 1 on
# the stack's 2 cores, and HDFS and the NodeManager are on this machine (a cluster keeps the default, 1)
c.EnvironmentService.compress_level = 0
c.EnvironmentService.predefined = [{
    "name": "spark-pandas", "display_name": "PySpark with pandas and pyarrow", "kind": "pyspark",
    "resources": {"driver_memory_mb": 1024, "executor_memory_mb": 1024, "executor_instances": 1},
    "packages": {"pip": ["pandas>=2.2", "pyarrow>=17"]},
}, {
    # the course's streaming and ML exercises: the data-science base, scikit-learn, a Kafka client and
    # Spark's Kafka connector (Structured Streaming's "kafka" source; Maven resolves kafka-clients and
    # commons-pool2 with it, Spark's own jars are left out)
    "name": "data-science", "display_name": "PySpark: data science (scikit-learn, Kafka)", "kind": "pyspark",
    "resources": {"driver_memory_mb": 1024, "executor_memory_mb": 1024, "executor_instances": 1},
    "packages": {
        # kafka-python, not confluent-kafka: both have wheels for cp311 manylinux, but kafka-python's is pure
        # Python (py3-none-any): nothing native to pack, no bundled librdkafka tied to a glibc, and the same
        # client (with its admin API) as the edge's Kafka probe and the test suite
        "pip": ["numpy", "pandas>=2.2", "pyarrow>=17", "matplotlib>=3.8", "scikit-learn>=1.5", "kafka-python>=3.0"],
        # the connector of the pyspark version; its spark-token-provider-kafka (Kafka delegation tokens,
        # unused on the PLAINTEXT broker) is pinned to 4.0.0 because the Maven Central the stack and CI
        # reach lacks that one artifact's 4.0.1 (the direct dependency wins over the connector's own)
        "maven": ["org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.1",
                  "org.apache.spark:spark-token-provider-kafka-0-10_2.13:4.0.0"],
    },
}]

# warm kernels (edge/warm.py): the default rule (one warm PySpark kernel per user with a Lab server) when
# the stack runs with YARDLAB_WARM_POOL=on; the test suite's stack (=group) gives them only to members of
# two hub groups, one with a short idle time, so its other tests never meet a warm kernel
_warm = info.get("warm_pool", "on")
if _warm == "group":
    c.WarmPool.kernelspecs = {}
    c.WarmPool.groups = {"warm-pool": {"yardlab_pyspark": {"count": 1, "idle_seconds": 600}},
                         "warm-short": {"yardlab_pyspark": {"count": 1, "idle_seconds": 10}}}
elif _warm == "off":
    c.WarmPool.kernelspecs = {}
c.WarmPool.interval = 2.0
c.WarmPool.hub_interval = 3.0

# uploads: small numbers, so the test suite can reach each limit quickly
c.HDFSStorage.uploads_per_user = 2
c.HDFSStorage.upload_threads = 4
c.HDFSStorage.upload_idle_timeout = 3.0
c.HDFSStorage.upload_deadline = 120.0  # the 256 MB streaming test fits well within it
# former admins' ACL entries on /public: reconciled with the hub's admins every 15 s here
c.AdminRoster.interval = 15.0

# Kerberos (the default stack): the edge logs in with the service keytab, keeps the ticket cache
# EG and spark-submit use, and checks the KDC every 10 s (so /health notices a stopped KDC quickly)
if info.get("security") == "kerberos":
    c.Kerberos.keytab = info["service_keytab"]
    c.Kerberos.principal = info["service_principal"]
    c.Kerberos.ccache = info["edge_ccache"]
    c.Kerberos.renew_interval = 10.0
    # the jobs list says when each kernel's delegation tokens stop being renewable
    c.JobService.credentials_max_lifetime = info.get("token_max_lifetime_s", 7 * 24 * 3600.0)
