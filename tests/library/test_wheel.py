"""The library as another team gets it: the wheel, installed alone into a clean virtual environment.

A producer or consumer installs ``mmbus`` without the ``services`` extra. This
builds the wheel, installs it into a fresh venv (its light dependencies come
from the package index, as they would for that team), checks that no part of
the server stack came with it, then publishes a command with the helper to the
real broker and reads it back as a typed event, from a working directory
outside the repository so nothing is imported from the checkout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.kafka_admin import ensure_project_topics
from services.common.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
SERVER_STACK = ("uvicorn", "starlette", "aiohttp", "httpx", "psycopg", "structlog", "click")

ROUND_TRIP = """
import asyncio, json, sys
from aiokafka import AIOKafkaConsumer
from mmbus import KafkaConnection, SendCommandPublisher, Stream, decode, send_template
from mmbus.contracts.commands import SendTemplate

async def main() -> None:
    connection = KafkaConnection()  # from MMBUS_* variables, as a deployment sets them
    command = send_template(
        waba_id="102290129340398", phone_number_id="106540352242922", to="+44 7911 123456",
        template_name="spring_sale", language="en_US", category="MARKETING",
        campaign_id="wheel-test", source="another-team/crm",
    )
    async with SendCommandPublisher.from_settings(connection) as publisher:
        written = await publisher.publish(command)
    consumer = AIOKafkaConsumer(
        connection.topic(Stream.SEND_COMMANDS), auto_offset_reset="earliest",
        **connection.kafka_client_options(),
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    event = decode(record.value, record.headers)
    assert isinstance(event, SendTemplate), event
    json.dump({"sent": command.data.command_id, "read": event.data.command_id,
               "to": event.data.to, "partition": written.partition,
               "read_partition": record.partition, "type": event.type}, sys.stdout)

asyncio.run(main())
"""


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and its light dependencies only."""
    work = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work / "dist", ROOT)
    (wheel,) = (work / "dist").glob("mmbus-*.whl")
    _run(sys.executable, "-m", "venv", work / "venv")
    python = work / "venv" / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)
    return python


def test_the_wheel_brings_the_library_and_not_the_server_stack(clean_venv: Path) -> None:
    probe = (
        "import importlib.util, json;"
        f"print(json.dumps({{m: bool(importlib.util.find_spec(m)) for m in {SERVER_STACK!r}}}))"
    )
    present = json.loads(_run(clean_venv, "-c", probe, cwd=clean_venv.parent))
    assert present == dict.fromkeys(SERVER_STACK, False)
    # The library's own modules import without the services.
    _run(clean_venv, "-c", "import mmbus, mmbus.consumer, mmbus.folds", cwd=clean_venv.parent)


def test_the_console_script_says_how_to_get_the_services(clean_venv: Path) -> None:
    done = subprocess.run(
        [str(clean_venv.parent / "mmbus"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "pip install 'mmbus[services]'" in done.stderr


async def test_a_command_published_with_the_helper_is_read_back_as_a_typed_event(
    clean_venv: Path, kafka_settings: CommonSettings
) -> None:
    await ensure_project_topics(kafka_settings)
    env = {
        "PATH": "/usr/bin:/bin",
        "MMBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "MMBUS_TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    out = json.loads(_run(clean_venv, "-c", ROUND_TRIP, cwd=clean_venv.parent, env=env))
    assert out["type"] == "send.template"
    assert out["read"] == out["sent"]
    assert out["to"] == "447911123456"
    assert out["read_partition"] == out["partition"]
