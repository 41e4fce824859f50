"""yardlab-edge configuration for an edge node; copy to /etc/yardlab/yardlab_edge_config.py.

Every option with its help: ``yardlab-edge --help-all`` (or ``--generate-config``).
The hub token is not written here: systemd passes it in from /etc/yardlab/edge.env.
"""
# ruff: noqa: F821  (get_config is provided by traitlets)
import os

c = get_config()  # type: ignore[name-defined]

# Where the edge listens.  The hub's proxy and the user pods in Kubernetes connect here: this
# host and port are the `url` of the hub service yardlab-edge in helm/jupyterhub-values.yaml.
c.EdgeApp.ip = "0.0.0.0"
c.EdgeApp.port = 8765
# The proxy forwards /services/yardlab-edge/... unchanged, so the edge serves under that prefix.
c.EdgeApp.base_url = "/services/yardlab-edge/"
# One JSON object per kill, launch and build (LogsDirectory of yardlab-edge.service).
c.AuditLog.path = "/var/log/yardlab/edge-audit.jsonl"

# Token checks.  The hub runs in Kubernetes; the edge reaches its REST API through the public
# proxy.  The edge's own token is the hub service token (hub Secret key
# hub.services.yardlab-edge.apiToken); its role lets it read users' names, groups and roles.
c.TokenIdentifier.hub_api_url = "https://jupyter.example.org/hub/api"  # REPLACE
c.TokenIdentifier.hub_api_token = os.environ.get("JUPYTERHUB_API_TOKEN", "")

# The YARN ResourceManagers: list both with RM high availability; calls go to the active one.
c.ResourceManagerClient.urls = [
    "http://rm1.example.internal:8088",  # REPLACE
    "http://rm2.example.internal:8088",  # REPLACE
]
# The account the edge acts as (user.name=): a YARN admin (yarn.admin.acl) and a Hadoop proxy
# user (hadoop.proxyuser.yardlab.hosts = this host, .groups / .users = your users), so that
# kills and file operations run as the owning user (doAs=).
c.ResourceManagerClient.service_user = "yardlab"

# Kerberos (every production cluster; helm/README.md, "A Kerberized cluster"): the edge logs in
# with its keytab and authenticates to the RM and WebHDFS with SPNEGO; leave keytab empty for a
# cluster with simple authentication.
c.Kerberos.keytab = "/etc/security/keytabs/yardlab.keytab"  # REPLACE (or "" for simple auth)
c.Kerberos.principal = "yardlab@EXAMPLE.ORG"  # REPLACE
c.Kerberos.ccache = "/var/lib/yardlab/krb5cc"  # Enterprise Gateway and spark-submit read it
# the cluster's dfs.namenode.delegation.token.max-lifetime in seconds (7 days by default): the
# jobs list tells each kernel's user when its tokens stop being renewable (0 with simple auth)
c.JobService.credentials_max_lifetime = 7 * 24 * 3600.0

# One poll loop serves every user's view: RM load does not grow with the number of users.
c.AppSnapshot.poll_interval = 2.0

# Warm kernels (edge/warm.py): for each user with a Lab server running, kernels already started as
# that user, handed to their next notebook at once.  Each holds its YARN containers while it waits
# (a PySpark kernel: driver + executors), so size the pool to the cluster.  The default is one of
# the default PySpark kernelspec per active user; per hub group, a rule replaces it for members
# (count 0: none).  Warm kernels are given back after idle_seconds, when their user's server stops,
# and as soon as anyone waits in ACCEPTED for room.  Keep idle_seconds under Enterprise Gateway's
# idle cull (GatewaySupervisor.cull_idle_timeout, 4 h).  c.WarmPool.kernelspecs = {} turns it off.
c.WarmPool.kernelspecs = {"yardlab_pyspark": {"count": 1, "idle_seconds": 600}}
c.WarmPool.groups = {
    # "students": {"yardlab_pyspark": {"count": 0}},  # a course of 300: no warm kernels
    # "staff": {"yardlab_pyspark": {"count": 2, "idle_seconds": 1800}},
}

# Kafka: the site's brokers (kernels connect to them themselves; the edge only asks them for their
# metadata every KafkaService.interval seconds, so the sidebar and the Overview say whether Kafka is
# up).  Empty: no Kafka.  JVM packages of environments (packages.maven, e.g. Spark's Kafka connector)
# are resolved from these Maven repositories only (the first stands in for every repository a POM names).
c.KafkaService.bootstrap_servers = ""  # e.g. "kafka-1.example.org:9093,kafka-2.example.org:9093"
c.EnvironmentService.maven_repositories = ["https://repo.maven.apache.org/maven2"]  # or the site's mirror
