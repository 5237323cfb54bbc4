"""Partial states as files: what a replay worker hands back, wherever it ran.

A directory holds the plan (``plan.json``) and one file per worker
(``part-<n>.jsonl``): a header line (the plan's id, the worker, its segments
and tallies), then one line per chunk of up to ``CHUNK`` entities of one kind,
``kind<TAB>{"key": <canonical JSON>, ...}``, each entity the same document the
store holds and the digest is taken over. Nothing in a file is executed; it is
parsed and validated as the store's rows are when a projector reloads them. A
file is written under a temporary name and renamed when complete, so a reader
never sees half of one.

A chunk is serialised in one call, which makes writing the file, while the
joiner waits for it, about a third cheaper than a call per entity (reading
costs the same either way: the validation is the cost); a chunk rather than a
whole kind keeps the memory of a large state bounded. Files of the first
format, one line per entity, are still read.
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson

from services.projections.join import Partial, Segment, Tally
from services.projections.plan import PlanError, ReplayPlan
from services.projections.projection import DERIVED_KINDS, choose
from services.projections.rows import dump_doc, load_doc, load_table

PART_FORMAT = "mmbus-replay-partial/2"
LINE_PER_ENTITY = "mmbus-replay-partial/1"
CHUNK = 1024
PLAN_FILE = "plan.json"


def plan_path(directory: Path) -> Path:
    return directory / PLAN_FILE


def part_path(directory: Path, shard: int) -> Path:
    return directory / f"part-{shard}.jsonl"


def write_plan(directory: Path, plan: ReplayPlan) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = plan_path(directory)
    atomic_write(path, orjson.dumps(plan.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    return path


def read_plan(directory: Path) -> ReplayPlan:
    path = plan_path(directory)
    try:
        return ReplayPlan.from_dict(orjson.loads(path.read_bytes()))
    except FileNotFoundError as exc:
        raise PlanError(f"no replay plan in {directory} (make one with --plan)") from exc
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{path} is not a readable replay plan: {exc}") from exc


def segments_json(segments: dict[Segment, Tally]) -> list[dict[str, Any]]:
    """The log segments a worker read and what it counted there, as JSON."""
    return [
        {
            "spans": [list(span) for span in segment],
            "read": tally.read,
            "by_type": dict(tally.by_type),
            "undecodable": dict(tally.undecodable),
        }
        for segment, tally in segments.items()
    ]


def segments_of(raw: list[dict[str, Any]]) -> dict[Segment, Tally]:
    return {
        tuple((str(t), int(p), int(a), int(b)) for t, p, a, b in seg["spans"]): Tally(
            int(seg["read"]), dict(seg["by_type"]), dict(seg["undecodable"])
        )
        for seg in raw
    }


def write_partial(path: Path, partial: Partial, *, plan_id: str, shard: int) -> None:
    header: dict[str, Any] = {
        "format": PART_FORMAT,
        "plan": plan_id,
        "shard": shard,
        "projections": [s.name for s in partial.specs],
        "segments": segments_json(partial.segments),
    }
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(orjson.dumps(header) + b"\n")
        for kind, table in partial.entities.items():
            entities = iter(table.items())
            while chunk := dict(islice(entities, CHUNK)):
                out.write(kind.encode() + b"\t" + dump_doc(chunk) + b"\n")
    os.replace(tmp, path)


def header_of(
    src: IO[bytes], path: Path, formats: tuple[str, ...], plan_id: str | None
) -> dict[str, Any]:
    """A worker's file's header line, refused if it is of another kind or plan."""
    try:
        header = orjson.loads(src.readline())
    except orjson.JSONDecodeError as exc:
        raise PlanError(f"{path} is not a replay worker's output: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") not in formats:
        raise PlanError(f"{path} is not a replay worker's output")
    if plan_id is not None and header.get("plan") != plan_id:
        raise PlanError(f"{path} belongs to plan {header.get('plan')}, not {plan_id}")
    return header


def read_partial(path: Path, *, plan_id: str | None = None) -> tuple[int, Partial]:
    """(the worker's index, its partial state); refused if it belongs to another plan."""
    with path.open("rb") as src:
        header = header_of(src, path, (PART_FORMAT, LINE_PER_ENTITY), plan_id)
        specs = choose(header["projections"])
        entities: dict[str, dict[str, Any]] = {}
        chunked = header["format"] == PART_FORMAT
        try:
            for line in src:
                head, doc = line.rstrip(b"\n").split(b"\t", 1)
                if chunked:
                    kind = head.decode()
                    entities.setdefault(kind, {}).update(load_table(kind, doc))
                else:
                    kind, key = orjson.loads(head)
                    entities.setdefault(kind, {})[key] = load_doc(kind, doc)
        except (ValueError, TypeError, KeyError) as exc:
            raise PlanError(f"{path} is not a readable partial state: {exc}") from exc
    segments = segments_of(header["segments"])
    for spec in specs:
        for kind in spec.kinds:
            if kind not in DERIVED_KINDS:
                entities.setdefault(kind, {})
    return int(header["shard"]), Partial(specs, entities, segments)


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
