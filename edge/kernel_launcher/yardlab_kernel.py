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
* ``--kind r`` gives the "R on YARN" kernel: the same YARN application and SparkSession as ``python``,
  and IRkernel as this launcher's child instead of an IPython kernel (``yardlab_irkernel.py``);
* on a Kerberized cluster (``YARDLAB_HDFS_AUTH=token``) the container holds no Kerberos ticket, only
  the user's delegation tokens: the HdfsCLI config is rewritten to use the HDFS delegation token
  spark-submit obtained for the user, so ``hdfs.Config().get_client()`` keeps working;
* every Spark job a cell runs carries the job tag ``yardlab-cell-<id of the cell's execute request>``
  (Spark's job tags, thread-local like the cell's code): the edge reads the application's jobs from
  the Spark UI's REST API and the notebook shows that cell's jobs and stages under it, live;
* Scala cells: the PySpark kernel has the ``%%scala`` cell magic (``yardlab_scala.py``, shipped beside
  this file), a Scala 2.13 REPL in this driver JVM sharing the SparkSession; the REPL is made on the
  first Scala cell, and this launcher only sets ``spark.repl.class.outputDir`` before Spark starts
  (as spark-shell does), so that executors can load the classes it compiles;
* the start waterfall: wall-clock marks of this kernel's start (the container and driver JVM
  processes' start times from /proc, this launcher, the connection info sent, the kernel built,
  Spark ready) are kept as JSON in the environment variable ``YARDLAB_START_MARKS`` of the kernel
  process, where ``bench/bench_kernel_start.py`` reads them with an execute.  Marks are a nicety:
  nothing about them can fail a kernel start.
