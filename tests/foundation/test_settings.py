from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from services.common.settings import ENV_PREFIX, CommonSettings
from services.ingest.settings import IngestSettings
from services.projections.settings import ProjectorSettings
from services.sender.settings import SenderSettings
from services.simulator.settings import SimulatorSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMBUS_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("MMBUS_PARTITIONS", "12")
    monkeypatch.setenv("MMBUS_KAFKA_SASL_PASSWORD", "pw")
    settings = CommonSettings()
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert settings.partitions == 12
    assert "pw" not in repr(settings)


def test_invalid_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMBUS_PARTITIONS", "zero")
    with pytest.raises(ValidationError, match="partitions"):
        CommonSettings()


@pytest.mark.parametrize(
    ("settings", "prefix"),
    [
        (CommonSettings, ENV_PREFIX),
        (SenderSettings, ENV_PREFIX),
        (IngestSettings, ENV_PREFIX),
        (ProjectorSettings, ENV_PREFIX),
        (SimulatorSettings, "MMBUS_SIMULATOR_"),
    ],
)
def test_every_setting_is_documented_in_the_readme(
    settings: type[BaseSettings], prefix: str
) -> None:
    text = README.read_text()
    missing = [
        f"{prefix}{name.upper()}"
        for name in settings.model_fields
        if f"{prefix}{name.upper()}" not in text
    ]
    assert not missing, f"README lacks {missing}"


@pytest.mark.parametrize(
    ("setting", "hosts"),
    [
        ("127.0.0.1:9092", ["127.0.0.1:9092"]),
        ("a:1,b:2,c:3", ["a:1", "b:2", "c:3"]),
        (" a:1 , b:2 ,", ["a:1", "b:2"]),
    ],
)
def test_a_cluster_bootstrap_list_reaches_faststream_host_by_host(
    setting: str, hosts: list[str]
) -> None:
    """FastStream takes one string as one host: the three nodes of a cluster would be one
    unreachable address and the normalizer could not start (found by the chaos run)."""
    from mmbus.consumer import kafka_broker

    connection = CommonSettings(kafka_bootstrap_servers=setting)
    assert connection.bootstrap_servers == hosts
    broker = kafka_broker(connection)
    assert broker._connection_kwargs["bootstrap_servers"] == hosts
