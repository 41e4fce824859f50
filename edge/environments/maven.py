"""JVM packages of an environment: Maven coordinates resolved with their dependencies by the real Maven.

The builder writes a small ``pom.xml`` naming the requested coordinates and the site's repositories,
and a ``settings.xml`` whose mirror sends every other repository to the first of them: dependency
POMs may declare repositories of their own (Spark's parent POM does), and Maven asks none the site
did not configure.  It runs ``mvn dependency:copy-dependencies`` with the repository layout, so every jar's group, artifact
and version are read from its path, not guessed from a file name.  What Spark's own jars already
carry is left out (Spark, Scala and Hadoop classes twice on one class path break in odd ways): any
artifact of the ``provided_groups`` and any artifact whose name a jar in ``$SPARK_HOME/jars`` has.
The jars kept are named by their sha256 and uploaded once (see builder.py).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

#: the dependency plugin, pinned: the build does not depend on what the super-POM of the Maven
#: installed on the edge node picks
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
#: the ids of the site's second and later repositories, which the mirror leaves alone: unguessable (per edge
#: process), because a POM may declare a repository of the same id and Maven would then ask the POM's URL
SITE_ID = f"site-{secrets.token_hex(8)}"


@dataclass(frozen=True)
class ResolvedJar:
    """One jar of a resolution: its coordinate, its file name and the sha256 that names it on HDFS."""

    coordinate: str
    file: str
    sha256: str
    #: where Maven put it, relative to the output folder (not part of the record)
    local: str = field(default="", compare=False)

    def as_json(self) -> dict:
        return {"coordinate": self.coordinate, "file": self.file, "sha256": self.sha256}


def pom_xml(coordinates: list[str], repositories: list[str]) -> str:
    """A pom whose dependencies are ``coordinates`` (exact g:a:v, checked by request.parse_maven)."""
    deps = ""
    for coordinate in coordinates:
        group, artifact, version = coordinate.split(":")
        deps += (f"    <dependency><groupId>{escape(group)}</groupId><artifactId>{escape(artifact)}</artifactId>"
                 f"<version>{escape(version)}</version></dependency>\n")
    ids = [(("central" if i == 0 else f"{SITE_ID}-{i}"), escape(url)) for i, url in enumerate(repositories)]
    repos = "".join(f"    <repository><id>{i}</id><url>{u}</url></repository>\n" for i, u in ids)
    plugin_repos = "".join(f"    <pluginRepository><id>{i}</id><url>{u}</url></pluginRepository>\n" for i, u in ids)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
            "  <modelVersion>4.0.0</modelVersion>\n"
            "  <groupId>yardlab.environment</groupId><artifactId>jvm-packages</artifactId><version>1</version>\n"
            "  <packaging>pom</packaging>\n"
            f"  <repositories>\n{repos}  </repositories>\n"
            f"  <pluginRepositories>\n{plugin_repos}  </pluginRepositories>\n"
            f"  <dependencies>\n{deps}  </dependencies>\n"
            "</project>\n")


def settings_xml(repositories: list[str]) -> str:
    """User settings whose one mirror stands for every repository but the site's own ones."""
    others = "".join(f",!{SITE_ID}-{i}" for i in range(1, len(repositories)))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">\n'
            f"  <mirrors><mirror><id>yardlab-site</id><mirrorOf>*{others}</mirrorOf>"
            f"<url>{escape(repositories[0])}</url></mirror></mirrors>\n"
            "</settings>\n")


def mvn_argv(mvn: str, pom: Path, settings: Path, local_repo: Path, output: Path) -> list[str]:
    """The Maven command that copies the runtime closure of the pom's dependencies into ``output``."""
    # -U: a release an earlier build could not reach (the repository was down) is asked for again
    return [mvn, "-B", "--no-transfer-progress", "-U", "-f", str(pom), "-s", str(settings),
            f"-Dmaven.repo.local={local_repo}",
            f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime", "-Dmdep.useRepositoryLayout=true",
            f"-DoutputDirectory={output}"]


def spark_jar_names(spark_home: str) -> list[str]:
    """File names of the jars Spark runs with (the driver's and executors' class path already)."""
    jars = Path(spark_home) / "jars"
    return sorted(p.name for p in jars.glob("*.jar")) if jars.is_dir() else []


def provided_by_spark(group: str, artifact: str, spark_jars: list[str], provided_groups: list[str]) -> bool:
    """Whether Spark's class path carries this artifact already (any version: never two on one path)."""
    if any(group == g or group.startswith(g + ".") for g in provided_groups):
        return True
    prefix = artifact + "-"
    return any(name.startswith(prefix) and name[len(prefix):len(prefix) + 1].isdigit() for name in spark_jars)


def collect(output: Path, spark_jars: list[str], provided_groups: list[str]) -> tuple[list[ResolvedJar], list[str]]:
    """The jars Maven copied (repository layout), split into those to ship and the coordinates left out."""
    kept: list[ResolvedJar] = []
    left_out: list[str] = []
    for path in sorted(output.rglob("*.jar")):
        parts = path.relative_to(output).parts
        if len(parts) < 4:
            continue  # not in the repository layout: nothing Maven wrote
        group, artifact, version = ".".join(parts[:-3]), parts[-3], parts[-2]
        coordinate = f"{group}:{artifact}:{version}"
        if provided_by_spark(group, artifact, spark_jars, provided_groups):
            left_out.append(coordinate)
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        kept.append(ResolvedJar(coordinate=coordinate, file=path.name, sha256=digest.hexdigest(),
                                local=str(path.relative_to(output))))
    return kept, left_out
