"""Start an IPython kernel inside a YARN container and report its ports back to Enterprise Gateway.

This is the primary resource of every yardlab kernel's spark-submit (cluster mode: it runs in the
Spark ApplicationMaster).  The heavy lifting (encrypted connection-info hand-back, the listener
that relays interrupts and shutdown) comes from the gateway_provisioners launcher modules that
ship beside this file via --files; this wrapper adds what yardlab needs on top:

* the bind address comes from YARDLAB_KERNEL_IP (127.0.0.1 on the single-node stack; all
  interfaces on a real cluster, where Enterprise Gateway sits on another host);
* ``--kind python`` gives a plain Python kernel: a SparkSession is still created (the YARN
  ApplicationMaster only registers once a SparkContext exists, so the application would otherwise
  sit in ACCEPTED and then fail), but it runs with zero executors and is not put into the
  user's namespace;
* on a Kerberized cluster (``YARDLAB_HDFS_AUTH=token``) the container holds no Kerberos ticket, only
  the user's delegation tokens: the HdfsCLI config is rewritten to use the HDFS delegation token
  spark-submit obtained for the user, so ``hdfs.Config().get_client()`` keeps working.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-id", required=True)
    parser.add_argument("--response-address", required=True, metavar="IP:PORT")
    parser.add_argument("--public-key", required=True)
    parser.add_argument("--port-range", default="0..0", metavar="LOW..HIGH")
    parser.add_argument("--kind", choices=["pyspark", "python"], default="pyspark")
    parser.add_argument("--spark-context-initialization-mode", dest="init_mode",
                        choices=["eager", "lazy", "none"], default="eager")
    # EG may add options of its own (for example --RemoteProcessProxy.* forms); ignore what we do not know
    args, _unknown = parser.parse_known_args(argv)
    return args


def hdfs_token_config(folder: str) -> str | None:
    """Write an HdfsCLI config using the container's HDFS delegation token; return its path.

    The token comes from the driver JVM's credentials (the ones YARN localized for this
    application and the ResourceManager renews), read through the Py4J gateway Spark opened."""
    from pyspark import SparkContext

    SparkContext._ensure_initialized()  # the gateway of this driver JVM; a SparkContext reuses it
    jvm = SparkContext._jvm
    tokens = jvm.org.apache.hadoop.security.UserGroupInformation.getCurrentUser().getCredentials().getAllTokens()
    token = next((t.encodeToUrlString() for t in tokens.toArray()
                  if t.getKind().toString() == "HDFS_DELEGATION_TOKEN"), None)
    if token is None:
        print("yardlab: no HDFS delegation token in this container; the hdfs helpers will not work",
              file=sys.stderr)
        return None
    user = jvm.org.apache.hadoop.security.UserGroupInformation.getCurrentUser().getShortUserName()
    url = os.environ.get("YARDLAB_WEBHDFS_URL", "")
    if not url:  # the edge's config, shipped with --files, names it
        import configparser

        cfg = configparser.ConfigParser()
        cfg.read(os.environ.get("HDFSCLI_CONFIG", "hdfscli.cfg"))
        url = cfg.get("yardlab.alias", "url", fallback="")
    path = os.path.join(folder, "hdfscli-token.cfg")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"[global]\ndefault.alias = yardlab\n\n[yardlab.alias]\nclient = TokenClient\n"
                f"url = {url}\ntoken = {token}\nroot = /user/{user}\n")
    os.environ["HDFSCLI_CONFIG"] = path
    return path


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    # YARN localizes --files into the container's working folder as symlinks; Python puts the
    # resolved folder of this script (the NodeManager's file cache) on sys.path, not that one
    sys.path.insert(0, os.getcwd())
    import launch_ipykernel as gp  # shipped with --files

    lower, upper = gp._validate_port_range(args.port_range)
    if os.environ.get("YARDLAB_HDFS_AUTH") == "token":
        hdfs_token_config(os.getcwd())
    ip = os.environ.get("YARDLAB_KERNEL_IP", "0.0.0.0")  # noqa: S104 - a real cluster needs EG to reach us
    cluster_type = "spark"
    if args.kind == "python":
        from pyspark.sql import SparkSession

        SparkSession.builder.getOrCreate()  # registers the YARN ApplicationMaster; not exposed
        cluster_type = "none"
    elif args.init_mode == "none":
        cluster_type = "none"

    connection_file = gp.determine_connection_file(args.kernel_id)
    gp.setup_server_listener(connection_file, os.getpid(), lower, upper, args.response_address,
                             args.kernel_id, args.public_key, cluster_type, None)
    if cluster_type == "spark":
        signal.signal(signal.SIGUSR2, gp.cancel_spark_jobs)
    gp.start_ipython({"__name__": "__main__"}, cluster_type=cluster_type, connection_file=connection_file, ip=ip,
                     kernel_class_name=gp.DEFAULT_KERNEL_CLASS_NAME)


if __name__ == "__main__":
    main()
