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


def kernel_file(connection_file: str, ip: str) -> str:
    """Write R's own copy of the listener's connection file, listening on ``ip``, and return its path.

    The listener writes 0.0.0.0 into the connection file, and IRkernel (unlike ipykernel) takes no
    other address than the file's.  The file itself is left as it is: the listener's forked process
    reads it to send EG the connection info, possibly while this runs, and rewriting it in place let
    it read a half-written file, die, and leave EG waiting out its launch timeout."""
    with open(connection_file) as f:
        info = json.load(f)
    info["ip"] = ip
    base, ext = os.path.splitext(connection_file)
    path = f"{base}-r{ext or '.json'}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    return path


def run(connection_file: str, ip: str) -> int:
    """Run IRkernel until it exits (a shutdown request, a kill); return its exit code.  SIGINT and SIGTERM
    sent to this launcher (by the listener, by YARN) are passed on to R."""
    own = kernel_file(connection_file, ip)
    child = subprocess.Popen(r_command(own))  # noqa: S603 - a fixed command, no shell

    def forward(signum: int, _frame) -> None:  # noqa: ANN001
        if child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        while True:
            try:
                return child.wait()
            except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for old Pythons
                continue
    finally:
        try:
            os.remove(own)
        except OSError:
            pass
