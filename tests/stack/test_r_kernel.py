"""The "R on YARN" kernel (real stack: IRkernel in a YARN container of alice's, started through the edge)."""
from __future__ import annotations

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

    kc.shutdown()  # the kernel's shutdown ends R, then the launcher, then the application
    assert rm.wait_state(apps[0]["id"], FINAL, timeout=60)["finalStatus"] != "FAILED"
