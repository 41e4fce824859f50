"""yardlab: JupyterHub + JupyterLab on a Hadoop/YARN cluster.

The three Python folders at the top of the repository are mapped into the ``yardlab`` namespace
(there is no ``yardlab/`` folder): ``edge/`` -> ``yardlab.edge``, ``hub_service/`` ->
``yardlab.hub_service``, ``server_extension/`` -> ``yardlab.server_extension``.  The prebuilt
JupyterLab extension (``npm run build``, output in ``build/labextension``) ships as data files.
"""
from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
LABEXT_NAME = "yardlab"
LABEXT_BUILD = HERE / "build" / "labextension"

FOLDERS = {"edge": "yardlab.edge", "hub_service": "yardlab.hub_service",
           "server_extension": "yardlab.server_extension"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for folder, name in FOLDERS.items():
        packages.append(name)
        package_dir[name] = folder
        for sub in find_packages(folder):
            packages.append(f"{name}.{sub}")
            package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return packages, package_dir


def _data_files() -> list[tuple[str, list[str]]]:
    files = [("etc/jupyter/jupyter_server_config.d", ["jupyter-config/jupyter_server_config.d/yardlab.json"])]
    if LABEXT_BUILD.exists():
        dest = f"share/jupyter/labextensions/{LABEXT_NAME}"
        for path in sorted(LABEXT_BUILD.rglob("*")):
            if path.is_file():
                rel = path.parent.relative_to(LABEXT_BUILD)
                files.append((f"{dest}/{rel}".rstrip("/.") if str(rel) != "." else dest,
                              [str(path.relative_to(HERE))]))
    return files


packages, package_dir = _packages()

# the `yardlab` command and the Python clients (yardlab.edge.client): every install has the command,
# so what it imports is installed whatever the extra ([lab] in the single-user image, [hub], [edge])
CLI = ["tornado>=6.4", "traitlets>=5.14", "requests>=2.31", "tqdm>=4.66"]
EDGE = ["tornado>=6.4", "traitlets>=5.14", "jupyterhub>=5.2", "prometheus_client>=0.20", "uvloop>=0.19",
        "SQLAlchemy>=2.0", "hdfs>=2.7", "packaging>=24", "requests>=2.31",
        # Kerberos (Kerberos.keytab set): the edge's login and SPNEGO; builds against MIT krb5 (libkrb5-dev)
        "gssapi>=1.8",
        # environments: uv resolves and installs, venv-pack packs, py-rattler solves conda specs
        "uv>=0.5", "venv-pack>=0.2", "py-rattler>=0.20",
        # Kafka: the edge asks the brokers for their metadata (KafkaService); pure Python, no librdkafka
        "kafka-python>=3.0"]
HUB = ["jupyterhub>=5.2", "tornado>=6.4", "traitlets>=5.14", "SQLAlchemy>=2.0", "requests>=2.31", "Jinja2>=3.1"]
LAB = ["jupyter_server>=2.14", "jupyterlab>=4.2,<5", "tornado>=6.4"]
STACK = ["pyspark==4.0.1", "jupyterhub==6.1.1", "jupyterlab==4.6.6", "ipykernel>=6.29",
         "pycryptodomex>=3.20", "jupyter_client>=8",
         # the hub's login through the stack's OpenID Connect provider (YARDLAB_AUTH=oidc)
         "oauthenticator==17.4.0"]
TEST = ["pytest>=8", "pytest-timeout>=2.3", "pytest-jupyter[server]>=0.10", "playwright>=1.48",
        "websocket-client>=1.8", "kafka-python>=3.0", "hypothesis>=6.100", "helm-python-sdk==0.2.2",
        "kubernetes-validate==1.37.0", "yamllint==1.38.0"]

setup(
    name="yardlab",
    version="0.1.0",
    description="Interactive data science on Hadoop/YARN: JupyterHub service, JupyterLab sidebar, edge service",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages,
    package_dir=package_dir,
    include_package_data=True,
    # the hub service's page templates and static files (static/vendor/ is copied from
    # node_modules by `make install`: the chart library, bundled through package.json)
    package_data={"yardlab.hub_service": ["templates/*.html", "static/*.js", "static/*.css", "static/vendor/*"]},
    data_files=_data_files(),
    install_requires=CLI,
    extras_require={"edge": EDGE, "hub": HUB, "lab": LAB, "stack": STACK, "test": TEST,
                    "all": sorted(set(EDGE + HUB + LAB + STACK + TEST))},
    entry_points={"console_scripts": ["yardlab-edge = yardlab.edge.app:main",
                                    "yardlab = yardlab.edge.cli.main:main"]},
    zip_safe=False,
)
