"""JupyterHub configuration of the yardlab local stack (started by dev/stack.py).

Reads the running stack's endpoints from the file named by $YARDLAB_STACK_JSON.  Single-user
servers run JupyterLab with the yardlab extensions as local processes, each in its own home under
the stack folder; their kernels go to Enterprise Gateway, which runs them on YARN as the hub user.
"""
# ruff: noqa: F821  (get_config is provided by JupyterHub)
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from jupyterhub.auth import Authenticator, LocalAuthenticator

c = get_config()  # type: ignore[name-defined]

info = json.loads(Path(os.environ["YARDLAB_STACK_JSON"]).read_text())
state = Path(info["state_dir"])
ports = info["ports"]
DEMO_USERS = {name: u["password"] for name, u in info["users"].items()}
SPLIT = bool((info.get("accounts") or {}).get("split"))
if SPLIT:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import accounts  # dev/accounts.py


class SplitAccounts:
    """On the split stack every hub user has an OS account (a LocalAuthenticator that creates them):
    their Lab server runs as it, and Hadoop finds their groups through it, so the service account
    may act only for members of yl-users (hadoop.proxyuser.<service>.groups)."""

    def add_system_user(self, user):
        try:
            accounts.ensure_hub_user(user.name, state / "home" / user.name)
        except accounts.AccountError as e:
            # the hub user exists without an account: no Lab server runs for it (the spawn hook
            # says why) and Hadoop refuses to act for it (not in yl-users)
            self.log.warning("no OS account for hub user %r: %s", user.name, e)

    def delete_user(self, user):
        super().delete_user(user)
        if SPLIT and user.name not in DEMO_USERS:
            try:
                accounts.remove_hub_user(user.name)
            except accounts.AccountError as e:
                self.log.warning("the OS account of deleted hub user %r stays: %s", user.name, e)


class DemoAuthenticator(SplitAccounts, LocalAuthenticator if SPLIT else Authenticator):
    """The demo logins of the local stack: each user's password is their name."""

    async def authenticate(self, handler, data):  # noqa: ARG002
        name = (data or {}).get("username", "")
        if name in DEMO_USERS and data.get("password") == DEMO_USERS[name]:
            return name
        return None


