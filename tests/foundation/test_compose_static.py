"""compose.yaml and the Dockerfile, checked without Docker (neither this machine nor CI has one).

What `docker compose up --build` needs to run the demo end to end, each part
checked against the code that will run in the containers: the file is valid
Compose (the Compose Specification's JSON Schema); every MMBUS_* variable is a
setting of the settings class its command reads; the credentials the sender,
ingest and the simulator need are set, equal, and accepted by the simulator's
app and ingest's receiver; every path a service writes belongs to the image's
user; every long-running service has a healthcheck that probes a port and path
its app really serves; and the Kafka clients wait for the topics job.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any, ClassVar, TypeVar, cast
from unittest import mock
from urllib.parse import urlparse

import click
import httpx
import jsonschema
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry
from pydantic_settings import BaseSettings
from starlette.types import ASGIApp

from mmbus.connection import KafkaConnection
from services.campaign_csv import read_commands
from services.cli import cli
from services.common.settings import CommonSettings
from services.ingest.receiver import create_receiver
from services.ingest.settings import IngestSettings
from services.ingest.verification import verify_signature
from services.localkafka.paths import mmbus_home
from services.projections.api import query_app
from services.projections.settings import ProjectorSettings
from services.projections.store import Store
from services.sender.main import http_app
from services.sender.runner import Sender
from services.sender.settings import SenderSettings
from services.simulator.app import create_app
from services.simulator.settings import SimulatorSettings
from services.simulator.webhooks import sign
from services.simulator.world import World, load_world

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

# The Compose Specification's schema as check-jsonschema vendors it (its
# `vendor.compose-spec` built-in, refreshed from compose-spec/compose-spec with
# each release). Pinned by version and wheel hash so a run is repeatable; the
# wheel is only unpacked, never installed.
SCHEMA_PACKAGE = "check-jsonschema==0.39.0"
SCHEMA_WHEEL_SHA256 = "14ce5c94871c551268ea948ffe21e9f1464dc48fb20bf9a4c13deeaaf756cf9b"
SCHEMA_MEMBER = "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
SCHEMA_HASH_MEMBER = "check_jsonschema/builtin_schemas/vendor/sha256/compose-spec.sha256"

# `mmbus <command>` -> the settings class that command reads (services/cli/).
SETTINGS: dict[str, type[BaseSettings]] = {
    "topics": CommonSettings,
    "send-csv": CommonSettings,
    "sender": SenderSettings,
    "ingest": IngestSettings,
    "projector": ProjectorSettings,
    "simulator": SimulatorSettings,
}
# Command-line options that services/cli/ copies over a setting (its `overrides`).
CLI_OVERRIDES: dict[str, dict[str, str]] = {
    "ingest": {"host": "ingest_host", "port": "ingest_port"},
    "projector": {
        "store": "projector_store",
        "host": "projector_http_host",
        "port": "projector_http_port",
    },
    "simulator": {
        "host": "host",
        "port": "port",
        "seed_file": "seed_file",
        "webhook_url": "webhook_url",
    },
}
# The settings (address, port) each long-running command serves HTTP on.
LISTENS: dict[str, tuple[str, str]] = {
    "sender": ("sender_http_host", "sender_http_port"),
    "ingest": ("ingest_host", "ingest_port"),
    "projector": ("projector_http_host", "projector_http_port"),
    "simulator": ("host", "port"),
}
# What a container listens on to be reachable from others; compared here, never bound.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
PROBE_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/[\w/.-]*)")

S = TypeVar("S", bound=BaseSettings)


# ------------------------------------------------------------------ reading the files
def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _mmbus_services() -> dict[str, dict[str, Any]]:
    """The services that run an mmbus command (all but the broker)."""
    return {
        name: spec
        for name, spec in _services().items()
        if spec.get("command", [None])[0] == "mmbus"
    }


def _command_name(service: dict[str, Any]) -> str:
    """The command's settings key: `mmbus topics create` is "topics"."""
    name: str = service["command"][1]
    return name


def _credentials() -> dict[str, str]:
    block: dict[str, str] = _compose()["x-demo-credentials"]
    return block


