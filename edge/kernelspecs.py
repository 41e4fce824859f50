"""Enterprise Gateway kernelspecs for kernels that run on YARN in cluster mode.

Enterprise Gateway 3.3's wheel ships no kernelspecs, and its own Spark launcher breaks on
pyspark 4 (it reads ``SparkSession._wrapped``).  yardlab writes its own: a ``kernel.json`` using
EG's ``YarnClusterProcessProxy``, a ``bin/run.sh`` that calls ``spark-submit --master yarn
--deploy-mode cluster --proxy-user $KERNEL_USERNAME`` with a per-kernelspec properties file, and
``scripts/`` holding yardlab's launcher (and its ``%%scala`` cell magic) plus the two launcher modules of gateway_provisioners
(``launch_ipykernel.py`` and the real ``server_listener.py``), shipped to the container with
``--files`` (``--py-files`` would make the driver warn in the first cell).  Every spec is written to
a temporary folder and renamed into place, so EG never sees half a kernelspec.

Spark properties have their home here both ways: :func:`spark_properties` maps an environment's
resources to spark-submit properties, and before a launch :func:`read_spark_properties` and
:func:`requested_resources` turn a kernelspec's properties back into the YARN containers it will ask for.
"""
from __future__ import annotations

import filecmp
import json
import math
import os
import re
import shutil
import tempfile
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

YARN_PROCESS_PROXY = "enterprise_gateway.services.processproxies.yarn.YarnClusterProcessProxy"
LAUNCHER = Path(__file__).parent / "kernel_launcher" / "yardlab_kernel.py"
#: shipped beside the launcher: the %%scala cell magic it registers, the R kernel it runs for kind r
SHIPPED = [Path(__file__).parent / "kernel_launcher" / name for name in ("yardlab_scala.py", "yardlab_irkernel.py")]

