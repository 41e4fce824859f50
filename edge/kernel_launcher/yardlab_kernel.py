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
  user's namespace.
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


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    # YARN localizes --files into the container's working folder as symlinks; Python puts the
    # resolved folder of this script (the NodeManager's file cache) on sys.path, not that one
    sys.path.insert(0, os.getcwd())
    import launch_ipykernel as gp  # shipped with --files

    lower, upper = gp._validate_port_range(args.port_range)
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
