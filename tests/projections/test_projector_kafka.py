"""The projector on the real broker: exact state in SQLite, resumption, replay digests, API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from services.common.serving import ServeInThread
from services.common.settings import CommonSettings
from services.projections.api import query_app
from services.projections.projection import choose
from services.projections.replay import replay
from services.projections.store import Store
from tests.projections import events as ev
from tests.projections.support import (
    campaign,
    caught_up,
    expected_state,
    projector_running,
    publish_log,
)


async def test_live_projection_equals_the_fold_and_resumes_from_its_stored_offsets(
    kafka_settings: CommonSettings, tmp_path: Path
) -> None:
    first, second = campaign(40), campaign(20, first=41)
    await publish_log(kafka_settings, first)
    url = f"sqlite:///{tmp_path / 'live.db'}"
    with Store(url) as store:
        async with projector_running(kafka_settings, store) as projector:
            await caught_up(projector, len(first))
            assert projector.ready.is_set()
        # Stopped; more events arrive; a new projector resumes from the stored offsets.
        await publish_log(kafka_settings, second)
        async with projector_running(kafka_settings, store) as projector:
            await caught_up(projector, len(second))
            assert projector.read == len(second), "resumed, not re-read"
        offsets, digest = store.snapshot("live", expected_state([]).kinds)
    assert digest == expected_state(first + second).digest()
    assert sum(offsets.values()) == len(first) + len(second)


async def test_replays_give_the_live_digest_and_an_audit_report(
    kafka_settings: CommonSettings, tmp_path: Path
) -> None:
    log = [*campaign(30), ev.status(None, "delivered", 4, wamid="wamid.unknown")]
    await publish_log(kafka_settings, log)
    live_url = f"sqlite:///{tmp_path / 'live.db'}"
    with Store(live_url) as store:
        async with projector_running(kafka_settings, store) as projector:
            await caught_up(projector, len(log))
        _, live_digest = store.snapshot("live", projector.projection.kinds)
    specs = choose(None)
    reports = [
        await replay(
            kafka_settings,
            specs,
            store_url=f"sqlite:///{tmp_path / f'replay{i}.db'}",
            offsets_of=(live_url, "live"),
        )
        for i in range(2)
    ]
    assert reports[0].digests == reports[1].digests
    assert reports[0].digests["all"] == live_digest
    report = reports[0]
    assert report.messages_by_state["failed"] == 3
    assert report.anomalies["status_for_unknown_message"] == 1
    assert report.events_by_type["send.template"] == 30
    # In memory only, the same digest.
    in_memory = await replay(kafka_settings, specs, store_url=None)
    assert in_memory.digests["all"] == live_digest


async def test_query_api_answers_from_the_store(
    kafka_settings: CommonSettings, tmp_path: Path
) -> None:
    log = campaign(12)
    await publish_log(kafka_settings, log)
    with Store(f"sqlite:///{tmp_path / 'api.db'}") as store:
        async with projector_running(kafka_settings, store) as projector:
            await caught_up(projector, len(log))
        app = query_app(store, ready=lambda: {"ready": True})
        with ServeInThread(app) as server:
            async with httpx.AsyncClient(base_url=server.base_url) as api:
                funnel = (await api.get("/v1/campaigns/spring/funnel")).json()
                by_command = (await api.get(f"/v1/messages/{ev.cid(3)}")).json()
                by_wamid = (await api.get("/v1/messages/wamid.3")).json()
                page1 = (
                    await api.get("/v1/messages", params={"campaign_id": "spring", "limit": 5})
                ).json()
                page2 = (
                    await api.get(
                        "/v1/messages",
                        params={"campaign_id": "spring", "limit": 5, "after": page1["next"]},
                    )
                ).json()
                waba = (await api.get(f"/v1/wabas/{ev.WABA}")).json()
                user = (await api.get(f"/v1/suppressions/{ev.USER}")).json()
                stopped = (await api.get("/v1/suppressions", params={"since": "2026-11-20"})).json()
                template = (await api.get(f"/v1/templates/{ev.WABA}/spring_sale")).json()
                clicks = (await api.get("/v1/clicks", params={"tracking_token": "tok"})).json()
                bad = await api.get("/v1/messages", params={"since": "yesterday"})
                missing = await api.get("/v1/messages/nope")
                later = await api.get("/v1/campaigns/spring/funnel", params={"since": "2026-11-21"})
    assert funnel["funnel"] == {
        "requested": 12,
        "accepted": 11,
        "sent": 11,
        "delivered": 11,
        "read": 4,
        "failed": 1,
        "suppressed": 0,
        "rejected": 0,
        "indeterminate": 0,
        "fell_back": 0,
        "clicked": 4,
    }
    assert funnel["billable_by_category"] == {"marketing_lite": 11}
    assert by_command == by_wamid
    assert by_command["state"] == "read"
    assert [s["what"] for s in by_command["history"]] == [
        "requested",
        "attempt 1",
        "accepted",
        "sent",
        "delivered",
        "delivered",
        "read",
    ]
    assert len(page1["items"]) == 5
    assert {m["command_id"] for m in page1["items"]}.isdisjoint(
        {m["command_id"] for m in page2["items"]}
    )
    assert (waba["status"], waba["via"], waba["phone_numbers"]) == (
        "onboarded",
        "waba",
        [ev.NUMBER],
    )
    assert user["stopped_marketing"] is True
    assert [s["user_id"] for s in stopped["items"]] == [ev.USER]
    assert template["status"] == "APPROVED"
    assert (clicks["clicks"], clicks["campaign_id"]) == (4, "spring")
    assert bad.status_code == 400
    assert "ISO 8601" in bad.json()["error"]
    assert bad.json()["parameter"] == "since"
    assert missing.status_code == 404
    assert missing.json() == {"error": "no message with command id or wamid nope"}
    assert later.status_code == 404


async def test_replay_cli_prints_the_report_and_refuses_a_used_store(
    kafka_settings: CommonSettings, tmp_path: Path
) -> None:
    log = campaign(10)
    await publish_log(kafka_settings, log)
    env = {
        "PATH": os.environ["PATH"],
        "MMBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "MMBUS_TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    store = f"sqlite:///{tmp_path / 'audit.db'}"

    def replay_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            [sys.executable, "-m", "services.cli", "replay", "--store", store, *args], env
        )

    first = replay_cli("--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["records_read"] == len(log)
    assert report["digests"]["all"] == expected_state(log).digest()
    used = replay_cli()
    assert used.returncode == 1
    assert "already holds projections" in used.stderr
    wrong = run_cli(
        [sys.executable, "-m", "services.cli", "replay", "--projection", "billing"], env
    )
    assert wrong.returncode == 2
    assert "unknown projection(s) billing" in wrong.stderr
    assert "Traceback" not in used.stderr + wrong.stderr


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)


async def test_replay_until_a_point_in_time_stops_at_the_log_as_it_stood(
    kafka_settings: CommonSettings,
) -> None:
    before = campaign(8)
    await publish_log(kafka_settings, before)
    cut = datetime.now(UTC)
    # The next records must be logged strictly after the cut (timestamps are in ms).
    while datetime.now(UTC) - cut < timedelta(milliseconds=3):
        pass
    after = campaign(5, first=9)
    await publish_log(kafka_settings, after)
    specs = choose(None)
    at_cut = await replay(kafka_settings, specs, store_url=None, until=cut)
    everything = await replay(kafka_settings, specs, store_url=None)
    assert at_cut.records_read == len(before)
    assert at_cut.digests["all"] == expected_state(before).digest()
    assert everything.digests["all"] == expected_state(before + after).digest()
