"""schemas/ is generated from the models; drift fails the build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from mmbus.contracts.catalogue import LATEST, MODELS
from mmbus.contracts.topics import catalogue
from services.schema_export import (
    SCHEMA_FORMAT,
    SERVICES,
    drift,
    producers,
    schema_file_name,
    schema_id,
)
from tests.contracts.examples import SCHEMAS, load_examples


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "schemas", "export", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_committed_schemas_match_the_models() -> None:
    assert drift(SCHEMAS) == [], "run `mmbus schemas export` and commit schemas/"


def test_check_exits_non_zero_on_drift(tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    assert _export("--dir", str(copy), "--check").returncode == 0

    target = copy / "json" / "send.template.v1.schema.json"
    schema = orjson.loads(target.read_bytes())
    schema["properties"]["data"] = {"type": "object"}
    target.write_bytes(orjson.dumps(schema))
    (copy / "json" / "send.telegram.v1.schema.json").write_text("{}")
    result = _export("--dir", str(copy), "--check")
    assert result.returncode == 1
    assert "differs json/send.template.v1.schema.json" in result.stderr
    assert "stale json/send.telegram.v1.schema.json" in result.stderr
    assert "Traceback" not in result.stderr

    assert _export("--dir", str(copy)).returncode == 0
    assert _export("--dir", str(copy), "--check").returncode == 0


def test_every_schema_has_an_id_and_requires_type_and_version() -> None:
    for model in MODELS:
        schema = orjson.loads((SCHEMAS / "json" / schema_file_name(model)).read_bytes())
        assert schema["$id"] == schema_id(model)
        assert {"type", "version", "id", "time", "data"} <= set(schema["required"])


def _resolve(doc: dict[str, Any], ref: str, base: Path) -> Any:
    if ref.startswith("#/"):
        node: Any = doc
        for part in ref[2:].split("/"):
            node = node[part]
        return node
    target = (base / ref).resolve()
    assert target.exists(), ref
    return orjson.loads(target.read_bytes())


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_documents_are_3_0_and_every_reference_resolves() -> None:
    for name in ("sender", "ingest"):
        path = SCHEMAS / "asyncapi" / f"{name}.asyncapi.yaml"
        doc = yaml.safe_load(path.read_text())
        assert doc["asyncapi"] == "3.0.0"
        assert doc["operations"], "a service document without operations says nothing"
        for ref in _refs(doc):
            assert _resolve(doc, ref, path.parent) is not None
        actions = {op["action"] for op in doc["operations"].values()}
        assert actions == {"send", "receive"}
    sender = yaml.safe_load((SCHEMAS / "asyncapi" / "sender.asyncapi.yaml").read_text())
    assert sender["channels"]["sendCommands"]["address"] == "{prefix}send.commands"
    assert "send.template.v1" in sender["channels"]["sendCommands"]["messages"]


def _operation_types(doc: dict[str, Any], action: str) -> set[str]:
    return {
        ref["$ref"].rsplit("/", 1)[1].rsplit(".v", 1)[0]
        for op in doc["operations"].values()
        if op["action"] == action
        for ref in op["messages"]
    }


def test_each_asyncapi_document_sends_only_what_its_service_produces() -> None:
    for service in SERVICES:
        doc = yaml.safe_load((SCHEMAS / "asyncapi" / f"{service.name}.asyncapi.yaml").read_text())
        sent, received = _operation_types(doc, "send"), _operation_types(doc, "receive")
        assert sent == set(service.produces), service.name
        consumed = [s for s in catalogue("", partitions=1) if s.stream in service.receives]
        assert received == {t for s in consumed for t in s.carries}, service.name
        # Nothing else is mentioned: a channel lists what the service sends or receives.
        listed = {name.rsplit(".v", 1)[0] for name in doc["components"]["messages"]}
        assert listed == sent | received, service.name
        for channel in doc["channels"].values():
            assert {m.rsplit(".v", 1)[0] for m in channel["messages"]} <= listed
        for name, message in doc["components"]["messages"].items():
            assert message["payload"]["schemaFormat"] == SCHEMA_FORMAT, name
            assert message["headers"]["schemaFormat"] == SCHEMA_FORMAT, name
            by = " and ".join(producers(message["name"]))
            assert message["description"] == f"Published by {by}.", name
    ingest = (SCHEMAS / "asyncapi" / "ingest.asyncapi.yaml").read_text()
    assert "account.onboarding_observed" not in ingest
    assert "template.category_observed" not in ingest


def test_every_message_type_has_its_producers_and_examples_agree() -> None:
    examples = load_examples()
    for message_type in LATEST:
        by = [s.name for s in SERVICES if message_type in s.produces]
        if message_type == "send.template":
            assert by == [], "commands come from the callers, not from an mmbus service"
        else:
            assert by, f"no service document publishes {message_type}"
        sources = {e["source"] for e in examples.values() if e["type"] == message_type}
        if len(by) == 1:
            assert sources == {f"mmbus/{by[0]}"}, message_type
