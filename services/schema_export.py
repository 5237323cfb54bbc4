"""Generate the language-neutral contract under ``schemas/`` from the models.

``schemas/json/<type>.v<version>.schema.json``: JSON Schema (2020-12) per message
type and version. ``schemas/asyncapi/{sender,ingest}.asyncapi.yaml``: AsyncAPI 3.0
documents naming the channels (topics), keys, headers and messages, one per service:
what it publishes (send operations) and what it consumes (receive operations). The files
are committed; ``mmbus schemas export --check`` (and a test) fail on drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from mmbus.contracts.catalogue import LATEST, MODELS, type_of, version_of
from mmbus.contracts.envelope import Message
from mmbus.contracts.fields import INSTANT_PATTERN
from mmbus.contracts.topics import Stream, TopicSpec, catalogue

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# How an AsyncAPI 3.0 document names that dialect in a multi-format schema object.
SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
SCHEMA_ID_BASE = "urn:mmbus:schema:"
PACKAGE_VERSION = "0.1.0"


def schema_file_name(model: type[Message]) -> str:
    return f"{type_of(model)}.v{version_of(model)}.schema.json"


def schema_id(model: type[Message]) -> str:
    return f"{SCHEMA_ID_BASE}{type_of(model)}:v{version_of(model)}"


def json_schema(model: type[Message]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    # `type` and `version` have defaults in Python, but on the wire they are what
    # identifies the message: a record without them is not this message.
    required = list(schema.get("required", []))
    for name in ("type", "version"):
        if name not in required:
            required.insert(0, name)
    schema["required"] = sorted(required)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": schema_id(model),
        **{k: v for k, v in schema.items() if k not in {"title"}},
        "title": f"{type_of(model)} v{version_of(model)}",
    }


def _dump_json(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


# ------------------------------------------------------------------ AsyncAPI
_CE_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents Kafka binary-mode attributes (the value repeats them).",
    "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "content-type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string"},
        "ce_type": {"type": "string"},
        "ce_source": {"type": "string"},
        "ce_subject": {"type": "string"},
        "ce_time": {"type": "string", "format": "date-time", "pattern": INSTANT_PATTERN},
        "ce_schemaversion": {"type": "string", "description": "The message's schema version."},
        "ce_correlationid": {"type": "string"},
        "ce_causationid": {"type": "string"},
        "content-type": {"type": "string", "const": "application/json"},
    },
}


@dataclass(frozen=True)
class ServiceDoc:
    name: str
    description: str
    # Streams the service consumes: it receives every type they carry.
    receives: tuple[Stream, ...]
    # Message types the service itself publishes. A stream it writes may carry other
    # services' types too (the sender and ingest both write `account` and `templates`);
    # its document must not claim those.
    produces: tuple[str, ...]


SERVICES = (
    ServiceDoc(
        name="sender",
        description=(
            "Consumes send commands, decides the route (/marketing_messages or /messages), "
            "applies suppression, throughput limits and retries, calls Meta or 360dialog, "
            "and publishes send events co-partitioned with the commands."
        ),
        receives=(
            Stream.SEND_COMMANDS,
            Stream.SEND_EVENTS,
            Stream.ACCOUNT,
            Stream.TEMPLATES,
            Stream.PREFERENCES,
            Stream.MESSAGE_STATUS,
        ),
        produces=(
            "send.attempted",
            "send.attempt_failed",
            "send.accepted",
            "send.failed",
            "send.suppressed",
            "send.rejected",
            "send.indeterminate",
            "account.onboarding_observed",
            "template.category_observed",
            "dead_letter.recorded",
        ),
    ),
    ServiceDoc(
        name="ingest",
        description=(
            "Receives Meta's webhooks, verifies their signature, stores each body on the raw "
            "stream before answering 200, and normalises it into typed events."
        ),
        receives=(Stream.RAW_WEBHOOKS,),
        produces=(
            "webhook.received",
            "message.status",
            "marketing.link_clicked",
            "marketing.user_action_recorded",
            "account.updated",
            "user.marketing_preference_changed",
            "template.status_changed",
            "template.category_changed",
            "template.quality_changed",
            "template.components_changed",
            "message.received",
            "message.echoed",
            "webhook.unrecognized",
            "webhook.errors_reported",
            "dead_letter.recorded",
        ),
    ),
)
CALLERS = "the services that ask mmbus to send (mmbus.publisher.send_template)"


def producers(message_type: str) -> list[str]:
    """Who publishes a message type: the services whose document sends it, or callers."""
    found = [f"mmbus {s.name}" for s in SERVICES if message_type in s.produces]
    return found or [CALLERS]


def _channel_id(stream: Stream) -> str:
    head, *rest = stream.value.replace("-", ".").split(".")
    return head + "".join(part.capitalize() for part in rest)


def _message_id(model: type[Message]) -> str:
    return f"{type_of(model)}.v{version_of(model)}"


def _specs() -> dict[Stream, TopicSpec]:
    return {s.stream: s for s in catalogue("{prefix}", partitions=6)}


def _models_on(stream: Stream, only: tuple[str, ...] | None = None) -> list[type[Message]]:
    """The newest version of each type the stream carries (of ``only``, if given)."""
    carries = _specs()[stream].carries
    return [LATEST[t] for t in carries if t in LATEST and (only is None or t in only)]


def _schema(schema: Any) -> dict[str, Any]:
    # AsyncAPI 3.0's multi-format schema object: the default format would be AsyncAPI's
    # own draft-07 dialect, and the files are JSON Schema 2020-12.
    return {"schemaFormat": SCHEMA_FORMAT, "schema": schema}


def _topic_configuration(spec: TopicSpec) -> dict[str, Any]:
    """The Kafka binding's topicConfiguration, as the catalogue creates the topic."""
    config: dict[str, Any] = {"cleanup.policy": [spec.config["cleanup.policy"]]}
    for name in ("retention.ms", "max.message.bytes"):
        if name in spec.config:
            config[name] = int(spec.config[name])
    return config