RUN_SH = r"""#!/usr/bin/env bash
# Written by yardlab: submits this kernel to YARN in cluster mode as the requesting user.
set -euo pipefail
# when this script started (wall clock), for the start waterfall the launcher records in the kernel
t_runsh="$(date +%s.%N)"
SPEC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${KERNEL_ID:?KERNEL_ID is not set}"
: "${KERNEL_USERNAME:?KERNEL_USERNAME is not set}"
if [[ ! "$KERNEL_USERNAME" =~ ^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$ ]]; then
  echo "refusing a kernel for user name '$KERNEL_USERNAME'" >&2
  exit 1
fi
# HdfsCLI config for the kernel: the `hdfs` package then works in the user's home out of the box
# (hdfs.Config().get_client()); it holds no secret, only where WebHDFS is and who the user is
hdfscli="${TMPDIR:-/tmp}/yardlab-hdfscli-$KERNEL_USERNAME.cfg"
printf '[global]\ndefault.alias = yardlab\n\n[yardlab.alias]\nurl = %s\nuser = %s\nroot = /user/%s\n' \
  "$YARDLAB_WEBHDFS_URL" "$KERNEL_USERNAME" "$KERNEL_USERNAME" > "$hdfscli"
impersonation=()
if [ "${EG_IMPERSONATION_ENABLED:-False}" = "True" ]; then
  impersonation=(--proxy-user "$KERNEL_USERNAME")
fi
# A faster start, each step skipped when the kernelspec's properties say otherwise:
fast=()
if grep -q '^spark.yarn.jars local:' "$SPEC_DIR/spark.properties" && [ -z "${PYSPARK_ARCHIVES_PATH:-}" ]; then
  # Spark is installed at the same path on every node (spark.yarn.jars is local: already), so are
  # pyspark.zip and py4j: no upload to the staging folder, no localization into the containers
  py4j=("$SPARK_HOME"/python/lib/py4j-*-src.zip)
  export PYSPARK_ARCHIVES_PATH="local:$SPARK_HOME/python/lib/pyspark.zip,local:${py4j[0]}"
fi
if [ ! -e "${SPARK_CONF_DIR:-$SPARK_HOME/conf}/hive-site.xml" ] && [ ! -e "${HADOOP_CONF_DIR:-/nonexistent}/hive-site.xml" ] \
    && ! grep -q '^spark.security.credentials.hive.enabled ' "$SPEC_DIR/spark.properties"; then
  # no Hive metastore here: no Hive delegation token to get (spark-submit loads HiveConf to find out)
  fast+=(--conf spark.security.credentials.hive.enabled=false)
fi
if ! grep -q '^spark.scheduler.minRegisteredResourcesRatio ' "$SPEC_DIR/spark.properties"; then
  # the SparkContext is ready once the AM has registered, not once the executors have: the first
  # job's planning overlaps their start (YARN's default 0.8 makes SparkContext() wait for them)
  fast+=(--conf spark.scheduler.minRegisteredResourcesRatio=0)
fi
# spark-submit's two client JVMs (spark-class's launcher, then SparkSubmit) only build a command and
# submit (spark.yarn.submit.waitAppCompletion is false): C1 alone and the serial collector start
# them with less CPU (about 2.5 s less to submission on the 2-core stack; bench/README.md)
export SPARK_SUBMIT_OPTS="${SPARK_SUBMIT_OPTS:-} -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
export SPARK_LAUNCHER_OPTS="${SPARK_LAUNCHER_OPTS:-} -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
exec "$SPARK_HOME/bin/spark-submit" \
  --master yarn --deploy-mode cluster \
  --name "$KERNEL_ID" \
  --properties-file "$SPEC_DIR/spark.properties" \
  --conf "spark.yarn.tags=yardlab,user:$KERNEL_USERNAME,kernel:$KERNEL_ID,env:$YARDLAB_ENVIRONMENT" \
  --files "$SPEC_DIR/scripts/launch_ipykernel.py,$SPEC_DIR/scripts/server_listener.py,$SPEC_DIR/scripts/yardlab_scala.py,$SPEC_DIR/scripts/yardlab_irkernel.py,$hdfscli#hdfscli.cfg" \
  --conf spark.yarn.appMasterEnv.HDFSCLI_CONFIG=hdfscli.cfg --conf spark.executorEnv.HDFSCLI_CONFIG=hdfscli.cfg \
  --conf "spark.yarn.appMasterEnv.YARDLAB_T_RUNSH=$t_runsh" \
  "${fast[@]}" "${impersonation[@]}" \
  "$SPEC_DIR/scripts/yardlab_kernel.py" --kind "$YARDLAB_KERNEL_KIND" "$@"
"""


@dataclass
class KernelSite:
    """Where things are on the edge node, as kernels launched from it need them."""

    #: SPARK_HOME (the pyspark package folder when Spark comes from the wheel)
    spark_home: str
    #: JAVA_HOME for spark-submit on the edge node
    java_home: str
    #: HADOOP_CONF_DIR holding core-site.xml and yarn-site.xml of the cluster
    hadoop_conf_dir: str
    #: the ResourceManager web address EG polls (yarn-api-client wants the base, e.g. http://127.0.0.1:8088)
    yarn_endpoint: str
    #: gateway_provisioners' kernel-launchers folder (holds python/scripts and shared/scripts)
    launchers_dir: str
    #: the Python interpreter kernels run with inside YARN containers (PYSPARK_PYTHON)
    python: str
    #: WebHDFS address kernels use through the `hdfs` package (HdfsCLI config)
    webhdfs_url: str = "http://127.0.0.1:9870"
    #: address the kernel binds inside its container (0.0.0.0 on a real cluster)
    kernel_ip: str = "0.0.0.0"  # noqa: S104
    #: Spark properties every kernel gets (spark.yarn.jars and the like)
    spark_conf: dict[str, str] = field(default_factory=dict)


@dataclass
class KernelSpecRequest:
    """One kernelspec to write: its name, what users see, and its Spark resources."""

    name: str
    display_name: str
    kind: str = "pyspark"  # pyspark | python | r
    environment: str = "builtin"
    spark_conf: dict[str, str] = field(default_factory=dict)
    #: builtin | shared | personal (personal ones are offered to their owner only)
    visibility: str = "builtin"
    owner: str | None = None