"""
from __future__ import annotations

import time

LAUNCHER_T0 = time.time()  # first thing: when this script began to run (the start waterfall's "launcher" mark)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel-id", required=True)
    parser.add_argument("--response-address", required=True, metavar="IP:PORT")
    parser.add_argument("--public-key", required=True)
    parser.add_argument("--port-range", default="0..0", metavar="LOW..HIGH")
    parser.add_argument("--kind", choices=["pyspark", "python", "r"], default="pyspark")
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


def repl_class_dir(folder: str) -> str | None:
    """Set ``spark.repl.class.outputDir`` (a new folder under ``folder``) in this driver JVM's system
    properties before the SparkContext starts: the context then serves the folder to executors
    (``spark.repl.class.uri``), which load the classes of Scala cells from it.  Unless already set."""
    from pyspark import SparkContext
    from yardlab_scala import OUTPUT_DIR_PROPERTY

    SparkContext._ensure_initialized()
    system = SparkContext._jvm.java.lang.System
    if system.getProperty(OUTPUT_DIR_PROPERTY):
        return None
    path = os.path.join(folder, "yardlab-repl-classes")
    os.makedirs(path, mode=0o700, exist_ok=True)
    system.setProperty(OUTPUT_DIR_PROPERTY, path)
    return path


# -- the start waterfall's marks ----------------------------------------------------------------------------
MARKS_ENV = "YARDLAB_START_MARKS"
_marks: dict = {}
_marks_lock = threading.Lock()


def proc_start_time(stat: str, uptime: str, now: float, clk_tck: int) -> float:
    """Wall-clock start of a process from its ``/proc/<pid>/stat`` text.

    Field 22 (starttime) counts clock ticks since boot on the same clock as ``/proc/uptime``, so the
    start is ``now - (uptime - starttime / clk_tck)``: good to a tick (10 ms), where ``btime`` of
    /proc/stat would only give whole seconds.  ``comm`` (field 2) may hold spaces and parentheses,
    hence the split after its last ``)``."""
    fields = stat[stat.rindex(")") + 2:].split()
    starttime = int(fields[19])  # fields[0] is field 3 (state)
    return now - (float(uptime.split()[0]) - starttime / clk_tck)


def proc_parent(stat: str) -> tuple[str, int]:
    """(comm, ppid) of a process from its ``/proc/<pid>/stat`` text."""
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    return comm, int(stat[stat.rindex(")") + 2:].split()[1])


def process_marks(pid: int | str = "self", depth: int = 4) -> list[dict]:
    """This process and its ancestors (the driver JVM, the container's shell, ...): pid, comm and
    wall-clock start, nearest first, up to ``depth`` processes."""
    out: list[dict] = []
    clk_tck = os.sysconf("SC_CLK_TCK")
    current = str(pid)
    for _ in range(depth):
        try:
            with open(f"/proc/{current}/stat") as f:
                stat = f.read()
            with open("/proc/uptime") as f:
                uptime = f.read()
            now = time.time()
        except OSError:
            break
        comm, ppid = proc_parent(stat)
        out.append({"pid": int(os.getpid() if current == "self" else current), "comm": comm,
                    "start": round(proc_start_time(stat, uptime, now, clk_tck), 3)})
        if ppid <= 1:
            break
        current = str(ppid)
    return out


def mark(name: str, when: float | None = None, **extra) -> None:  # noqa: ANN003
    """Record a wall-clock mark of this kernel's start into ``YARDLAB_START_MARKS``; never raises."""
    try:
        with _marks_lock:
            _marks[name] = round(time.time() if when is None else when, 3)
            _marks.update(extra)
            os.environ[MARKS_ENV] = json.dumps(_marks, separators=(",", ":"))
    except Exception:  # noqa: BLE001, S110 - a nicety: never fail a kernel start for it
        pass


def first_marks() -> None:
    """The marks known when the launcher starts: run.sh's (passed in the AM's environment), the
    processes above this one (python, the driver JVM, the container's launch script) and this script's."""
    try:
        runsh = os.environ.get("YARDLAB_T_RUNSH", "")
        if runsh:
            mark("runsh", float(runsh))
        procs = process_marks()
        if procs:
            mark("python", procs[0]["start"])
        java = next((p for p in procs[1:] if p["comm"] == "java"), None)
        if java is not None:
            mark("jvm", java["start"])
        mark("launcher", LAUNCHER_T0, procs=procs)
    except Exception:  # noqa: BLE001, S110
        pass


def watch_spark(gp) -> None:  # noqa: ANN001
    """Mark when the launcher's thread starts creating the SparkSession and when it is ready."""
    original = gp.initialize_namespace

    def initialize_namespace(namespace: dict, cluster_type: str = "spark") -> None:
        mark("spark_start")
        original(namespace, cluster_type=cluster_type)
        try:
            thread = vars(namespace.get("spark")).get("_init_thread") if cluster_type == "spark" else None
            if isinstance(thread, threading.Thread):
                def wait() -> None:
                    thread.join()
                    if getattr(thread, "exc", None) is None:
                        mark("spark_ready")

                threading.Thread(target=wait, name="yardlab-start-marks", daemon=True).start()
        except Exception:  # noqa: BLE001, S110
            pass

    gp.initialize_namespace = initialize_namespace


CELL_TAG = "yardlab-cell-"
CELL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class CellTagger:
    """Tags each cell's Spark jobs with its execute request's message id, from the cell's own thread
    (Spark's job tags are thread-local, like the cell's code).

    A cell that starts while the SparkContext is still starting gets its tag once Spark is ready, in
    its own thread: the launcher's placeholders for ``spark``/``sc`` call :meth:`spark_ready` after
    they have waited for it.  Nothing here makes a cell wait for Spark."""

    def __init__(self, kernel) -> None:  # noqa: ANN001 (ipykernel's kernel)
        self.kernel = kernel
        self.tag: str | None = None
        self.applied = False

    @staticmethod
    def context():  # noqa: ANN205
        from pyspark import SparkContext

        return SparkContext._active_spark_context

    def pre_run_cell(self, _info=None) -> None:  # noqa: ANN001
        try:
            msg_id = ((self.kernel.get_parent("shell") or {}).get("header") or {}).get("msg_id") or ""
            safe = "".join(ch for ch in msg_id if ch in CELL_CHARS)[:100]
            self.tag, self.applied = (CELL_TAG + safe if safe else None), False
            self.spark_ready()
        except Exception as e:  # noqa: BLE001 - progress is a nicety: never fail the user's cell for it
            print(f"yardlab: the cell's Spark jobs are not tagged for progress: {e}", file=sys.stderr)

    def spark_ready(self) -> None:
        """Apply the running cell's tag if Spark is up and it is not applied yet (the cell's thread)."""
        if self.tag and not self.applied:
            sc = self.context()
            if sc is not None:
                sc.addJobTag(self.tag)
                self.applied = True

    def post_run_cell(self, _result=None) -> None:  # noqa: ANN001
        tag, applied = self.tag, self.applied
        self.tag, self.applied = None, False
        sc = self.context()
        if tag and applied and sc is not None:
            try:
                sc.removeJobTag(tag)
            except Exception:  # noqa: BLE001, S110 - the context may be stopping
                pass


def hook_spark_placeholders(gp, tagger_of) -> None:  # noqa: ANN001
    """After the launcher's ``spark``/``sc`` placeholder has waited for Spark (in the cell's thread),
    let the running cell's tagger apply its tag."""
    placeholder = gp.WaitingForSparkSessionToBeInitialized
    original = placeholder.__getattr__

    def __getattr__(self, name: str):  # noqa: ANN202, N807
        value = original(self, name)
        tagger = tagger_of()
        if tagger is not None and not name.startswith("_"):
            try:
                tagger.spark_ready()
            except Exception as e:  # noqa: BLE001
                print(f"yardlab: the cell's Spark jobs are not tagged for progress: {e}", file=sys.stderr)
        return value

    placeholder.__getattr__ = __getattr__


def kernel_class():  # noqa: ANN201
    """ipykernel's IPython kernel, with each cell's Spark jobs tagged (see :class:`CellTagger`) and the
    ``%%scala`` cell magic."""
    from ipykernel.ipkernel import IPythonKernel

    class YardlabKernel(IPythonKernel):
        tagger: CellTagger | None = None

        def __init__(self, **kwargs) -> None:  # noqa: ANN003
            super().__init__(**kwargs)
            tagger = CellTagger(self)
            self.shell.events.register("pre_run_cell", tagger.pre_run_cell)
            self.shell.events.register("post_run_cell", tagger.post_run_cell)
            YardlabKernel.tagger = tagger
            try:
                import yardlab_scala

                yardlab_scala.register(self.shell)
            except Exception as e:  # noqa: BLE001 - Python cells work without Scala ones
                print(f"yardlab: no %%scala cells in this kernel: {e}", file=sys.stderr)
            mark("kernel_init")

    return YardlabKernel


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    first_marks()
    # YARN localizes --files into the container's working folder as symlinks; Python puts the
    # resolved folder of this script (the NodeManager's file cache) on sys.path, not that one
    sys.path.insert(0, os.getcwd())
    import launch_ipykernel as gp  # shipped with --files

    mark("imports")
    lower, upper = gp._validate_port_range(args.port_range)
    if os.environ.get("YARDLAB_HDFS_AUTH") == "token":
        hdfs_token_config(os.getcwd())
        mark("hdfs_token")
    ip = os.environ.get("YARDLAB_KERNEL_IP", "0.0.0.0")  # noqa: S104 - a real cluster needs EG to reach us
    cluster_type = "spark"
    if args.kind in ("python", "r"):
        from pyspark.sql import SparkSession

        mark("spark_start")
        SparkSession.builder.getOrCreate()  # registers the YARN ApplicationMaster; not exposed
        mark("spark_ready")
        cluster_type = "none"
    elif args.init_mode == "none":
        cluster_type = "none"

    connection_file = gp.determine_connection_file(args.kernel_id)
    gp.setup_server_listener(connection_file, os.getpid(), lower, upper, args.response_address,
                             args.kernel_id, args.public_key, cluster_type, None)
    mark("listener")  # the forked listener sends the connection info to EG right away
    if args.kind == "r":
        import yardlab_irkernel  # shipped with --files

        code = yardlab_irkernel.run(connection_file, ip)
        try:
            os.remove(connection_file)
        except OSError:
            pass
        sys.exit(code)
    if cluster_type == "spark":
        signal.signal(signal.SIGUSR2, gp.cancel_spark_jobs)
        try:
            repl_class_dir(os.getcwd())
        except Exception as e:  # noqa: BLE001 - Scala cells then run DataFrame code, not closures
            print(f"yardlab: Scala closures will not reach executors: {e}", file=sys.stderr)
    kernel_name = gp.DEFAULT_KERNEL_CLASS_NAME
    if cluster_type == "spark":
        # gateway_provisioners imports the kernel class by name: this module's, as the running script
        cls = kernel_class()
        sys.modules["__main__"].YardlabKernel = cls
        kernel_name = "__main__.YardlabKernel"
        hook_spark_placeholders(gp, lambda: cls.tagger)
        watch_spark(gp)
    gp.start_ipython({"__name__": "__main__"}, cluster_type=cluster_type, connection_file=connection_file, ip=ip,
                     kernel_class_name=kernel_name)


if __name__ == "__main__":
    main()
