"""ajv, the JSON Schema validator JavaScript teams use, run on the committed schemas.

A second opinion that shares no code with pydantic or Python's jsonschema: its own
regex engine (ECMAScript), its own 'uuid' and 'date-time' formats. npm installs it
once into a cache outside the repository (``$MMBUS_NODE_AJV_DIR``, else
``~/.cache/mmbus/node-ajv``); then one node process validates every file given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.contracts.examples import SCHEMAS

PACKAGES = ("ajv@8", "ajv-formats@3")
SCRIPT = Path(__file__).with_name("ajv_validate.mjs")
# Which packages a cache holds: a cache made for other versions is made again.
_STAMP = "mmbus-packages.txt"


def cache_dir() -> Path:
    configured = os.environ.get("MMBUS_NODE_AJV_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mmbus" / "node-ajv"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        # A failure, not a skip: without it the schemas' strictness goes unchecked.
        pytest.fail(
            f"`{name}` is not installed; the schema tests run ajv under node. "
            "Run scripts/ensure-prereqs.sh (Debian: apt-get install nodejs npm).",
            pytrace=False,
        )
    return path


def ensure_installed() -> Path:
    """The folder whose node_modules holds ajv and ajv-formats, installing them if needed."""
    _tool("node")
    target = cache_dir()
    stamp = target / _STAMP
    if stamp.exists() and stamp.read_text() == "\n".join(PACKAGES):
        return target
    npm = _tool("npm")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Installed beside the target and renamed into place, so that a concurrent or
    # interrupted run never sees half an install.
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    try:
        result = subprocess.run(
            [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", *PACKAGES],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                f"npm install {' '.join(PACKAGES)} into {staging} failed:\n{result.stderr[-3000:]}",
                pytrace=False,
            )
        (staging / _STAMP).write_text("\n".join(PACKAGES))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except OSError:
        if not (target / _STAMP).exists():  # not just another run having won the race
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def validate(files: list[Path]) -> dict[Path, dict[str, Any]]:
    """ajv's verdict on each file: {valid, schema, errors: [{path, keyword, message}]}."""
    modules = ensure_installed()
    result = subprocess.run(
        [
            _tool("node"),
            str(SCRIPT),
            str(modules),
            str(SCHEMAS / "json"),
            *(str(f) for f in files),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{SCRIPT.name} failed:\n{result.stderr.decode()[-3000:]}", pytrace=False)
    verdicts: dict[str, dict[str, Any]] = orjson.loads(result.stdout)
    return {Path(name): verdict for name, verdict in verdicts.items()}