def _properties(site: KernelSite, req: KernelSpecRequest) -> dict[str, str]:
    props = {
        "spark.yarn.submit.waitAppCompletion": "false",
        "spark.yarn.maxAppAttempts": "1",
        "spark.yarn.appMasterEnv.PYSPARK_PYTHON": site.python,
        "spark.executorEnv.PYSPARK_PYTHON": site.python,
        "spark.yarn.appMasterEnv.YARDLAB_KERNEL_IP": site.kernel_ip,
        "spark.yarn.appMasterEnv.JAVA_HOME": site.java_home,
        "spark.executorEnv.JAVA_HOME": site.java_home,
        "spark.driver.memory": "512m",
        "spark.executor.memory": "512m",
        "spark.executor.instances": "1",
        # the driver's and executors' own network (RPC, block transfers, the REPL's compiled classes) answers
        # only peers holding the application's secret, which YARN hands to its containers alone; and it is
        # encrypted. Without it, anyone who finds a driver's port may pose as an executor or fetch its classes
        "spark.authenticate": "true",
        "spark.network.crypto.enabled": "true",
    }
    props.update(site.spark_conf)
    if req.kind in ("python", "r"):
        # Spark refuses zero static executors; dynamic allocation from zero asks for none until a
        # job runs, and nothing in the user's namespace starts one
        props.pop("spark.executor.instances", None)
        props.update({"spark.dynamicAllocation.enabled": "true",
                      "spark.dynamicAllocation.shuffleTracking.enabled": "true",
                      "spark.dynamicAllocation.minExecutors": "0",
                      "spark.dynamicAllocation.initialExecutors": "0",
                      "spark.dynamicAllocation.maxExecutors": "1"})
    props.update(req.spark_conf)
    return props


# -- Spark properties: an environment's resources -> spark-submit, and a kernelspec's back to YARN sizes ------
def spark_properties(kind: str, resources: dict, archive: str | None = None,
                     jars: list[str] | None = None) -> dict[str, str]:
    """The spark-submit properties of an environment: its resources (as environments.request checks
    them), given ``archive`` (the packed environment's URI) that archive unpacked as ``./env``, and
    given ``jars`` (URIs of its Maven packages on HDFS) those jars on the driver's and executors' class path."""
    conf = {"spark.yarn.queue": resources["queue"],
            "spark.driver.memory": f"{resources['driver_memory_mb']}m",
            "spark.driver.cores": str(resources["driver_cores"])}
    if kind == "pyspark":
        conf.update({"spark.executor.memory": f"{resources['executor_memory_mb']}m",
                     "spark.executor.cores": str(resources["executor_cores"])})
        dyn = resources.get("dynamic_allocation")
        if dyn:
            conf.update({"spark.dynamicAllocation.enabled": "true",
                         "spark.dynamicAllocation.shuffleTracking.enabled": "true",
                         "spark.dynamicAllocation.minExecutors": str(dyn["min"]),
                         "spark.dynamicAllocation.initialExecutors": str(dyn["min"]),
                         "spark.dynamicAllocation.maxExecutors": str(dyn["max"])})
        else:
            conf["spark.executor.instances"] = str(resources["executor_instances"])
            conf["spark.dynamicAllocation.enabled"] = "false"
    if archive:
        conf.update(archive_properties(archive))
    if jars:
        # spark.yarn.dist.jars, not spark.jars: Spark 4.0.1's YARN Client (prepareLocalResources) localizes
        # every spark.yarn.dist.jars entry into the containers and records it in spark.yarn.secondary.jars,
        # which populateClasspath puts on the class path of the ApplicationMaster (the driver, in cluster
        # mode) and of every executor; hdfs:// URIs on the cluster's FS are not copied to the staging folder,
        # and being 0644 under 0755 folders they are cached by the NodeManagers as PUBLIC resources.
        # spark.jars would in addition be served by the driver to the executors per application.
        conf["spark.yarn.dist.jars"] = ",".join(jars)
    return conf