c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = ports["hub_public"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = ports["hub_internal"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{ports['hub_proxy_api']}"
# the launcher runs the proxy (its token in CONFIGPROXY_AUTH_TOKEN), so a hub restart leaves it and
# everyone's routes up; and the hub leaves people's Lab servers running when it stops, and finds
# them again when it starts (the launcher stops them through the API when the stack stops)
c.ConfigurableHTTPProxy.should_start = False
c.JupyterHub.db_url = f"sqlite:///{state / 'hub' / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "hub" / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "hub" / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = False

#: the hub group whose members are yardlab admins (the yardlab-admin role below); with the OpenID
#: Connect login the provider's `groups` claim fills it at each login
ADMIN_GROUP = "yardlab-admins"
# the demo users exist from the start (the launcher makes API tokens for them), whatever the login
c.Authenticator.allowed_users = set(DEMO_USERS)
OIDC = info.get("auth") == "oidc"
#: the hub admins by name (the demo login's); with OpenID Connect nobody is one by name
ADMINS = [] if OIDC else sorted(name for name, u in info["users"].items() if u["admin"])
if OIDC:
    # the stack's OpenID Connect provider (dev/oidc/provider.mjs): its accounts are the stack's users,
    # a hub user is made at their first login, and admin power comes from the groups claim only
    from oauthenticator.generic import GenericOAuthenticator, LocalGenericOAuthenticator

    class OidcAuthenticator(SplitAccounts, LocalGenericOAuthenticator if SPLIT else GenericOAuthenticator):
        """Login at the local stack's OpenID Connect provider (an OS account per user on the split stack)."""

    oidc = info["oidc"]
    c.JupyterHub.authenticator_class = OidcAuthenticator
    c.GenericOAuthenticator.client_id = oidc["client_id"]
    c.GenericOAuthenticator.client_secret = json.loads(Path(oidc["settings"]).read_text())["client"]["secret"]
    c.GenericOAuthenticator.oauth_callback_url = oidc["redirect_uri"]
    c.GenericOAuthenticator.authorize_url = oidc["authorization_endpoint"]
    c.GenericOAuthenticator.token_url = oidc["token_endpoint"]
    c.GenericOAuthenticator.userdata_url = oidc["userinfo_endpoint"]
    c.GenericOAuthenticator.login_service = "yardlab SSO"
    c.GenericOAuthenticator.scope = ["openid", "profile", "groups"]
    c.GenericOAuthenticator.username_claim = "preferred_username"
    c.GenericOAuthenticator.allow_all = True
    c.GenericOAuthenticator.manage_groups = True
    c.GenericOAuthenticator.auth_state_groups_key = "oauth_user.groups"
    c.GenericOAuthenticator.admin_groups = {ADMIN_GROUP}
else:
    c.JupyterHub.authenticator_class = DemoAuthenticator
    c.Authenticator.admin_users = set(ADMINS)

EDGE = "yardlab-edge"
SERVICE = "yardlab"
c.JupyterHub.services = [
    # the edge service: an external service (started by the stack launcher, not by the hub);
    # the proxy routes /services/yardlab-edge/ to it
    {"name": EDGE, "url": f"http://127.0.0.1:{ports['edge_http']}", "api_token": info["edge_service_token"],
     "display": False,
     # browsers log in to it (the Spark UI) as its OAuth client service-yardlab-edge; its tokens carry
     # the edge's access scope and, for admins, the admin scope
     "oauth_no_confirm": True,
     "oauth_client_allowed_scopes": [f"access:services!service={EDGE}", "custom:yardlab:admin"]},
    # the admin pages and public API: a managed service (the hub starts and stops it); its
    # OAuth tokens (browser sessions) may carry the edge's access scope and the admin scope,
    # never more than the user has, and are forwarded to the edge as the caller's own token
    {"name": SERVICE, "url": f"http://127.0.0.1:{ports['hub_service_http']}",
     "command": [sys.executable, "-m", "yardlab.hub_service"],
     "cwd": str(state / "hub-service"),
     "environment": {"YARDLAB_EDGE_URL": info["edge_url"],
                     "YARDLAB_SERVICE_DB_URL": f"sqlite:///{state / 'hub-service' / 'samples.sqlite'}",
                     # short on the local stack, so the history has points within seconds
                     "YARDLAB_SAMPLE_INTERVAL": str(info.get("sample_interval", 5))},
     "oauth_no_confirm": True,
     "oauth_client_allowed_scopes": [f"access:services!service={EDGE}", "custom:yardlab:admin"]},
    # used by the launcher and the test suite to make tokens and drive servers
    {"name": "yardlab-stack", "api_token": info["hub_service_token"]},
]
c.JupyterHub.custom_scopes = {
    "custom:yardlab:admin": {
        "description": "Act as a yardlab administrator: see and kill every user's YARN applications.",
    },
}
if not OIDC:  # the hub refuses groups of its own when the login manages them (manage_groups)
    # the groups whose members get warm kernels on the test suite's stack (dev/edge_config.py)
    c.JupyterHub.load_groups = {"warm-pool": {"users": []}, "warm-short": {"users": []}}
c.JupyterHub.load_roles = [
    # every user may use the edge API with their tokens
    {"name": "user", "scopes": ["self", f"access:services!service={EDGE}", f"access:services!service={SERVICE}"]},
    {"name": "yardlab-admin", "scopes": ["custom:yardlab:admin"], "users": ADMINS, "groups": [ADMIN_GROUP]},
    # resolve tokens (names, groups, roles) and list who the admins are now (ACL reconciliation)
    {"name": EDGE, "services": [EDGE], "scopes": ["read:users:name", "read:users:groups", "read:roles:users",
                                                  "list:users", "list:groups", "read:groups:name",
                                                  "read:roles:groups"]},
    # the hub service's own token samples the whole cluster through the edge (read-only there)
    {"name": SERVICE, "services": [SERVICE], "scopes": [f"access:services!service={EDGE}", "custom:yardlab:admin"]},
    {"name": "yardlab-stack", "services": ["yardlab-stack"],
     "scopes": ["admin:users", "tokens", "admin:servers", "access:servers", "read:users", "servers",
                "admin:groups"]},
]

if SPLIT:
    # each user's Lab server runs as an OS account of their own (The Littlest JupyterHub's model),
    # made when the hub user is (or on first spawn) with a 0700 home under the stack folder; the
    # hub itself runs as root
    def make_account(spawner):
        accounts.ensure_hub_user(spawner.user.name, state / "home" / spawner.user.name)

    c.LocalAuthenticator.create_system_users = True
    c.JupyterHub.spawner_class = "localprocess"  # jupyterhub.spawner.LocalProcessSpawner
    c.Spawner.pre_spawn_hook = make_account
    c.Spawner.notebook_dir = "~"
else:
    c.JupyterHub.spawner_class = "simple"  # jupyterhub.spawner.SimpleLocalProcessSpawner
    c.SimpleLocalProcessSpawner.home_dir_template = str(state / "home" / "{username}")
    c.Spawner.args = ["--allow-root"]  # the local stack runs as one OS account
c.Spawner.cmd = [os.environ["YARDLAB_SINGLEUSER"]]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# Lab servers' own token reaches the edge (and carries admin power for admins only: the scopes
# are intersected with the user's own)
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", f"access:services!service={EDGE}",
                                 f"access:services!service={SERVICE}", "custom:yardlab:admin"]
c.Spawner.environment = {
    # kernels run on YARN through the edge's /gateway/ (Enterprise Gateway is behind it), with the
    # server's own hub token: the edge knows who the kernels are for
    "JUPYTER_GATEWAY_URL": info["edge_url"] + "/gateway",
    "JUPYTER_GATEWAY_AUTH_TOKEN": lambda spawner: spawner.api_token,
    "JUPYTER_GATEWAY_REQUEST_TIMEOUT": "320",
    "JUPYTER_GATEWAY_CONNECT_TIMEOUT": "30",
    "KERNEL_LAUNCH_TIMEOUT": "300",
    "KERNEL_USERNAME": lambda spawner: spawner.user.name,
    "HADOOP_CONF_DIR": info["hadoop_conf_dir"],
    "YARDLAB_EDGE_URL": info["edge_url"],
    # `yardlab usage` in a Lab terminal reaches the hub service through the hub's proxy
    "YARDLAB_SERVICE_URL": f"http://127.0.0.1:{ports['hub_public']}/services/{SERVICE}",
}
