"""What the alert rules and dashboards ask of the metrics, and what the services expose."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
METRIC = re.compile(r"\b((?:mmbus|process)_[a-z0-9_]+)")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: run scripts/ensure-prereqs.sh (Debian's prometheus)"
    return found


def run_promtool(*args: str, cwd: Path | None = None, stdin: str | None = None) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def expressions() -> dict[str, str]:
    """Every PromQL expression of the alerts and dashboards, by where it is."""
    out = {f"alert {r['alert']}": str(r["expr"]) for r in alert_rules()}
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", ()):
                out[f"{path.name}: {panel['title']} {target['refId']}"] = target["expr"]
    return out


def referenced(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def exposed(exposition: str) -> set[str]:
    """The sample names a /metrics page offers, from its TYPE lines (labelled metrics with no
    series yet still declare themselves) and its samples."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.update(name + s for s in SUFFIXES.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names
