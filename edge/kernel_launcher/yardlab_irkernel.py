"""The "R on YARN" kernel: IRkernel run by yardlab's launcher inside the kernel's YARN container.

The YARN application stays what every yardlab kernel is (spark-submit in cluster mode, this Python
launcher in the ApplicationMaster, a SparkSession with no executors so the AM registers): Enterprise
Gateway's YarnClusterProcessProxy, the encrypted call-back with the connection info, the listener
relaying interrupts, the application tags and the edge's ledger see no difference.  Only the
kernel differs: instead of an IPython kernel, the launcher runs R's IRkernel (Debian's
r-base-core and r-cran-irkernel on the NodeManagers) as its child with the listener's connection
file, forwards SIGINT (an interrupt) and SIGTERM to it, and ends when it ends.

R has no Spark here: SparkR ships with Spark's own distributions, not with the pyspark wheel, and
neither SparkR nor sparklyr is a Debian package.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

#: the R binary (the environment variable names another one)
R_ENV = "YARDLAB_R"


def r_binary() -> str:
    return os.environ.get(R_ENV) or shutil.which("R") or "/usr/bin/R"


def r_command(connection_file: str, r: str | None = None) -> list[str]:
    """IRkernel's own kernelspec command (``R --slave -e IRkernel::main() --args {connection_file}``)."""
    return [r or r_binary(), "--no-echo", "--no-save", "--no-restore", "-e", "IRkernel::main()",
            "--args", connection_file]


def bind_to(connection_file: str, ip: str) -> None:
    """Make the kernel listen on ``ip``: the listener writes 0.0.0.0 into the connection file, and
    IRkernel (unlike ipykernel) takes no other address than the file's."""
    with open(connection_file) as f:
        info = json.load(f)
    info["ip"] = ip
    fd = os.open(connection_file, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)


def run(connection_file: str, ip: str) -> int:
    """Run IRkernel until it exits (a shutdown request, a kill); return its exit code.  SIGINT and SIGTERM
    sent to this launcher (by the listener, by YARN) are passed on to R."""
    bind_to(connection_file, ip)
    child = subprocess.Popen(r_command(connection_file))  # noqa: S603 - a fixed command, no shell

    def forward(signum: int, _frame) -> None:  # noqa: ANN001
        if child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        try:
            return child.wait()
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for old Pythons
            continue