def archive_properties(archive: str) -> dict[str, str]:
    """The Python of a packed environment (``archive``: its URI) for the driver and the executors: YARN
    localizes it into each container as ``./env`` (once per NodeManager when it is public on HDFS)."""
    return {"spark.yarn.dist.archives": f"{archive}#env",
            "spark.yarn.appMasterEnv.PYSPARK_PYTHON": "./env/bin/python",
            "spark.executorEnv.PYSPARK_PYTHON": "./env/bin/python"}


def read_spark_properties(kernels_dir: str | os.PathLike | None, name: str) -> dict[str, str]:
    """The properties a kernelspec under ``kernels_dir`` was written with ({} when there are none)."""
    if not kernels_dir or not name or "/" in name or name.startswith("."):
        return {}
    props: dict[str, str] = {}
    try:
        for line in (Path(kernels_dir) / name / "spark.properties").read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.strip().partition(" ")
                props[key] = value.strip()
    except OSError:
        pass
    return props


def yardlab_metadata(spec: dict) -> dict:
    """The ``yardlab`` metadata of a kernelspec as EG lists it ({} for a spec yardlab did not write)."""
    meta = ((spec.get("spec") or {}).get("metadata") or {}).get("yardlab")
    return meta if isinstance(meta, dict) else {}


