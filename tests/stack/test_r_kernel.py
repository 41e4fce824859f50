"""The "R on YARN" kernel (real stack: IRkernel in a YARN container of alice's, started through the edge)."""
from __future__ import annotations

import threading
import time

import requests

FINAL = {"FINISHED", "FAILED", "KILLED"}


def test_the_r_kernelspec_is_offered_to_users(stack):
    """What the Lab server's Launcher lists comes from the edge's /gateway/api/kernelspecs."""
    r = requests.get(f"{stack['edge_url']}/gateway/api/kernelspecs",
                     headers={"Authorization": f"token {stack['user_tokens']['bob']}"}, timeout=30)
    assert r.status_code == 200
    spec = r.json()["kernelspecs"]["yardlab_r"]["spec"]
    assert (spec["display_name"], spec["language"]) == ("R on YARN", "R")


def test_an_r_kernel_runs_on_yarn_as_the_user_and_ends_with_its_application(stack, edge_kernel, rm):
    kc = edge_kernel("alice", "yardlab_r")
    alice = {"Authorization": f"token {stack['user_tokens']['alice']}"}
    reply = kc.execute('cat(R.version.string, "\\n")\n'
                       'cat("USER", Sys.getenv("USER"), "\\n")\n'
                       'cat("OS", system("id -un", intern = TRUE), "\\n")\n'
                       "x <- c(3, 4); sqrt(sum(x^2))")
    assert reply.status == "ok", reply
    lines = dict(line.split(" ", 1) for line in reply.stdout.strip().splitlines())
    assert lines["R"].startswith("version 4."), reply.stdout
    assert lines["USER"].strip() == "alice"
    # the container's OS account is the NodeManager's (yl-yarn on the split stack): YARN's
    # DefaultContainerExecutor runs every container as it; the kernel's identity is alice's YARN application
    print("R kernel's OS account:", lines["OS"].strip())
    assert "[1] 5" in reply.result
    apps = rm.apps_tagged(f"kernel:{kc.kernel_id}")
    assert len(apps) == 1 and apps[0]["user"] == "alice" and apps[0]["state"] == "RUNNING"
    assert "yardlab" in apps[0]["applicationTags"].split(",")

    failed = kc.execute('stop("no such thing")')
    assert failed.status == "error" and "no such thing" in failed.error
    # counted like every kernel: the edge lists it among alice's
    mine = requests.get(f"{stack['edge_url']}/gateway/api/kernels", headers=alice, timeout=30).json()
    assert {(k["id"], k["name"]) for k in mine} >= {(kc.kernel_id, "yardlab_r")}

    # an interrupt goes EG -> the launcher's listener -> the launcher -> R
    timer = threading.Timer(3, lambda: requests.post(
        f"{stack['edge_url']}/gateway/api/kernels/{kc.kernel_id}/interrupt", headers=alice, timeout=30))
    timer.start()
    t0 = time.monotonic()
    slept = kc.execute("Sys.sleep(120)", timeout=90)
    timer.join()
    assert time.monotonic() - t0 < 60, "the interrupt did not reach R"
    assert kc.execute("cat(1 + 1)").stdout == "2"  # the kernel lives on
    print("R interrupt: reply", slept.status, "after", round(time.monotonic() - t0, 1), "s")

    kc.shutdown()  # the kernel's shutdown ends R, then the launcher, then the application
    assert rm.wait_state(apps[0]["id"], FINAL, timeout=60)["finalStatus"] != "FAILED"