def _cli_params(service: dict[str, Any]) -> dict[str, Any]:
    """The command line parsed by the CLI itself, so an option it lacks fails here."""
    args: list[str] = service["command"][1:]
    command: click.Command = cli
    while isinstance(command, click.Group):
        sub = command.get_command(click.Context(command), args[0])
        assert sub is not None, f"`mmbus` has no command {' '.join(service['command'][1:])}"
        command, args = sub, args[1:]
    with command.make_context(command.name, list(args)) as ctx:
        return dict(ctx.params)


def _settings(name: str) -> BaseSettings:
    """What the service's process would run with: its environment, then its options."""
    service = _services()[name]
    command = _command_name(service)
    env = {key: str(value) for key, value in service.get("environment", {}).items()}
    # Only the container's environment: nothing of this machine's MMBUS_* leaks in.
    with mock.patch.dict(os.environ, env, clear=True):
        settings = SETTINGS[command]()
    params = _cli_params(service)
    overrides = {
        field: params[option]
        for option, field in CLI_OVERRIDES.get(command, {}).items()
        if params.get(option) is not None
    }
    return settings.model_copy(update=overrides)


def _settings_as(name: str, kind: type[S]) -> S:
    settings = _settings(name)
    assert isinstance(settings, kind)
    return settings


def _listen(name: str) -> tuple[str, int]:
    host_field, port_field = LISTENS[_command_name(_services()[name])]
    settings = _settings(name)
    host, port = getattr(settings, host_field), getattr(settings, port_field)
    assert isinstance(host, str)
    assert isinstance(port, int)
    return host, port


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    logical = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        keyword, _, rest = (logical + stripped).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        logical = ""
    return instructions


def _workdir() -> PurePosixPath:
    workdirs = [PurePosixPath(rest) for keyword, rest in _dockerfile() if keyword == "WORKDIR"]
    assert workdirs, "the Dockerfile sets no WORKDIR"
    return workdirs[-1]


def _in_image(path: str) -> PurePosixPath:
    """A path as the container resolves it (relative: from the WORKDIR)."""
    # normpath keeps a leading "//" (POSIX leaves its meaning open); the container does not.
    joined = posixpath.join(str(_workdir()), path)
    return PurePosixPath("/" + posixpath.normpath(joined).lstrip("/"))


def _repo_file(container_path: str) -> Path:
    """The checkout's file that the Dockerfile's COPY puts at this container path."""
    target = _in_image(container_path)
    for keyword, rest in _dockerfile():
        if keyword != "COPY":
            continue
        *sources, dest = [word for word in rest.split() if not word.startswith("--")]
        dest_path = _in_image(dest)
        for source in sources:
            # A file into a directory keeps its name; a directory's contents land in dest.
            into = (ROOT / source).is_file() and (dest.endswith("/") or len(sources) > 1)
            copied = dest_path / PurePosixPath(source).name if into else dest_path
            if target == copied or copied in target.parents:
                return ROOT / source / target.relative_to(copied)
    raise AssertionError(f"no COPY in the Dockerfile puts anything at {target}")


def _world() -> World:
    seed = _settings_as("simulator", SimulatorSettings).seed_file
    assert seed is not None, "the simulator's world file is not named in compose.yaml"
    return load_world(_repo_file(str(seed)))


# ----------------------------------------------------------- the Compose Specification
def _compose_spec_schema() -> dict[str, Any]:
    """The schema, fetched once with pip into a cache outside the repository."""
    cache = mmbus_home() / "compose-spec" / SCHEMA_PACKAGE.replace("==", "-")
    target = cache / "compose-spec.json"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text(f"{SCHEMA_PACKAGE} --hash=sha256:{SCHEMA_WHEEL_SHA256}\n")
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--require-hashes",
                    "--requirement",
                    str(requirements),
                    "--dest",
                    tmp,
                ],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                pytest.fail(f"pip could not fetch {SCHEMA_PACKAGE}: {done.stderr[-2000:]}")
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                schema = archive.read(SCHEMA_MEMBER)
                expected = archive.read(SCHEMA_HASH_MEMBER).decode().split()[0]
            # The package records the hash of the file it vendored; a mismatch is a bad unpack.
            assert hashlib.sha256(schema).hexdigest() == expected
            partial = Path(tmp) / "compose-spec.json"
            partial.write_bytes(schema)
            # Atomic, so a concurrent run never reads half a file.
            os.replace(partial, target)
    loaded: dict[str, Any] = json.loads(target.read_text())
    return loaded


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    schema = _compose_spec_schema()
    assert schema.get("title") == "Compose Specification"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def _schema_errors(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_file_is_valid_compose(compose_validator: jsonschema.protocols.Validator) -> None:
    errors = _schema_errors(compose_validator, _compose())
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("where", "mistake"),
    [
        (("services", "ingest", "depends_on", "topics", "condition"), "service_done"),
        (("services", "sender", "healthcheck", "intervall"), "5s"),
        (("services", "projector", "volumes"), "projections:/data"),
    ],
)
def test_schema_refuses_what_compose_would(
    compose_validator: jsonschema.protocols.Validator, where: tuple[str, ...], mistake: str
) -> None:
    # The schema is strict enough for the passing test above to mean something.
    document = _compose()
    node = document
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = mistake
    assert _schema_errors(compose_validator, document)