def _mb(value: str | None, default: int) -> int:
    """Spark memory strings (512m, 2g, 1024) in MB."""
    if not value:
        return default
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)b?\s*", value.lower())
    if not m:
        return default
    n, unit = int(m.group(1)), m.group(2) or "m"
    return {"k": max(1, n // 1024), "m": n, "g": n * 1024, "t": n * 1024 * 1024}[unit]


def container_mb(memory_mb: int, overhead: str | None, min_alloc: int) -> int:
    """What YARN grants for a Spark container: memory + overhead (max(384, 10%)), rounded up."""
    over = _mb(overhead, 0) if overhead else max(384, int(memory_mb * 0.10))
    total = memory_mb + over
    return int(math.ceil(total / min_alloc) * min_alloc)


def requested_resources(props: dict[str, str], meta: dict, min_allocation_mb: int) -> dict:
    """What a kernel with these Spark properties asks of YARN at its start: its queue (``meta``'s when
    the properties name none), driver and executor containers, executors, memory and vcores in all."""
    queue = props.get("spark.yarn.queue", meta.get("queue", "default"))
    driver = container_mb(_mb(props.get("spark.driver.memory"), 1024), props.get("spark.driver.memoryOverhead"),
                          min_allocation_mb)
    executor = container_mb(_mb(props.get("spark.executor.memory"), 1024),
                            props.get("spark.executor.memoryOverhead"), min_allocation_mb)
    if props.get("spark.dynamicAllocation.enabled", "false") == "true":
        instances = int(props.get("spark.dynamicAllocation.initialExecutors",
                                  props.get("spark.dynamicAllocation.minExecutors", "0")) or 0)
    else:
        instances = int(props.get("spark.executor.instances", "2") or 0)
    vcores = int(props.get("spark.driver.cores", "1")) + instances * int(props.get("spark.executor.cores", "1"))
    return {"queue": queue, "driverMB": driver, "executorMB": executor, "executors": instances,
            "needMB": driver + instances * executor, "needVCores": vcores,
            "largestMB": max(driver, executor if instances else 0)}


# -- writing kernelspecs ------------------------------------------------------------------------------------
def _same_files(new: Path, old: Path) -> bool:
    """Whether folder ``old`` holds exactly the files of ``new``, byte for byte, with the same modes."""
    if not old.is_dir():
        return False

    def listing(root: Path) -> dict[str, int]:
        return {str(p.relative_to(root)): p.stat().st_mode for p in root.rglob("*")}

    files = listing(new)
    if files != listing(old):
        return False
    return all(filecmp.cmp(new / rel, old / rel, shallow=False) for rel in files if (new / rel).is_file())


def write_kernelspec(kernels_dir: str | os.PathLike, site: KernelSite, req: KernelSpecRequest) -> Path:
    """Write (or replace) one kernelspec atomically; return its folder."""
    kernels_dir = Path(kernels_dir)
    kernels_dir.mkdir(parents=True, exist_ok=True)
    launchers = Path(site.launchers_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{req.name}-", dir=kernels_dir))
    try:
        (tmp / "bin").mkdir()
        (tmp / "scripts").mkdir()
        run_sh = tmp / "bin" / "run.sh"
        run_sh.write_text(RUN_SH)
        run_sh.chmod(0o755)
        shutil.copy(LAUNCHER, tmp / "scripts" / "yardlab_kernel.py")
        for path in SHIPPED:
            shutil.copy(path, tmp / "scripts" / path.name)
        shutil.copy(launchers / "python" / "scripts" / "launch_ipykernel.py", tmp / "scripts")
        # the copy beside launch_ipykernel.py in the wheel is a stub; the real listener is shared/
        shutil.copy(launchers / "shared" / "scripts" / "server_listener.py", tmp / "scripts")
        props = _properties(site, req)
        (tmp / "spark.properties").write_text(
            "".join(f"{k} {v}\n" for k, v in sorted(props.items())))
        spec = {
            "display_name": req.display_name,
            "language": "R" if req.kind == "r" else "python",
            # "lazy" names what the launcher does: gateway_provisioners 0.5's launch_ipykernel creates the
            # SparkSession in a thread for "eager" and "lazy" alike (only "none" differs), so the kernel
            # answers while Spark starts and `spark`/`sc` wait for it on first use
            "argv": [str(kernels_dir / req.name / "bin" / "run.sh"),
                     "--kernel-id", "{kernel_id}",
                     "--response-address", "{response_address}",
                     "--public-key", "{public_key}",
                     "--port-range", "{port_range}",
                     "--spark-context-initialization-mode", "lazy"],
            "env": {
                "SPARK_HOME": site.spark_home,
                "JAVA_HOME": site.java_home,
                "HADOOP_CONF_DIR": site.hadoop_conf_dir,
                "YARN_CONF_DIR": site.hadoop_conf_dir,
                "PYSPARK_PYTHON": site.python,
                "YARDLAB_KERNEL_KIND": req.kind,
                "YARDLAB_ENVIRONMENT": req.environment,
                "YARDLAB_WEBHDFS_URL": site.webhdfs_url,
            },
            "metadata": {
                "process_proxy": {"class_name": YARN_PROCESS_PROXY,
                                  "config": {"yarn_endpoint": site.yarn_endpoint}},
                "yardlab": {"kind": req.kind, "environment": req.environment, "visibility": req.visibility,
                            "owner": req.owner, "queue": _properties(site, req).get("spark.yarn.queue", "default")},
            },
        }
        (tmp / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
        final = kernels_dir / req.name
        if _same_files(tmp, final):
            # left as it is: its files' times say when it last changed, and a warm kernel started
            # since then is one of it (an edge restart writes the built-in specs again, unchanged)
            shutil.rmtree(tmp, ignore_errors=True)
            return final
        if final.exists():
            old = kernels_dir / f".{req.name}-old"
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


BUILTIN = [
    KernelSpecRequest(name="yardlab_pyspark", display_name="PySpark on YARN", kind="pyspark"),
    KernelSpecRequest(name="yardlab_python", display_name="Python 3 on YARN (no executors)", kind="python"),
    KernelSpecRequest(name="yardlab_r", display_name="R on YARN", kind="r"),
]


def install_builtin(kernels_dir: str | os.PathLike, site: KernelSite, archive: str | None = None) -> list[Path]:
    """Write the built-in kernelspecs (PySpark, plain Python and R, all on YARN).  The Python ones run on
    ``site.python`` until the edge has built the base environment, then on its archive (``archive``, its
    URI); the R kernel's launcher stays on ``site.python`` (the base is Python's)."""
    conf = archive_properties(archive) if archive else {}
    return [write_kernelspec(kernels_dir, site, dataclasses.replace(req, spark_conf=conf)
                             if req.kind in ("pyspark", "python") else req) for req in BUILTIN]
