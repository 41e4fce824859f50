"""The Kubernetes side (helm/) checked offline: no cluster, no helm binary, no network.

- the yardlab-storage chart: linted (strict) and rendered by Helm's own Go SDK (helm_python),
  every rendered manifest validated against the Kubernetes schemas (kubernetes-validate);
- helm/jupyterhub-values.yaml (for the z2jh jupyterhub chart, which is not rendered here):
  yamllint, then its services, roles and scopes through JupyterHub's own validation, its
  extraConfig run against a Spawner, and the Kubernetes objects KubeSpawner and the chart build
  from it (user pod volumes, network policy) validated like the chart's;
- agreement with the local stack's JupyterHub config (dev/jupyterhub_config.py);
- the edge node files (config example against the edge's real traits, systemd unit) and the
  Dockerfiles.
"""
from __future__ import annotations

import asyncio
import configparser
import json
import re
import subprocess
from importlib.metadata import metadata
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import helm_python
import kubernetes_validate
import pytest
import yaml
from jupyterhub import orm, roles, scopes
from jupyterhub.services.service import Service
from jupyterhub.spawner import Spawner
from kubernetes_validate.utils import latest_version
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader
from yamllint import linter
from yamllint.config import YamlLintConfig

from yardlab.edge.app import EdgeApp
from yardlab.edge.warm import WarmPool

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "helm"
CHART = HELM / "yardlab-storage"
VALUES_FILE = HELM / "jupyterhub-values.yaml"
RELEASE, NAMESPACE = "yardlab-storage", "jhub"  # what helm/README.md installs
# the oldest Kubernetes the chart allows (Chart.yaml kubeVersion >=1.25) is long out of support;
# check a still-common one and the newest schemas kubernetes-validate ships
KUBE_VERSIONS = ("1.30.0", latest_version())
YAMLLINT = YamlLintConfig("extends: relaxed\nrules:\n  line-length: {max: 120}\n")

EDGE = "yardlab-edge"
ADMIN_SCOPE = "custom:yardlab:admin"
WITH_NFS_AND_SEED = {"nfs": {"enabled": True, "server": "nfs.test.internal"}, "publicSeed": {"enabled": True}}


# --- helpers ---------------------------------------------------------------------------------------

def render(values: dict | None = None) -> list[dict]:
    """The chart's manifests (NOTES.txt left out) as parsed objects."""
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return [doc for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]


def validate_k8s(obj: dict) -> None:
    """Validate against the strict (no unknown fields) schemas of every version in KUBE_VERSIONS."""
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']} invalid for Kubernetes {version}: "
                        f"{e.message} at {'/'.join(map(str, e.path))}")


def yamllint_problems(path: Path) -> list[str]:
    return [f"{path.name}:{p.line}:{p.column} {p.level} {p.message}"
            for p in linter.run(path.read_text(), YAMLLINT, str(path))]


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES_FILE.read_text())


@pytest.fixture(scope="module")
def edge_url(values) -> str:
    return values["hub"]["services"][EDGE]["url"]


class KubeSpawner(Spawner):
    """Stands in for kubespawner.KubeSpawner (not installed here) to receive KubeSpawner config."""

    async def start(self):  # pragma: no cover - never started
        raise NotImplementedError

    async def stop(self):  # pragma: no cover
        raise NotImplementedError

    async def poll(self):  # pragma: no cover
        raise NotImplementedError


# --- the yardlab-storage chart ---------------------------------------------------------------------