# ------------------------------------------------------------------------- settings
def test_every_mmbus_variable_is_a_setting_of_its_command() -> None:
    unknown: dict[str, list[str]] = {}
    for name, service in _mmbus_services().items():
        settings = SETTINGS[_command_name(service)]
        prefix = settings.model_config.get("env_prefix", "")
        known = {f"{prefix}{field}".upper() for field in settings.model_fields}
        unknown[name] = sorted(
            key
            for key in service.get("environment", {})
            if key.startswith("MMBUS_") and key not in known
        )
    assert not any(unknown.values()), f"not settings of the service's command: {unknown}"


@pytest.mark.parametrize("name", sorted(_mmbus_services()))
def test_settings_of_each_service_load(name: str) -> None:
    # The values parse as the process would parse them (JSON maps and lists included).
    settings = _settings(name)
    assert isinstance(settings, SETTINGS[_command_name(_services()[name])])


def test_kafka_clients_and_only_they_get_the_connection() -> None:
    for name, service in _mmbus_services().items():
        env = service.get("environment", {})
        if issubclass(SETTINGS[_command_name(service)], KafkaConnection):
            assert env.get("MMBUS_KAFKA_BOOTSTRAP_SERVERS") == "kafka:9092", name
        else:
            assert not any(key.startswith("MMBUS_KAFKA_") for key in env), name


# --------------------------------------------------------------------------- secrets
def test_credentials_are_defined_once() -> None:
    # Every service gets them by alias; the literal values appear only in the block.
    text = COMPOSE.read_text()
    block = re.search(r"^x-demo-credentials:\n(?:(?:[ #].*)?\n)+", text, re.MULTILINE)
    assert block is not None
    rest = text[: block.start()] + text[block.end() :]
    credentials = _credentials()
    literals = {
        credentials["access-token"],
        credentials["app-secret"],
        credentials["verify-token"],
        *json.loads(credentials["d360-api-keys"]).values(),
    }
    assert not [value for value in literals if value in rest]
    # Ingest's JSON list is the same secret the simulator signs with.
    assert json.loads(credentials["app-secrets"]) == [credentials["app-secret"]]


def test_every_service_gets_the_credentials_it_needs() -> None:
    credentials = _credentials()
    sender = _settings_as("sender", SenderSettings)
    ingest = _settings_as("ingest", IngestSettings)
    simulator = _settings_as("simulator", SimulatorSettings)
    assert sender.meta_access_token.get_secret_value() == credentials["access-token"]
    assert {k: v.get_secret_value() for k, v in sender.d360_api_keys.items()} == json.loads(
        credentials["d360-api-keys"]
    )
    assert [s.get_secret_value() for s in ingest.ingest_app_secrets] == [credentials["app-secret"]]
    assert ingest.ingest_verify_token.get_secret_value() == credentials["verify-token"]
    assert simulator.app_secret.get_secret_value() == credentials["app-secret"]
    assert all(value for value in credentials.values())


