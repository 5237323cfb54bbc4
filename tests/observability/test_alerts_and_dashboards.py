"""Alert rules pass promtool's checks and unit tests; dashboards and alerts say what they mean.

Whether they name only metrics the services expose is checked against the running
services in tests/projections/test_demo_e2e.py (it scrapes each /metrics).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from tests.observability.support import (
    ALERT_TESTS,
    ALERTS,
    DASHBOARDS,
    alert_rules,
    expressions,
    referenced,
    run_promtool,
)


def test_promtool_accepts_the_rules() -> None:
    out = run_promtool("check", "rules", str(ALERTS))
    assert f"SUCCESS: {len(alert_rules())} rules found" in out


def test_the_rules_fire_when_and_only_when_their_tests_say(tmp_path: Path) -> None:
    # promtool compares annotations too; the runbooks are prose for people, checked below,
    # so the unit tests run against the same rules with their annotations left out.
    loaded = yaml.safe_load(ALERTS.read_text())
    for group in loaded["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(loaded, sort_keys=False))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    out = run_promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert "SUCCESS" in out


def test_every_alert_says_how_bad_it_is_and_what_to_do() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert len(rule["annotations"]["runbook"].split()) >= 20, f"{rule['alert']}: a runbook"


def test_every_alert_has_a_unit_test() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", ())
    }
    assert tested == {rule["alert"] for rule in alert_rules()}


def test_dashboards_are_grafana_json_that_query_mmbus_metrics() -> None:
    assert DASHBOARDS, "deploy/grafana/dashboards holds the dashboards"
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"]
        assert dashboard["title"]
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids are unique"
    for where, expr in expressions().items():
        assert referenced(expr), f"{where} queries no mmbus or process metric: {expr}"


def test_the_compose_observability_profile_mounts_what_exists_and_scrapes_served_ports() -> None:
    root = ALERTS.parents[2]
    compose = yaml.safe_load((root / "compose.yaml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert compose[name]["profiles"] == ["observability"], "optional: off by default"
        for volume in compose[name]["volumes"]:
            source = volume.split(":")[0]
            assert (root / source).exists(), f"{name} mounts {source}, which is not there"
    scrape = yaml.safe_load((root / "deploy" / "prometheus" / "prometheus.yml").read_text())
    for job in scrape["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, port = target.split(":")
            published = {str(p).rsplit(":", 1)[1] for p in compose[host].get("ports", [])}
            assert port in published, (
                f"{job['job_name']} scrapes {target}; {host} serves {published}"
            )
