"""schemas/ is generated from the models; drift fails the build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from mmbus.contracts.catalogue import MODELS
from services.schema_export import drift, schema_file_name, schema_id
from tests.contracts.examples import SCHEMAS


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