@pytest.mark.parametrize("chart_values", [None, WITH_NFS_AND_SEED], ids=["defaults", "nfs+seed"])
def test_storage_chart_lints_clean_in_strict_mode(chart_values):
    report = helm_python.lint(CHART, chart_values, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    assert report["errors"] == []
    # severity 1 is "info" (e.g. "icon is recommended"); strict fails on 2 (warning) and 3 (error)
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_storage_chart_refuses_misspelled_values():
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(WITH_NFS_AND_SEED)
        for bad in ({"nfs": {"enabeld": True}}, {"shared": {"size": "lots"}},
                    {"publicSeed": {"image": {"pullPolicy": "Sometimes"}}}):
            with pytest.raises(helm_python.HelmValuesError):
                chart.validate_schema(bad)


@pytest.mark.parametrize("chart_values, kinds", [
    (None, ["PersistentVolumeClaim"] * 2),
    (WITH_NFS_AND_SEED, ["ConfigMap", "Job"] + ["PersistentVolume"] * 2 + ["PersistentVolumeClaim"] * 2),
], ids=["defaults", "nfs+seed"])
def test_storage_chart_renders_valid_manifests(chart_values, kinds):
    docs = render(chart_values)
    assert sorted(d["kind"] for d in docs) == kinds
    for doc in docs:
        validate_k8s(doc)
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "yardlab-storage-0.1.0"


def test_storage_claims_are_read_write_many_and_kept():
    docs = render()
    for volume, size in (("shared", "100Gi"), ("public", "50Gi")):
        claim = one(docs, "PersistentVolumeClaim", f"{RELEASE}-{volume}")
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
        assert claim["spec"]["resources"]["requests"]["storage"] == size
        assert "storageClassName" not in claim["spec"]  # empty value: the cluster's default class
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "annotations" not in render({"keepOnUninstall": False})[0]["metadata"]


def test_storage_class_values():
    docs = render({"shared": {"size": "1Ti", "storageClassName": "cephfs"}, "public": {"size": "1Gi",
                                                                                       "storageClassName": "-"}})
    assert one(docs, "PersistentVolumeClaim", f"{RELEASE}-shared")["spec"]["storageClassName"] == "cephfs"
    assert one(docs, "PersistentVolumeClaim", f"{RELEASE}-public")["spec"]["storageClassName"] == ""


def test_storage_names_follow_the_release():
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(WITH_NFS_AND_SEED, name="lab", namespace="team-a")
    docs = [d for p, t in rendered.items() if not p.endswith("NOTES.txt") for d in yaml.safe_load_all(t) if d]
    names = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert names == [("ConfigMap", "lab-yardlab-storage-course"), ("Job", "lab-yardlab-storage-public-seed"),
                     ("PersistentVolume", "team-a-lab-yardlab-storage-public"),
                     ("PersistentVolume", "team-a-lab-yardlab-storage-shared"),
                     ("PersistentVolumeClaim", "lab-yardlab-storage-public"),
                     ("PersistentVolumeClaim", "lab-yardlab-storage-shared")]


def test_seed_job_copies_the_course_into_the_public_volume(tmp_path):
    """The course ConfigMap holds every file of the repository's course/ as it is, the Job mounts it read-only
    at /seed, and its command (run here with sh) lays the course out in the volume, again and again alike,
    leaving the volume's other files alone."""
    docs = render(WITH_NFS_AND_SEED)
    course = ROOT / "course"
    shipped = {p.relative_to(course).as_posix(): p for p in sorted(course.rglob("*")) if p.is_file()}
    assert len([k for k in shipped if k.endswith(".ipynb")]) >= 5 and "datasets/iris.csv" in shipped
    data = one(docs, "ConfigMap", f"{RELEASE}-course")["data"]
    assert {k: v.encode() for k, v in data.items()} == {k.replace("/", "__"): p.read_bytes() for k, p in shipped.items()}
    assert sum(len(v.encode()) for v in data.values()) < 1024 * 1024 * 0.9  # a ConfigMap holds at most 1 MiB
    job = one(docs, "Job", f"{RELEASE}-public-seed")
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == f"{RELEASE}-course")
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert (mount["mountPath"], mount["readOnly"]) == ("/seed", True)
    # the mounted tree, as the kubelet lays out the items, then the command against it
    seed, public = tmp_path / "seed", tmp_path / "public"
    for item in volume["configMap"]["items"]:
        (seed / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (seed / item["path"]).write_text(data[item["key"]])
    public.mkdir()
    (public / "course").mkdir()
    (public / "course" / "mine.ipynb").write_text("{}")
    command = pod["containers"][0]["command"]
    script = command[-1].replace("/seed/", f"{seed}/").replace("[ -d /seed/", f"[ -d {seed}/")
    for _ in range(2):
        done = subprocess.run([*command[:-1], script], env={"PUBLIC_DIR": str(public), "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        for rel, path in shipped.items():
            top, _, name = rel.rpartition("/")
            assert (public / (top or "course") / name).read_bytes() == path.read_bytes(), rel
    assert (public / "course" / "mine.ipynb").read_text() == "{}"


def test_nfs_volumes_are_bound_to_the_claims():
    docs = render(WITH_NFS_AND_SEED)
    for volume, path in (("shared", "/exports/yardlab/shared"), ("public", "/exports/yardlab/public")):
        claim = one(docs, "PersistentVolumeClaim", f"{RELEASE}-{volume}")
        pv = one(docs, "PersistentVolume", claim["spec"]["volumeName"])
        # both sides of the binding: the claim names the volume, the volume reserves the claim
        assert pv["spec"]["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                          "namespace": NAMESPACE, "name": claim["metadata"]["name"]}
        # "" on both: no StorageClass, so no provisioner (and no default class) gets in between
        assert pv["spec"]["storageClassName"] == claim["spec"]["storageClassName"] == ""
        assert pv["spec"]["accessModes"] == claim["spec"]["accessModes"] == ["ReadWriteMany"]
        assert pv["spec"]["capacity"]["storage"] == claim["spec"]["resources"]["requests"]["storage"]
        assert pv["spec"]["nfs"] == {"server": "nfs.test.internal", "path": path}
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_nfs_needs_a_server():
    with helm_python.Chart.load(CHART) as chart, pytest.raises(helm_python.HelmRenderError, match="nfs.server"):
        chart.render({"nfs": {"enabled": True, "server": ""}}, name=RELEASE, namespace=NAMESPACE)


def test_seed_job_is_the_only_writer_of_the_public_volume(values):
    assert not [d for d in render() if d["kind"] == "Job"]  # off by default
    job = one(render(WITH_NFS_AND_SEED), "Job", f"{RELEASE}-public-seed")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    pod = job["spec"]["template"]["spec"]
    public = next(v for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName")
                  == f"{RELEASE}-public")
    assert public["persistentVolumeClaim"]["readOnly"] is False
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == public["name"])
    assert mount["readOnly"] is False
    assert {"name": "PUBLIC_DIR", "value": mount["mountPath"]} in pod["containers"][0]["env"]
    assert pod["securityContext"]["runAsUser"] == values["singleuser"].get("uid", 1000)  # z2jh's user
    # ...while user pods get it read-only, on the volume and on the mount
    storage = values["singleuser"]["storage"]
    user_volume = next(v for v in storage["extraVolumes"]
                       if v["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-public")
    assert user_volume["persistentVolumeClaim"]["readOnly"] is True
    user_mount = next(m for m in storage["extraVolumeMounts"] if m["name"] == user_volume["name"])
    assert user_mount["readOnly"] is True


# --- helm/jupyterhub-values.yaml ------------------------------------------------------------------

@pytest.mark.parametrize("path", [VALUES_FILE, CHART / "values.yaml", CHART / "Chart.yaml"], ids=lambda p: p.name)
def test_yaml_files_pass_yamllint(path):
    assert yamllint_problems(path) == []


def test_hub_services(values):
    services = values["hub"]["services"]
    assert set(services) == {EDGE, "yardlab"}
    edge = services[EDGE]
    assert "command" not in edge and "apiToken" not in edge  # external; z2jh generates the token
    # browsers log in to the edge for the Spark UI: its OAuth tokens may carry the admin scope
    assert edge["oauth_no_confirm"] is True
    assert set(edge["oauth_client_allowed_scopes"]) == {f"access:services!service={EDGE}", ADMIN_SCOPE}
    assert urlsplit(edge["url"]).scheme == "http" and urlsplit(edge["url"]).port == 8765
    admin = services["yardlab"]
    assert admin["command"] == ["python", "-m", "yardlab.hub_service"]
    assert urlsplit(admin["url"]).port == 8181
    assert admin["environment"]["YARDLAB_EDGE_URL"] == f"{edge['url']}/services/{EDGE}"
    assert set(admin["oauth_client_allowed_scopes"]) == {f"access:services!service={EDGE}", ADMIN_SCOPE}
    # the managed service's port is reachable: hub Service port and network policy ingress
    assert {"name": "yardlab", "port": 8181, "targetPort": 8181} in values["hub"]["service"]["extraPorts"]
    assert [p["port"] for rule in values["hub"]["networkPolicy"]["ingress"] for p in rule["ports"]] == [8181]
    # every key is a field JupyterHub accepts (it raises "No such service field" otherwise);
    # z2jh adds `name` from the key and `api_token` from its Secret
    fields = set(Service.class_traits(input=True))
    for name, spec in services.items():
        assert set(spec) | {"name", "api_token"} <= fields, f"{name}: {set(spec) - fields}"


def test_hub_image_and_services_need_yardlab_in_the_hub_image(values):
    assert values["hub"]["image"]["name"].endswith("/k8s-hub")
    assert "yardlab.hub_service" in (HELM / "images" / "Dockerfile.hub").read_text()


def test_custom_scope_and_roles(values):
    config = values["hub"]["config"]
    custom = config["JupyterHub"]["custom_scopes"]
    assert list(custom) == [ADMIN_SCOPE]
    load_roles = values["hub"]["loadRoles"]
    assert load_roles["user"]["scopes"] == ["self", f"access:services!service={EDGE}",
                                            "access:services!service=yardlab"]
    assert load_roles["yardlab-admin"]["scopes"] == [ADMIN_SCOPE]
    assert load_roles["yardlab-admin"]["users"] == config["Authenticator"]["admin_users"]  # one YAML anchor
    assert load_roles[EDGE] == {
        "description": load_roles[EDGE]["description"],
        "scopes": ["read:users:name", "read:users:groups", "read:roles:users", "list:users", "list:groups",
                   "read:groups:name", "read:roles:groups"], "services": [EDGE]}
    assert config["KubeSpawner"]["server_token_scopes"] == [
        "users:activity!user", "access:servers!server", f"access:services!service={EDGE}",
        "access:services!service=yardlab", ADMIN_SCOPE]
    assert load_roles["yardlab"] == {
        "description": load_roles["yardlab"]["description"],
        "scopes": [f"access:services!service={EDGE}", ADMIN_SCOPE], "services": ["yardlab"]}

    # JupyterHub's own checks: the custom scope definition, then every role (name, scopes and
    # filters) as the hub creates it at startup, and the server token and OAuth client scopes
    scopes.define_custom_scopes(custom)
    db = orm.new_session_factory("sqlite://")()
    try:
        for name, role in load_roles.items():  # z2jh: the key is the name
            roles.create_role(db, {"name": name, **{k: v for k, v in role.items() if k in
                                                      ("description", "scopes")}})
        scopes._check_scopes_exist(config["KubeSpawner"]["server_token_scopes"], who_for="server tokens")
        scopes._check_scopes_exist(values["hub"]["services"]["yardlab"]["oauth_client_allowed_scopes"])
    finally:
        db.close()


def hub_config_with(values: dict, authenticator_class: str) -> Config:
    """The hub's traitlets config as z2jh builds it from hub.config and hub.extraConfig, with
    ``authenticator_class`` chosen."""
    c = Config(json.loads(json.dumps(values["hub"]["config"])))
    c.JupyterHub.authenticator_class = authenticator_class
    for _, source in sorted(values["hub"]["extraConfig"].items()):
        exec(compile(source, "extraConfig", "exec"), {"c": c})
    return c


@pytest.mark.parametrize("name, cls_name", [("github", "GitHubOAuthenticator"),
                                            ("generic-oauth", "GenericOAuthenticator")])
def test_oauth_examples_build_from_one_fragment(values, name, cls_name):
    """Both OAuth examples, built as the hub builds them (its authenticator entry points, the config
    applied by traitlets): one OAuthenticator fragment gives both the callback URL and the groups."""
    from jupyterhub.app import JupyterHub

    config = values["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == "github"  # the example in force
    c = hub_config_with(values, name)
    hub = JupyterHub(config=c)
    cls = hub.authenticator_class
    assert cls.__name__ == cls_name and cls.__module__.startswith("oauthenticator.")
    auth = cls(config=c, parent=hub)
    fragment = config["OAuthenticator"]
    assert auth.oauth_callback_url == fragment["oauth_callback_url"]
    assert auth.oauth_callback_url.endswith("/hub/oauth_callback")
    assert auth.manage_groups is True
    assert auth.admin_groups == {"yardlab-admins"} and auth.allowed_groups == {"yardlab-users"}
    assert auth.admin_users == {"admin-user"}
    own = config[cls_name]
    assert auth.client_id == own["client_id"] and auth.client_secret == "REPLACE-in-secrets-yaml"
    # the yardlab-admins group holds the role that gives the admin scope
    assert "yardlab-admins" in values["hub"]["loadRoles"]["yardlab-admin"]["groups"]
    if name == "github":
        assert auth.allowed_organizations and auth.populate_teams_in_auth_state and "read:org" in auth.scope
        org = sorted(auth.allowed_organizations)[0]
        teams = {"teams": [{"slug": "yardlab-admins", "organization": {"login": org.upper()}},
                           {"slug": "yardlab-users", "organization": {"login": org}}]}
        assert asyncio.run(auth.get_user_groups(teams)) == {"yardlab-admins", "yardlab-users"}
        # a team of any other organisation (anyone can make one, named as they like) is no group
        theirs = {"teams": [{"slug": "yardlab-admins", "organization": {"login": "mallory-org"}},
                            {"slug": "yardlab-users", "organization": {"login": org + "-x"}},
                            {"slug": "yardlab-admins"}]}
        assert asyncio.run(auth.get_user_groups(theirs)) == set()
    else:
        for key in ("authorize_url", "token_url", "userdata_url"):
            assert getattr(auth, key) == own[key] and own[key].startswith("https://"), key
        assert {"openid", "groups"} <= set(auth.scope) and auth.username_claim == "preferred_username"
        assert asyncio.run(auth.get_user_groups({"oauth_user": {"groups": ["yardlab-users"]}})) == {"yardlab-users"}
    text = VALUES_FILE.read_text()
    # the trial alternative is documented, commented out
    assert re.search(r"^\s*#\s*authenticator_class: dummy$", text, re.M)
    assert re.search(r"^\s*#\s*authenticator_class: generic-oauth$", text, re.M)


def test_single_user_servers_use_the_edge_as_gateway(values, edge_url):
    env = values["singleuser"]["extraEnv"]
    assert env["JUPYTER_GATEWAY_URL"] == f"{edge_url}/services/{EDGE}/gateway"
    assert env["YARDLAB_EDGE_URL"] == f"{edge_url}/services/{EDGE}"
    assert env["JUPYTER_GATEWAY_REQUEST_TIMEOUT"] == "320"
    assert env["KERNEL_LAUNCH_TIMEOUT"] == "300"
    # jupyter_server forces request_timeout >= KERNEL_LAUNCH_TIMEOUT + pad; keep ours above it
    assert int(env["JUPYTER_GATEWAY_REQUEST_TIMEOUT"]) > int(env["KERNEL_LAUNCH_TIMEOUT"])
    assert all(isinstance(v, str) for v in env.values())  # Kubernetes env values are strings
    assert values["singleuser"]["image"]["name"].endswith("/singleuser")
    assert values["singleuser"]["defaultUrl"] == "/lab"


def test_extra_config_compiles_and_gives_the_server_token_to_the_gateway_client(values):
    snippets = values["hub"]["extraConfig"]
    for key, source in sorted(snippets.items()):
        compile(source, f"hub.extraConfig.{key}", "exec")
    # run them as z2jh does (after singleuser.extraEnv became c.KubeSpawner.environment), and
    # also with nothing set before; then let JupyterHub build a server's environment
    for preset in (True, False):
        c = Config()
        if preset:
            c.KubeSpawner.environment = dict(values["singleuser"]["extraEnv"])
        for _, source in sorted(snippets.items()):
            exec(compile(source, "extraConfig", "exec"), {"c": c})
        spawner = KubeSpawner(
            config=c, api_token="the-servers-hub-token", oauth_client_id="jupyterhub-user-alice",
            user=SimpleNamespace(name="alice", escaped_name="alice", url="/user/alice/"),
            hub=SimpleNamespace(public_host="", api_url="http://hub:8081/hub/api", base_url="/hub/"))
        env = spawner.get_env()
        assert env["JUPYTER_GATEWAY_AUTH_TOKEN"] == env["JUPYTERHUB_API_TOKEN"] == "the-servers-hub-token"
        assert env["KERNEL_USERNAME"] == "alice"
        if preset:
            assert env["JUPYTER_GATEWAY_URL"] == values["singleuser"]["extraEnv"]["JUPYTER_GATEWAY_URL"]


def test_user_pods_mount_home_shared_and_public(values):
    """The pod KubeSpawner builds from these values (volumes and mounts as z2jh assembles them)."""
    singleuser = values["singleuser"]
    storage = singleuser["storage"]
    assert storage["type"] == "dynamic"  # z2jh's per-user claim for the home
    claims = {v["persistentVolumeClaim"]["claimName"] for v in storage["extraVolumes"]}
    chart_claims = {d["metadata"]["name"] for d in render() if d["kind"] == "PersistentVolumeClaim"}
    assert claims == chart_claims
    mounts = {m["mountPath"]: m for m in storage["extraVolumeMounts"]}
    assert set(mounts) == {"/home/jovyan/shared", "/home/jovyan/public"}
    assert not mounts["/home/jovyan/shared"].get("readOnly", False)
    assert mounts["/home/jovyan/public"]["readOnly"] is True
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jupyter-alice"},
        "spec": {
            "containers": [{
                "name": "notebook",
                "image": f"{singleuser['image']['name']}:{singleuser['image']['tag']}",
                "env": [{"name": k, "value": v} for k, v in singleuser["extraEnv"].items()],
                "volumeMounts": [{"name": "volume-alice", "mountPath": storage["homeMountPath"]},
                                 *storage["extraVolumeMounts"]],
            }],
            "volumes": [{"name": "volume-alice", "persistentVolumeClaim": {"claimName": "claim-alice"}},
                        *storage["extraVolumes"]],
        },
    }
    validate_k8s(pod)


def test_network_policies_let_user_pods_reach_the_edge(values, edge_url):
    egress = values["singleuser"]["networkPolicy"]["egress"]
    assert {p["port"] for rule in egress for p in rule["ports"]} == {urlsplit(edge_url).port}
    for name, spec in (("singleuser", {"policyTypes": ["Egress"], "egress": egress}),
                       ("hub", {"policyTypes": ["Ingress"], "ingress": values["hub"]["networkPolicy"]["ingress"]})):
        validate_k8s({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name},
                      "spec": {"podSelector": {}, **spec}})
    validate_k8s({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hub"},
                  "spec": {"ports": [{"name": "hub", "port": 8081}, *values["hub"]["service"]["extraPorts"]]}})


LOCAL_STACK_INFO = {
    "state_dir": "/nonexistent/state", "eg_url": "http://127.0.0.1:1", "eg_token": "t", "hadoop_conf_dir": "/x",
    "edge_url": "http://127.0.0.1:2/services/yardlab-edge", "edge_service_token": "t", "hub_service_token": "t",
    "ports": {"hub_public": 1, "hub_internal": 2, "hub_proxy_api": 3, "edge_http": 4, "hub_service_http": 5},
    "users": {"admin": {"password": "p", "admin": True}, "guest": {"password": "p", "admin": False}},
}


def test_values_agree_with_the_local_stack(values, tmp_path, monkeypatch):
    """DESIGN: the JupyterHub config fragments in the values file are the ones the local stack runs."""
    info = tmp_path / "stack.json"
    info.write_text(json.dumps(LOCAL_STACK_INFO))
    monkeypatch.setenv("YARDLAB_STACK_JSON", str(info))
    monkeypatch.setenv("YARDLAB_CHP", "configurable-http-proxy")
    monkeypatch.setenv("YARDLAB_SINGLEUSER", "jupyterhub-singleuser")
    try:
        local = PyFileConfigLoader("jupyterhub_config.py", path=str(ROOT / "dev")).load_config()
    except KeyError as e:
        pytest.fail(f"dev/jupyterhub_config.py reads stack key {e}: add it to LOCAL_STACK_INFO in {__file__}")
    hub = values["hub"]
    assert local.JupyterHub.custom_scopes == hub["config"]["JupyterHub"]["custom_scopes"]
    assert local.Spawner.server_token_scopes == hub["config"]["KubeSpawner"]["server_token_scopes"]
    local_roles = {r["name"]: r for r in local.JupyterHub.load_roles}
    for name in ("user", "yardlab-admin", EDGE, "yardlab"):
        assert set(local_roles[name]["scopes"]) == set(hub["loadRoles"][name]["scopes"]), name
    for name in (EDGE, "yardlab"):
        assert local_roles[name]["services"] == hub["loadRoles"][name]["services"], name
    local_service = next(s for s in local.JupyterHub.services if s["name"] == "yardlab")
    assert local_service["oauth_client_allowed_scopes"] == hub["services"]["yardlab"]["oauth_client_allowed_scopes"]
    assert local_service["command"][1:] == hub["services"]["yardlab"]["command"][1:]  # -m yardlab.hub_service
    local_edge = next(s for s in local.JupyterHub.services if s["name"] == EDGE)
    assert local_edge["display"] == hub["services"][EDGE]["display"]
    local_env = local.Spawner.environment
    for key in ("JUPYTER_GATEWAY_REQUEST_TIMEOUT", "JUPYTER_GATEWAY_CONNECT_TIMEOUT", "KERNEL_LAUNCH_TIMEOUT"):
        assert local_env[key] == values["singleuser"]["extraEnv"][key], key


def test_local_oidc_login_is_the_generic_example(values, tmp_path, monkeypatch):
    """The local stack's OpenID Connect login (YARDLAB_AUTH=oidc) is the values' generic example
    pointed at the stack's own provider: same scopes, claims and groups."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"client": {"secret": "the-client-secret"}}))
    issuer = "http://127.0.0.1:6"
    info = tmp_path / "stack.json"
    info.write_text(json.dumps({**LOCAL_STACK_INFO, "auth": "oidc", "oidc": {
        "issuer": issuer, "settings": str(settings), "client_id": "yardlab-hub",
        "redirect_uri": "http://127.0.0.1:1/hub/oauth_callback", "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token", "userinfo_endpoint": f"{issuer}/me"}}))
    monkeypatch.setenv("YARDLAB_STACK_JSON", str(info))
    monkeypatch.setenv("YARDLAB_CHP", "configurable-http-proxy")
    monkeypatch.setenv("YARDLAB_SINGLEUSER", "jupyterhub-singleuser")
    local = PyFileConfigLoader("jupyterhub_config.py", path=str(ROOT / "dev")).load_config()
    generic = values["hub"]["config"]["GenericOAuthenticator"]
    fragment = values["hub"]["config"]["OAuthenticator"]
    cls = local.JupyterHub.authenticator_class
    auth = cls(config=local)
    assert isinstance(auth, __import__("oauthenticator.generic").generic.GenericOAuthenticator)
    assert auth.client_secret == "the-client-secret" and auth.token_url == f"{issuer}/token"
    assert set(auth.scope) == set(generic["scope"]) and auth.username_claim == generic["username_claim"]
    assert auth.auth_state_groups_key == generic["auth_state_groups_key"]
    assert auth.manage_groups is fragment["manage_groups"] and auth.admin_groups == set(fragment["admin_groups"])
    assert not auth.admin_users  # admins come from the groups claim only
    roles_ = {r["name"]: r for r in local.JupyterHub.load_roles}
    assert roles_["yardlab-admin"]["groups"] == values["hub"]["loadRoles"]["yardlab-admin"]["groups"]
    assert "load_groups" not in local.JupyterHub  # the hub refuses its own groups when the login manages them


# --- the edge node --------------------------------------------------------------------------------

def edge_config() -> Config:
    return PyFileConfigLoader("yardlab_edge_config.example.py", path=str(HELM / "edge")).load_config()


def test_edge_config_example_sets_real_traits():
    classes = {cls.__name__: cls for cls in [EdgeApp, *EdgeApp.classes]}
    config = edge_config()
    expected = {"EdgeApp": {"ip", "port", "base_url"}, "AuditLog": {"path"},
                "TokenIdentifier": {"hub_api_url", "hub_api_token"},
                "ResourceManagerClient": {"urls", "service_user"}, "AppSnapshot": {"poll_interval"},
                "Kerberos": {"keytab", "principal", "ccache"}, "JobService": {"credentials_max_lifetime"},
                "WarmPool": {"kernelspecs", "groups"}, "KafkaService": {"bootstrap_servers"},
                "EnvironmentService": {"maven_repositories"}}
    assert {section: set(traits) for section, traits in config.items()} == expected
    for section, traits in config.items():
        unknown = set(traits) - set(classes[section].class_trait_names(config=True))
        assert not unknown, f"{section} has no configurable {unknown} (yardlab-edge --help-all)"
    assert len(config.ResourceManagerClient.urls) == 2  # RM HA: both ResourceManagers
    # a Kerberized cluster: the edge's own keytab and principal, and the cache EG reads
    assert config.Kerberos.keytab.endswith(".keytab") and "@" in config.Kerberos.principal
    assert config.EdgeApp.base_url == f"/services/{EDGE}/"
    app = EdgeApp(config=config)  # traits accept the values (types, validators)
    assert app.port == config.EdgeApp.port
    # the warm pool's rules pass its validation (a wrong rule would stop the edge at start)
    pool = WarmPool(SimpleNamespace(on_warm_ended=[], on_warm_taken=[]), None, config=config)
    assert pool.kernelspecs == {"yardlab_pyspark": {"count": 1, "idle_seconds": 600.0}}


def test_edge_listens_where_the_hub_and_pods_look(edge_url, values):
    config = edge_config()
    assert config.EdgeApp.ip == "0.0.0.0"
    assert urlsplit(edge_url).port == config.EdgeApp.port
    assert urlsplit(config.TokenIdentifier.hub_api_url).path == "/hub/api"
    callback = values["hub"]["config"]["OAuthenticator"]["oauth_callback_url"]
    assert urlsplit(config.TokenIdentifier.hub_api_url).netloc == urlsplit(callback).netloc  # the public hub


def test_edge_systemd_unit():
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string((HELM / "edge" / "yardlab-edge.service").read_text())
    service = unit["Service"]
    exec_start = service["ExecStart"].split()
    assert Path(exec_start[0]).name == "yardlab-edge"
    assert exec_start[1:] == ["--config", "/etc/yardlab/yardlab_edge_config.py"]
    assert service["User"] == "yardlab"
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    writable = service["ReadWritePaths"].split()
    assert "/var/lib/yardlab" in writable
    # the audit log is written under a path the unit leaves writable
    audit_dir = str(Path(edge_config().AuditLog.path).parent)
    assert audit_dir in writable
    assert service["WorkingDirectory"] in writable
    assert unit["Install"]["WantedBy"] == "multi-user.target"


# --- images ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, extra", [("Dockerfile.hub", "hub"), ("Dockerfile.singleuser", "lab")])
def test_dockerfiles_install_the_wheel_with_its_extra(name, extra):
    text = (HELM / "images" / name).read_text()
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert re.search(r"^COPY .*yardlab-\*\.whl /tmp/wheels/$", text, re.M)
    assert f'"$1[{extra}]"' in text
    assert extra in metadata("yardlab").get_all("Provides-Extra")
