"""The "R on YARN" kernel without a cluster: its kernelspec, and the launcher's IRkernel child (a stand-in
R here) bound to the kernel address, receiving interrupts, its exit code passed on (the real R kernel
runs in tests/stack/test_r_kernel.py)."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from yardlab.edge import kernelspecs
from yardlab.edge.kernel_launcher import yardlab_irkernel as yr
from yardlab.edge.kernel_launcher import yardlab_kernel as yk


def site(tmp_path) -> kernelspecs.KernelSite:
    launchers = tmp_path / "launchers"
    for sub in ("python/scripts/launch_ipykernel.py", "shared/scripts/server_listener.py"):
        (launchers / sub).parent.mkdir(parents=True, exist_ok=True)
        (launchers / sub).write_text("# stand-in\n")
    return kernelspecs.KernelSite(spark_home="/spark", java_home="/java", hadoop_conf_dir="/conf",
                                  yarn_endpoint="http://127.0.0.1:8088", launchers_dir=str(launchers),
                                  python="/venv/bin/python")


def test_the_r_kernelspec_is_an_r_kernel_on_yarn_without_executors(tmp_path):
    paths = kernelspecs.install_builtin(tmp_path / "kernels", site(tmp_path))
    assert [p.name for p in paths] == ["yardlab_pyspark", "yardlab_python", "yardlab_r"]
    spec = json.loads((tmp_path / "kernels" / "yardlab_r" / "kernel.json").read_text())
    assert (spec["display_name"], spec["language"]) == ("R on YARN", "R")
    assert spec["env"]["YARDLAB_KERNEL_KIND"] == "r"
    assert spec["metadata"]["yardlab"]["kind"] == "r"
    assert spec["metadata"]["process_proxy"]["class_name"] == kernelspecs.YARN_PROCESS_PROXY
    props = kernelspecs.read_spark_properties(tmp_path / "kernels", "yardlab_r")
    assert props["spark.dynamicAllocation.initialExecutors"] == "0" and "spark.executor.instances" not in props
    assert (tmp_path / "kernels" / "yardlab_r" / "scripts" / "yardlab_irkernel.py").exists()
    assert yk._parse(["--kernel-id", "k", "--response-address", "1.2.3.4:5", "--public-key", "p",
                      "--kind", "r"]).kind == "r"


def test_the_r_command_is_irkernels_own(monkeypatch):
    monkeypatch.setenv(yr.R_ENV, "/opt/R/bin/R")
    assert yr.r_command("/tmp/k.json") == ["/opt/R/bin/R", "--no-echo", "--no-save", "--no-restore",
                                           "-e", "IRkernel::main()", "--args", "/tmp/k.json"]


def test_the_kernel_listens_on_the_launchers_address_in_its_own_file(tmp_path):
    """The listener's file stays as written: its forked process reads it while R is being started
    (rewriting it in place once let the listener read it half-written and EG wait 300 s in CI)."""
    conn = tmp_path / "kernel.json"
    written = json.dumps({"ip": "0.0.0.0", "shell_port": 1, "key": "k"})
    conn.write_text(written)
    conn.chmod(0o600)
    own = yr.kernel_file(str(conn), "127.0.0.1")
    assert own == str(tmp_path / "kernel-r.json")
    assert json.loads(open(own).read()) == {"ip": "127.0.0.1", "shell_port": 1, "key": "k"}
    assert os.stat(own).st_mode & 0o777 == 0o600
    assert conn.read_text() == written


FAKE_R = """#!{python}
import json, signal, sys, time
out = {out!r}
json.dump(sys.argv[1:], open(out + ".args", "w"))
def on_int(*_):
    open(out + ".int", "w").write("interrupted")
    sys.exit(7)
signal.signal(signal.SIGINT, on_int)
open(out + ".ready", "w").write("")
time.sleep(30)
sys.exit(3)
"""


def test_the_launcher_passes_interrupts_to_r_and_ends_with_it(tmp_path, monkeypatch):
    out = str(tmp_path / "r")
    fake = tmp_path / "R"
    fake.write_text(FAKE_R.format(python=sys.executable, out=out))
    fake.chmod(0o755)
    monkeypatch.setenv(yr.R_ENV, str(fake))
    conn = tmp_path / "kernel.json"
    conn.write_text(json.dumps({"ip": "0.0.0.0"}))
    stop_reading = threading.Event()
    seen: list[str] = []

    def read_like_the_listener() -> None:  # the forked listener reads the file while R starts
        while not stop_reading.is_set():
            seen.append(conn.read_text())

    reader = threading.Thread(target=read_like_the_listener, daemon=True)
    reader.start()
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def interrupt_when_ready() -> None:
        deadline = time.monotonic() + 20
        while not os.path.exists(out + ".ready") and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # what the listener does on an interrupt request

    threading.Thread(target=interrupt_when_ready, daemon=True).start()
    try:
        assert yr.run(str(conn), "127.0.0.1") == 7
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        stop_reading.set()
        reader.join()
    assert open(out + ".int").read() == "interrupted"
    assert json.load(open(out + ".args"))[-2:] == ["--args", str(tmp_path / "kernel-r.json")]
    assert not (tmp_path / "kernel-r.json").exists()  # R's copy goes with R
    assert seen and set(seen) == {json.dumps({"ip": "0.0.0.0"})}
