"""A one-worker replay's store, loaded by a second process while this one fingerprints.

Once a replay's state is whole, writing it to a store is serial work on top of
the digest: serialise every entity with its lookup columns, insert the rows,
build the indexes, commit, read the rows back to check their digest. On the
benchmark's log that was about 0.45 s beside the 0.3 s the digest alone takes,
on one core, with the machine's other core idle.

So the state is handed to a forked process (fork: the state is shared, never
copied or serialised to cross over), which opens its own connection (a
connection must not cross a fork: this process closes its one first and opens
it again after), loads the rows and offsets in one transaction and checks the
stored digest, as :func:`audit.write_rows` does in one process. This process
meanwhile serialises the same state for the digest alone, and then requires
the loader's digest, taken over the rows it stored, to be its own.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

from services.projections.audit import write_rows
from services.projections.projection import Projection
from services.projections.rows import serialised
from services.projections.shard import Stages
from services.projections.store import Offsets, Store, StoreError

# How long the loader may take to exit once it has answered.
LOADER_EXIT_S = 30.0


def finish_beside(
    projection: Projection,
    store: Store,
    *,
    name: str,
    offsets: Offsets,
    stages: Stages | None = None,
) -> dict[str, str]:
    """:func:`audit.finish` with a store: the same digests, rows and offsets."""
    started = time.process_time()
    projection.settle()  # before the fork: the loader must not derive the rows again
    if stages is not None:
        stages.add("aggregates", time.process_time() - started)
    fork = multiprocessing.get_context("fork")
    answer, reply = fork.Pipe(duplex=False)
    store.close()
    loader = fork.Process(
        target=_load, args=(projection, store.url, name, offsets, reply), daemon=True
    )
    loader.start()
    reply.close()
    try:
        serialising = 0.0

        def spent(seconds: float) -> None:
            nonlocal serialising
            serialising += seconds

        rows = serialised(projection.sorted_entities(), columns=False, spent=spent)
        digests = write_rows(rows, projection.specs, None, name=name, offsets=offsets)
        try:
            result: dict[str, Any] = answer.recv()
        except EOFError:
            loader.join(LOADER_EXIT_S)
            raise StoreError(
                f"the process loading the store stopped (exit code {loader.exitcode})"
            ) from None
        loader.join(LOADER_EXIT_S)
    finally:
        if loader.is_alive():
            loader.terminate()
        answer.close()
        store.open()
    if "error" in result:
        raise StoreError(result["error"])
    if result["digests"] != digests:
        raise StoreError(f"stored digests {result['digests']} differ from memory {digests}")
    if stages is not None:
        stages.add("rows+digest", serialising)
        stages.add("store", result["store"])
        stages.add("verify", result["verify"])
    return digests


def _load(projection: Projection, url: str, name: str, offsets: Offsets, reply: Connection) -> None:
    """In the forked loader: the rows and offsets into the store, its digests back."""
    stages = Stages()
    try:
        with Store(url) as store:
            rows = serialised(projection.sorted_entities(), columns=True, spent=lambda _: None)
            started = time.process_time()
            digests = write_rows(
                rows, projection.specs, store, name=name, offsets=offsets, stages=stages
            )
        reply.send(
            {
                "digests": digests,
                "store": time.process_time() - started - stages.seconds.get("verify", 0.0),
                "verify": stages.seconds.get("verify", 0.0),
            }
        )
    except (StoreError, OSError, ValueError) as exc:
        reply.send({"error": f"{type(exc).__name__}: {exc}"})
    except Exception as exc:
        reply.send({"error": f"loading the store failed: {type(exc).__name__}: {exc}"})
    finally:
        reply.close()