def _message(model: type[Message], spec: TopicSpec) -> dict[str, Any]:
    by = " and ".join(producers(type_of(model)))
    summary = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
    return {
        "name": type_of(model),
        "title": f"{type_of(model)} v{version_of(model)}",
        "summary": summary,
        "description": f"Published by {by}.",
        "contentType": "application/json",
        "headers": _schema(_CE_HEADERS),
        "payload": _schema({"$ref": f"../json/{schema_file_name(model)}"}),
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": spec.key},
                "bindingVersion": "0.5.0",
            }
        },
    }


def asyncapi(service: ServiceDoc) -> dict[str, Any]:
    specs = _specs()
    written = [s for s, spec in specs.items() if set(spec.carries) & set(service.produces)]
    # (action, stream, models): receive every type a consumed stream carries; send
    # only the types this service publishes.
    groups = [("receive", s, _models_on(s)) for s in service.receives] + [
        ("send", s, _models_on(s, service.produces)) for s in written
    ]
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for action, stream, models in groups:
        spec = specs[stream]
        cid = _channel_id(stream)
        channel = channels.setdefault(
            cid,
            {
                "address": spec.name,
                "description": f"Keyed by {spec.key}.",
                "parameters": {
                    "prefix": {"default": "mmbus.", "description": "MMBUS_TOPIC_PREFIX"}
                },
                "messages": {},
                "bindings": {
                    "kafka": {
                        "topic": spec.name,
                        "partitions": spec.partitions,
                        "topicConfiguration": _topic_configuration(spec),
                        "bindingVersion": "0.5.0",
                    }
                },
            },
        )
        for model in models:
            messages[_message_id(model)] = _message(model, spec)
            channel["messages"][_message_id(model)] = {
                "$ref": f"#/components/messages/{_message_id(model)}"
            }
        operations[f"{action}{cid[0].upper()}{cid[1:]}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [{"$ref": f"#/channels/{cid}/messages/{_message_id(m)}"} for m in models],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"mmbus {service.name}",
            "version": PACKAGE_VERSION,
            "description": service.description,
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": dict(sorted(messages.items()))},
    }


def generate() -> dict[str, str]:
    """Relative path under schemas/ -> file content, for every generated file."""
    files = {f"json/{schema_file_name(m)}": _dump_json(json_schema(m)) for m in MODELS}
    for service in SERVICES:
        files[f"asyncapi/{service.name}.asyncapi.yaml"] = yaml.safe_dump(
            asyncapi(service), sort_keys=False, allow_unicode=True, width=100
        )
    return files


def drift(root: Path) -> list[str]:
    """Files under ``root`` that differ from what the models generate (or are missing/stale)."""
    expected = generate()
    problems = []
    for rel, content in expected.items():
        path = root / rel
        if not path.exists():
            problems.append(f"missing {rel}")
        elif path.read_text() != content:
            problems.append(f"differs {rel}")
    for folder in ("json", "asyncapi"):
        for path in sorted((root / folder).glob("*")) if (root / folder).exists() else []:
            rel = f"{folder}/{path.name}"
            if rel not in expected:
                problems.append(f"stale {rel} (no model generates it)")
    return problems


def export(root: Path) -> list[str]:
    """Write every generated file; remove generated files no model produces any more."""
    expected = generate()
    written = []
    for rel, content in expected.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
            written.append(rel)
    for folder in ("json", "asyncapi"):
        for path in (root / folder).glob("*"):
            if f"{folder}/{path.name}" not in expected:
                path.unlink()
                written.append(f"removed {folder}/{path.name}")
    return written