def _client(app: ASGIApp) -> httpx.AsyncClient:
    """Requests into the app in this process, as the other services would send them."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://compose")


def _simulator() -> ASGIApp:
    return create_app(_settings_as("simulator", SimulatorSettings), _world())


def _service_url(url: str) -> tuple[str, int, str]:
    parsed = urlparse(url)
    assert parsed.hostname is not None
    assert parsed.port is not None, f"{url}: name the port"
    return parsed.hostname, parsed.port, parsed.path


async def test_sender_calls_the_simulator_with_a_token_it_accepts() -> None:
    sender = _settings_as("sender", SenderSettings)
    assert _service_url(sender.meta_base_url) == ("simulator", _listen("simulator")[1], "")
    waba = f"/{sender.meta_graph_version}/{_world().wabas[0].id}"
    fields = {"fields": "marketing_messages_onboarding_status"}
    token = sender.meta_access_token.get_secret_value()
    async with _client(_simulator()) as client:
        # The sender's first call: the WABA lookup that answered 401 (code 190) without it.
        answer = await client.get(waba, params=fields, headers={"Authorization": f"Bearer {token}"})
        refused = await client.get(waba, params=fields, headers={"Authorization": "Bearer x"})
    assert answer.status_code == 200, answer.text
    assert refused.status_code == 401


async def test_sender_calls_360dialog_with_keys_the_simulator_maps() -> None:
    sender = _settings_as("sender", SenderSettings)
    host, port, prefix = _service_url(sender.d360_base_url)
    assert (host, port) == ("simulator", _listen("simulator")[1])
    world = _world()
    assert sender.d360_api_keys
    async with _client(_simulator()) as client:
        for phone_number_id, key in sender.d360_api_keys.items():
            assert world.d360_api_keys.get(key.get_secret_value()) == phone_number_id
            answer = await client.post(
                f"{prefix}/messages", json={}, headers={"D360-API-KEY": key.get_secret_value()}
            )
            # Authenticated, then refused for the empty body: past the key check.
            assert answer.status_code == 400, answer.text
        refused = await client.post(
            f"{prefix}/messages", json={}, headers={"D360-API-KEY": "not-the-key"}
        )
    assert refused.status_code == 401


def _ingest() -> ASGIApp:
    # The requests sent here are refused or answered before anything is produced.
    return create_receiver(
        _settings_as("ingest", IngestSettings), cast(AIOKafkaProducer, None), CollectorRegistry()
    )


async def test_simulator_webhooks_reach_ingest_and_verify() -> None:
    simulator = _settings_as("simulator", SimulatorSettings)
    ingest = _settings_as("ingest", IngestSettings)
    assert simulator.webhook_url is not None
    host, port, path = _service_url(simulator.webhook_url)
    assert (host, port, path) == ("ingest", _listen("ingest")[1], "/webhooks/meta")
    # 360dialog's webhooks go to the same URL, signed the same way, unless routed apart.
    assert simulator.d360_webhook_url is None
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    signature = sign(body, simulator.app_secret.get_secret_value())
    secrets = [s.get_secret_value() for s in ingest.ingest_app_secrets]
    assert verify_signature(body, signature, secrets)[0] == "valid"
    async with _client(_ingest()) as client:
        unsigned = await client.post(path, content=body)
    # The path is ingest's signature-checked receiver, not a 404.
    assert unsigned.status_code == 401


async def test_ingest_answers_the_subscription_challenge_with_the_verify_token() -> None:
    challenge = {
        "hub.mode": "subscribe",
        "hub.verify_token": _credentials()["verify-token"],
        "hub.challenge": "1158201444",
    }
    async with _client(_ingest()) as client:
        answer = await client.get("/webhooks/meta", params=challenge)
    assert (answer.status_code, answer.text) == (200, "1158201444")


def test_demo_campaign_fits_the_simulator_world() -> None:
    demo = _services()["demo"]
    params = _cli_params(demo)
    commands, errors = read_commands(_repo_file(str(params["path"])), campaign=params["campaign"])
    assert not errors
    assert commands
    world = _world()
    for command in commands:
        data = command.data
        number = world.number(data.phone_number_id)
        assert number is not None, data.phone_number_id
        assert number.waba_id == data.waba_id
        assert world.template(data.waba_id, data.template.name, data.template.language.code)


# ----------------------------------------------------------------------------- paths
def _written_paths(name: str) -> list[PurePosixPath]:
    """Directories the service's process creates files in."""
    settings = _settings(name)
    paths: list[PurePosixPath] = []
    env = _services()[name].get("environment", {})
    if "MMBUS_HOME" in env:
        paths.append(_in_image(str(env["MMBUS_HOME"])))
    store = settings.projector_store if isinstance(settings, ProjectorSettings) else None
    if store is not None and not store.startswith(("postgresql:", "postgres:")):
        # The SQLite forms: sqlite:///<path> (sqlite:////abs for an absolute one) or a path.
        file = store.removeprefix("sqlite:///")
        assert ":memory:" not in file, "the projector's store would not survive a restart"
        paths.append(_in_image(file).parent)
    return paths


