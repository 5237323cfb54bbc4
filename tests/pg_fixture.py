"""A throwaway PostgreSQL server for the store's tests, from the machine's own binaries.

`scripts/ensure-prereqs.sh` (run by `make test`) installs Debian's ``postgresql``
package when the binaries are missing. The server runs on a free loopback port
with its data in a temporary directory and stops when the session ends. As
root, PostgreSQL refuses to run, so it runs as the ``postgres`` user the
package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from services.common.ports import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version_key(path: str) -> int:
    part = path.split("/")[4]
    return int(part) if part.isdigit() else 0


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a DSN of a fresh server (database ``postgres``, user ``mmbus``, trust auth)."""
    bindir = _bin_dir()
    if bindir is None:
        script = Path(__file__).resolve().parents[1] / "scripts" / "ensure-prereqs.sh"
        subprocess.run([str(script)], check=False)
        bindir = _bin_dir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL's server binaries are missing and could not be installed; "
            "install Debian's postgresql package (scripts/ensure-prereqs.sh does it as root)"
        )
    root = Path(tempfile.mkdtemp(prefix="mmbus-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def pg(*args: str) -> None:
        done = subprocess.run([*run_as, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"{args[0]} failed: {done.stdout}\n{done.stderr}")

    pg(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-A",
        "trust",
        "-U",
        "mmbus",
        "--no-sync",
        "-E",
        "UTF8",
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(root / "log"),
        "-w",
        "start",
    )
    try:
        yield f"postgresql://mmbus@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)
