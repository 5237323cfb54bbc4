"""Fetch the Apache Kafka broker and its runtime dependencies from Maven Central.

Maven resolves ``org.apache.kafka:kafka_2.13`` transitively, so we never keep a
hand-written jar list. A marker file records a complete copy; a second call with
the marker present does not touch the network.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.localkafka.paths import distributions_dir

DEFAULT_KAFKA_VERSION = "4.1.1"
# Kafka 4.x logs through slf4j 1.7; this binding routes it into the Log4j 2 core
# that kafka_2.13 already brings, so our own log4j2.xml takes effect.
LOG4J_SLF4J_BINDING = ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3")
_MARKER = ".complete"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.mmbus.localkafka</groupId>
  <artifactId>kafka-broker-dist</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>{slf4j_group}</groupId>
      <artifactId>{slf4j_artifact}</artifactId>
      <version>{slf4j_version}</version>
    </dependency>
  </dependencies>
</project>
"""


class DistributionError(RuntimeError):
    """The broker jars could not be fetched; the message says what to fix."""


def libs_dir(version: str) -> Path:
    return distributions_dir() / version / "libs"


def is_fetched(version: str) -> bool:
    return (distributions_dir() / version / _MARKER).exists()


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_distribution(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Return the directory holding every runtime jar of the broker, fetching once."""
    target = distributions_dir() / version
    if is_fetched(version):
        return target / "libs"
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DistributionError(
            "Maven ('mvn') is not on PATH; install it (Debian: apt-get install maven) "
            "or point MMBUS_KAFKA_BOOTSTRAP_SERVERS at an existing broker."
        )
    # Several processes (pytest workers, `make run`) may ask at once: one fetches.
    with _exclusive(distributions_dir() / f".{version}.lock"):
        if is_fetched(version):
            return target / "libs"
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=distributions_dir()))
        try:
            pom = staging / "pom.xml"
            group, artifact, binding_version = LOG4J_SLF4J_BINDING
            pom.write_text(
                _POM.format(
                    version=version,
                    slf4j_group=group,
                    slf4j_artifact=artifact,
                    slf4j_version=binding_version,
                )
            )
            result = subprocess.run(
                [
                    mvn,
                    "-B",
                    "-q",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={staging / 'libs'}",
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
            if result.returncode != 0:
                tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
                raise DistributionError(
                    f"Maven could not fetch org.apache.kafka:kafka_2.13:{version} "
                    f"(exit {result.returncode}). Check that Maven Central is reachable "
                    f"and that the version exists.\n{tail}"
                )
            if not any((staging / "libs").glob(f"kafka_2.13-{version}.jar")):
                raise DistributionError(f"Maven finished but kafka_2.13-{version}.jar is missing")
            (staging / _MARKER).write_text(version + "\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return target / "libs"