def _image_ownership() -> tuple[str, dict[PurePosixPath, tuple[int, str]], dict[str, int]]:
    """The image's user; every directory made by RUN with (step, owner); VOLUMEs with step."""
    users: set[str] = set()
    created: set[PurePosixPath] = set()
    owned: dict[PurePosixPath, tuple[int, str]] = {}
    volumes: dict[str, int] = {}
    user = "root"
    for step, (keyword, rest) in enumerate(_dockerfile()):
        if keyword == "USER":
            user = rest.split(":")[0]
        elif keyword == "VOLUME":
            names = json.loads(rest) if rest.startswith("[") else rest.split()
            volumes.update({str(_in_image(v)): step for v in names})
        elif keyword == "RUN":
            for command in re.split(r"\s*(?:&&|\|\||;)\s*", rest):
                words = shlex.split(command)
                if not words:
                    continue
                operands = [w for w in words[1:] if not w.startswith("-")]
                if words[0] == "useradd":
                    users.add(operands[-1])
                elif words[0] == "mkdir":
                    created.update(_in_image(p) for p in operands)
                elif words[0] == "chown":
                    owner = operands[0].split(":")[0]
                    for path in operands[1:]:
                        owned[_in_image(path)] = (step, owner)
    assert user in users, f"USER {user} is not created by useradd in the Dockerfile"
    return user, {p: owned[p] for p in created if p in owned}, volumes


def test_services_that_write_are_known() -> None:
    # The parametrisation below covers these; a service writing nowhere needs no check.
    assert [name for name in sorted(_mmbus_services()) if _written_paths(name)] == ["projector"]


@pytest.mark.parametrize("name", [n for n in sorted(_mmbus_services()) if _written_paths(n)])
def test_every_path_a_service_writes_belongs_to_the_image_user(name: str) -> None:
    user, owned, volumes = _image_ownership()
    mounts = {_in_image(volume.split(":")[1]) for volume in _services()[name].get("volumes", [])}
    for path in _written_paths(name):
        assert path in owned, f"{name} writes {path}; the Dockerfile neither makes nor chowns it"
        step, owner = owned[path]
        assert owner == user, f"{path} belongs to {owner}, the process runs as {user}"
        if str(path) in volumes:
            # A build step after VOLUME is discarded: the chown must come first.
            assert step < volumes[str(path)], f"VOLUME {path} comes first: its chown is lost"
        if path in mounts:
            # A new named volume copies the image's directory, owner included.
            assert str(path) in volumes, f"declare VOLUME {path} in the Dockerfile"


def test_the_projector_keeps_its_store_on_a_volume() -> None:
    projector = _services()["projector"]
    written = _written_paths("projector")
    mounts = [volume.split(":") for volume in projector["volumes"]]
    assert written
    assert [str(w) for w in written] == [target for _, target in mounts]
    assert all(source in _compose()["volumes"] for source, _ in mounts)


# --------------------------------------------------------------- health and ordering
def _long_running() -> list[str]:
    return sorted(name for name, spec in _mmbus_services().items() if spec.get("restart") != "no")


