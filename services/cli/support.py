"""What every command shares: settings in one line, coroutines run once the cluster answers."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from mmbus.connection import KafkaConnection
from services.common.settings import CommonSettings

if TYPE_CHECKING:
    from services.common.lifecycle import Main


S = TypeVar("S", bound=BaseSettings)
T = TypeVar("T")


def load_settings(cls: type[S]) -> S:
    """Settings from the environment; what is wrong with them in one line."""
    prefix = cls.model_config.get("env_prefix", "")
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"{prefix}{str(err['loc'][0]).upper()}"
            + "".join(f"[{part}]" for part in err["loc"][1:])
            # A validator's own message, without pydantic's "Value error, " in front.
            + f": {err['ctx']['error'] if err['type'] == 'value_error' else err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise click.ClickException(f"invalid setting {problems}") from exc
    except Exception as exc:  # e.g. a JSON list variable that is not JSON
        raise click.ClickException(f"invalid {prefix}* setting: {exc}") from exc


def common_settings() -> CommonSettings:
    return load_settings(CommonSettings)


def store_url_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a store URL nothing can open now, not after a SQLite file is named after it."""
    from services.projections.settings import parse_store_url

    if value is not None:
        try:
            parse_store_url(value)
        except ValueError as exc:
            raise click.ClickException(f"{param.opts[0]}: {exc}") from exc
    return value


def run_once(coro: Coroutine[Any, Any, T], *, kafka: KafkaConnection | None = None) -> T:
    """Run ``coro``; with ``kafka``, only once the cluster answers."""

    async def reached() -> T:
        if kafka is not None:
            try:
                await reach(kafka)
            except BaseException:
                coro.close()  # never started: spares a "was never awaited" warning
                raise
        return await coro

    try:
        return asyncio.run(reached())
    except click.ClickException:
        raise
    except Exception as exc:
        raise click.ClickException(describe(exc)) from exc


def serve(kafka: KafkaConnection, main: Main) -> None:
    """Run a service once the cluster answers; the check waits as long as a client's start()."""
    from services.common.lifecycle import run_service

    run_once(reach(kafka))
    run_service(main)


async def reach(kafka: KafkaConnection) -> None:
    """Bootstrap once before any producer or consumer exists.

    An unreachable cluster then fails here, in one line, rather than in a client's
    start(), which leaves that client unclosed ("Unclosed AIOKafkaProducer") and
    aiokafka's own log line beside the error.
    """
    from aiokafka import AIOKafkaClient
    from aiokafka.errors import KafkaConnectionError

    refusals = _Refusals()
    aiokafka_log = logging.getLogger("aiokafka")
    aiokafka_log.addFilter(refusals)
    client = AIOKafkaClient(client_id="mmbus-cli", **kafka.kafka_client_options())
    try:
        await client.bootstrap()
    except KafkaConnectionError as exc:
        reasons = {reason for _, reason in refusals.reasons}
        # One reason shared by every server is said once; otherwise per server.
        why = "; ".join(
            reasons if len(reasons) == 1 else (f"{s}: {r}" for s, r in refusals.reasons)
        )
        raise click.ClickException(
            f"cannot reach Kafka at {kafka.kafka_bootstrap_servers}"
            + (f" ({why})" if why else "")
            + ": start the local broker with 'mmbus kafka up'"
            " (or set MMBUS_KAFKA_BOOTSTRAP_SERVERS)"
        ) from exc
    finally:
        aiokafka_log.removeFilter(refusals)
        await client.close()


class _Refusals(logging.Filter):
    """aiokafka's bootstrap failures, one per server, kept for the error line instead of logged."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: list[tuple[str, str]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # Any other line, or a format this code does not know, goes through as it is.
        if record.msg != 'Unable connect to "%s:%s": %s' or not isinstance(args, tuple):
            return True
        host, port, error = args
        if isinstance(error, OSError) and error.errno:
            # "Connection refused" where asyncio says "Connect call failed ('127.0.0.1', 1)".
            reason = os.strerror(error.errno) if error.errno > 0 else error.strerror or str(error)
        else:
            reason = str(error) or type(error).__name__
        self.reasons.append((f"{host}:{port}", reason))
        return False


def describe(exc: BaseException) -> str:
    # aiokafka's errors already start with their class name.
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"
