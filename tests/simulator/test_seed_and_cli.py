"""The world comes from a YAML or JSON seed; `mmbus simulator` serves it and says what is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from pydantic import ValidationError

from bench.harness import serve
from services.common.ports import free_port
from services.simulator.world import load_world
from tests.simulator.support import make_world

DEMO = Path(__file__).resolve().parents[2] / "services" / "simulator" / "demo_world.yaml"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_world_loads_from_yaml_and_json(tmp_path: Path, suffix: str) -> None:
    world = make_world()
    data = world.model_dump(mode="json")
    path = tmp_path / f"world{suffix}"
    path.write_text(yaml.safe_dump(data) if suffix == ".yaml" else orjson.dumps(data).decode())
    assert load_world(path) == world


def test_the_demo_world_is_valid() -> None:
    world = load_world(DEMO)
    assert {w.onboarding_status for w in world.wabas} == {"ONBOARDED", "ELIGIBLE"}
    assert {t.category for t in world.templates} == {"MARKETING", "UTILITY", "AUTHENTICATION"}
    for number in world.phone_numbers:
        assert world.waba(number.waba_id) is not None


def test_a_bad_seed_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("wabas:\n  - {id: '1', business_id: '2', onboarding_status: DONE}\n")
    with pytest.raises(ValidationError, match="onboarding_status"):
        load_world(path)
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "simulator", "--seed", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "onboarding_status" in result.stderr
    assert "Traceback" not in result.stderr


def test_mmbus_simulator_serves_the_demo_world() -> None:
    port = free_port()
    with serve(
        ["-m", "services.cli", "simulator", "--port", str(port)], port, "/_admin/health"
    ) as base:
        response = httpx.post(
            f"{base}/v23.0/106540352242922/marketing_messages",
            headers={"Authorization": "Bearer sim-token"},
            json={
                "messaging_product": "whatsapp",
                "to": "447911123456",
                "type": "template",
                "template": {"name": "spring_sale", "language": {"code": "en_US"}},
            },
        )
    assert response.status_code == 200
    assert response.json()["messages"][0]["id"].startswith("wamid.")