def _probe(name: str) -> tuple[str, int, str]:
    """The healthcheck's Python code, and the port and path it asks for."""
    test = _services()[name]["healthcheck"]["test"]
    # Exec form with the image's python: it has neither curl nor wget.
    assert test[:3] == ["CMD", "python", "-c"], test
    code: str = test[3]
    match = PROBE_URL.search(code)
    assert match is not None, f"{name}: no http://127.0.0.1:PORT/PATH in {code!r}"
    return code, int(match.group(1)), match.group(2)


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def _healthy_app(name: str) -> ASGIApp:
    """The app the service's command serves, in the state its healthcheck calls healthy."""
    command = _command_name(_services()[name])
    if command == "sender":
        sender = SimpleNamespace(
            fatal=None, ready=True, knowledge_ready=_set_event(), consuming=_set_event()
        )
        return http_app(cast(Sender, sender))
    if command == "projector":
        # Only /health, /ready and /metrics are asked here; they never touch the store.
        return query_app(cast(Store, None), ready=lambda: {"ready": True, "failed": None})
    if command == "ingest":
        return create_receiver(
            _settings_as(name, IngestSettings), cast(AIOKafkaProducer, None), CollectorRegistry()
        )
    if command == "simulator":
        return create_app(_settings_as(name, SimulatorSettings), _world())
    raise AssertionError(f"{name}: which app does `mmbus {command}` serve?")


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = _services()
    assert _long_running() == ["ingest", "projector", "sender", "simulator"]
    missing = [name for name in [*_long_running(), "kafka"] if "healthcheck" not in services[name]]
    assert not missing


@pytest.mark.parametrize("name", ["ingest", "projector", "sender", "simulator"])
async def test_healthcheck_probes_a_port_and_path_the_service_serves(name: str) -> None:
    _, port, path = _probe(name)
    host, listen_port = _listen(name)
    assert port == listen_port, f"{name} listens on {listen_port}, the probe asks {port}"
    assert host in {ALL_INTERFACES, "127.0.0.1"}, f"{name} on {host}: the probe cannot reach it"
    async with _client(_healthy_app(name)) as client:
        answer = await client.get(path)
    assert answer.status_code == 200, f"{name} {path}: {answer.status_code} {answer.text}"


@pytest.mark.parametrize("name", ["ingest", "projector", "sender", "simulator"])
def test_published_ports_are_the_ones_served_on_every_interface(name: str) -> None:
    host, port = _listen(name)
    for mapping in _services()[name].get("ports", []):
        assert int(str(mapping).rsplit(":", 1)[1]) == port
        assert host == ALL_INTERFACES, f"{name} binds {host}: the published port would not answer"


class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers every GET with ``status`` and remembers the paths asked for."""

    status: ClassVar[int] = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the status and the paths, not a log."""


@pytest.fixture
def stub_server() -> Iterator[tuple[int, type[_Stub]]]:
    class Handler(_Stub):
        # Class state of its own, so no run sees another's.
        status: ClassVar[int] = 200
        paths: ClassVar[list[str]] = []

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], Handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("name", ["ingest", "projector", "sender", "simulator"])
def test_healthcheck_code_passes_on_200_and_fails_otherwise(
    name: str, stub_server: tuple[int, type[_Stub]]
) -> None:
    # Runs the probe's own code against a stand-in on a free port of this machine.
    code, port, path = _probe(name)
    stub_port, handler = stub_server
    local = code.replace(f"127.0.0.1:{port}", f"127.0.0.1:{stub_port}")

    def probe() -> int:
        return subprocess.run([sys.executable, "-c", local], timeout=30, check=False).returncode

    assert probe() == 0
    assert handler.paths == [path]
    handler.status = 503
    assert probe() != 0


def test_kafka_clients_wait_for_the_topics_job() -> None:
    services = _services()
    topics = services["topics"]
    assert topics["command"][1:] == ["topics", "create"]
    assert topics["restart"] == "no"
    assert topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name, service in _mmbus_services().items():
        if name == "topics" or not issubclass(SETTINGS[_command_name(service)], KafkaConnection):
            continue
        depends = service["depends_on"]
        assert depends["topics"] == {"condition": "service_completed_successfully"}, name
        assert depends["kafka"] == {"condition": "service_healthy"}, name


def test_demo_publishes_once_the_pipeline_is_healthy() -> None:
    demo = _services()["demo"]
    assert demo["restart"] == "no"
    assert _command_name(demo) == "send-csv"
    for name in ("simulator", "ingest", "sender", "projector"):
        assert demo["depends_on"][name] == {"condition": "service_healthy"}


def test_every_dependency_condition_can_be_met() -> None:
    services = _services()
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must be one-shot"
