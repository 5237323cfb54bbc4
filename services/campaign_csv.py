"""A campaign from a CSV file: one ``send.template`` command per row.

Columns (header row required; the order does not matter):

- required: ``waba_id``, ``phone_number_id``, ``to``, ``template``, ``language``
- optional: ``category``, ``campaign_id`` (or ``--campaign``), ``route``,
  ``product_policy``, ``provider``, ``tracking_token`` (kept as a label; the
  projections join click webhooks to the campaign by it), ``callback_data``,
  ``not_after``, ``activity_sharing`` (true/false), ``params`` (body text
  parameters separated by ``|``).

The command id is derived from the campaign and the row's content, so running
the same file again publishes the same command ids and the sender sends
nothing twice within its idempotency window (MMBUS_SENDER_IDEMPOTENCY_WINDOW_S,
7 days). Two identical rows are one command.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.envelope import MMBUS_NAMESPACE
from mmbus.publisher import send_template

REQUIRED = ("waba_id", "phone_number_id", "to", "template", "language")
OPTIONAL = (
    "category",
    "campaign_id",
    "route",
    "product_policy",
    "provider",
    "tracking_token",
    "callback_data",
    "not_after",
    "activity_sharing",
    "params",
)


# Where a field of the command comes from in the file, when the column has another name.
_COLUMN_OF = {
    ("template", "name"): "template",
    ("template", "language"): "language",
    ("template", "category"): "category",
    ("template", "components"): "params",
    ("labels",): "tracking_token",
    ("message_activity_sharing",): "activity_sharing",
}


@dataclass(frozen=True)
class RowError:
    """Everything wrong with one row, so one pass over the file finds it all."""

    line: int
    problems: tuple[str, ...]

    @property
    def message(self) -> str:
        return "; ".join(self.problems)

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class CsvError(Exception):
    """The file cannot be read as a campaign; the message says what to fix."""


def row_command_id(campaign_id: str, row: dict[str, str]) -> str:
    canonical = "\x1f".join(f"{k}={row.get(k, '').strip()}" for k in (*REQUIRED, *OPTIONAL))
    return str(uuid.uuid5(MMBUS_NAMESPACE, f"send-csv\x1e{campaign_id}\x1e{canonical}"))


def _components(params: str) -> list[dict[str, Any]]:
    values = [p.strip() for p in params.split("|")] if params.strip() else []
    if not values:
        return []
    return [{"type": "body", "parameters": [{"type": "text", "text": v} for v in values]}]


def _flag(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered == "":
        return None
    if lowered in {"true", "yes", "1"}:
        return True
    if lowered in {"false", "no", "0"}:
        return False
    raise ValueError(f"must be true or false, not {value!r}")


def read_commands(
    path: Path, *, campaign: str | None, source: str = "mmbus/send-csv"
) -> tuple[list[SendTemplate], list[RowError]]:
    """Every valid row as a command, and every invalid row with what is wrong with it."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CsvError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise CsvError(
                f"{path}: the header lacks {', '.join(missing)} (required: {', '.join(REQUIRED)})"
            )
        unknown = [h for h in header if h not in REQUIRED and h not in OPTIONAL]
        if unknown:
            raise CsvError(
                f"{path}: unknown column(s) {', '.join(unknown)}; "
                f"known optional columns: {', '.join(OPTIONAL)}"
            )
        commands: dict[str, SendTemplate] = {}
        errors: list[RowError] = []
        for line, values in _rows(reader):
            command, problems = _command(values, campaign, source)
            if command is None:
                errors.append(RowError(line, tuple(problems)))
            else:
                commands.setdefault(command.data.command_id, command)
        return list(commands.values()), errors


def _rows(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, str]]]:
    for values in reader:
        clean = {(k or "").strip(): (v or "") for k, v in values.items()}
        if not any(v.strip() for v in clean.values()):
            continue
        yield reader.line_num, clean


def _command(
    values: dict[str, str], campaign: str | None, source: str
) -> tuple[SendTemplate | None, list[str]]:
    """The row's command, or None and every problem of the row (not only the first)."""

    def opt(name: str) -> str | None:
        value = values.get(name, "").strip()
        return value or None

    problems: list[str] = []
    campaign_id = campaign or opt("campaign_id")
    if campaign_id is None:
        problems.append("campaign_id: missing (add the column or pass --campaign)")
    # Validated even without a campaign, so the row's other problems are found too.
    options: dict[str, Any] = {"campaign_id": campaign_id}
    for name in ("route", "product_policy", "provider", "callback_data", "not_after"):
        if opt(name):
            options[name] = opt(name)
    if opt("tracking_token"):
        options["labels"] = {"tracking_token": opt("tracking_token")}
    try:
        sharing = _flag(values.get("activity_sharing", ""))
    except ValueError as exc:
        problems.append(f"activity_sharing: {exc}")
        sharing = None
    if sharing is not None:
        options["message_activity_sharing"] = sharing
    try:
        command = send_template(
            command_id=row_command_id(campaign_id or "", values),
            waba_id=values["waba_id"].strip(),
            phone_number_id=values["phone_number_id"].strip(),
            to=values["to"].strip(),
            template_name=values["template"].strip(),
            language=values["language"].strip(),
            category=(opt("category") or "").upper() or None,
            components=_components(values.get("params", "")),
            source=source,
            **options,
        )
    except ValidationError as exc:
        problems.extend(_explain(exc))
    else:
        if not problems:
            return command, problems
    return None, problems


def _explain(exc: ValidationError) -> list[str]:
    """Each problem under the name of its CSV column."""
    explained = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        column = next(
            (name for path, name in _COLUMN_OF.items() if loc[: len(path)] == path),
            ".".join(loc) or "row",
        )
        # A validator's own words, without pydantic's "Value error, " in front.
        reason = err["ctx"]["error"] if err["type"] == "value_error" else err["msg"]
        explained.append(f"{column}: {reason}")
    return explained
