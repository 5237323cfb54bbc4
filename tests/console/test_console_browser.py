"""The console in a real browser, on the demo campaign run end to end on the real broker.

The page is opened before the campaign is published (it says the campaign is
not found), and must show it without a reload as events arrive; once the
campaign has settled, the funnel, the billing split, the onboarding table and
the errors on the page must equal what the query API returns. One message is
followed from the campaign view to its history. Every view is saved as a
screenshot under pytest's tmp dir (the paths are printed); with
MMBUS_CONSOLE_SCREENSHOT=docs/console.png the README's screenshot is written too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from services.campaign_csv import read_commands
from services.common.logging import mask_phone
from services.common.settings import CommonSettings
from services.demo import DEMO_CSV, DemoStack
from tests.console.browser import CHROMIUM, Browser, browser, cells, number
from tests.projections.test_demo_e2e import CAMPAIGN, send_csv

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"needs Debian's chromium at {CHROMIUM} (scripts/ensure-prereqs.sh installs it)",
)
STAGES = ("requested", "accepted", "sent", "delivered", "read", "clicked")
OTHER = ("failed", "suppressed", "rejected", "indeterminate", "fell_back")
ROUTE_COLUMNS = ("requested", "accepted", "sent", "delivered", "read", "failed", "fell_back")
SHOWS_FUNNEL = """expected => Object.entries(expected).every(([stage, n]) => {
  const shown = document.querySelector(`[data-stage="${stage}"]`);
  return shown !== null && Number(shown.textContent.replace(/[^0-9]/g, "")) === n;
})"""


def shown_funnel(b: Browser) -> dict[str, int]:
    return {s: number(b.page.inner_text(f"[data-stage={s}]")) for s in (*STAGES, *OTHER)}


def check_billing(b: Browser, billing: dict[str, Any]) -> None:
    categories = sorted({c for r in billing["routes"] for c in r["billable_by_category"]})
    assert billing["routes"], "the demo sends on both routes"
    for route in billing["routes"]:
        row = cells(b.page, f"[data-testid=billing] tr[data-route={route['route']}]")
        assert row[0].startswith(route["api"]), row
        expected = [route[c] for c in ROUTE_COLUMNS]
        expected += [route["billable_by_category"].get(c, 0) for c in categories]
        assert [number(c) for c in row[1:]] == [*expected, route["billable"]], route["route"]
    for category, n in billing["billable_by_category"].items():
        assert number(b.page.inner_text(f"[data-category={category}] b")) == n
    assert number(b.page.inner_text("[data-testid=fell-back-count]")) == billing["fell_back"]


def check_onboarding(b: Browser, onboarding: dict[str, Any], wabas: list[dict[str, Any]]) -> None:
    assert [w["waba_id"] for w in wabas] == [w["waba_id"] for w in onboarding["wabas"]]
    for waba in onboarding["wabas"]:
        row = cells(b.page, f"[data-testid=wabas] tr[data-waba='{waba['waba_id']}']")
        numbers = ", ".join(waba["phone_numbers"]) or "–"
        expected = [waba["waba_id"], waba["status"], waba["meta_status"] or "–"]
        assert [row[0], row[1], row[2], row[4], row[7]] == [*expected, waba["via"], numbers]
    for n in onboarding["numbers"]:
        row = cells(b.page, f"[data-testid=numbers] tr[data-number='{n['phone_number_id']}']")
        assert row[:3] == [n["phone_number_id"], n["waba_id"], n["status"]]
    for p in onboarding["portfolios"]:
        row = cells(b.page, f"[data-testid=portfolios] tr[data-business='{p['business_id']}']")
        assert row[4] == (", ".join(p["wabas"]) or "–")


def check_errors(b: Browser, errors: dict[str, Any]) -> None:
    for failure in errors["failures"]:
        row = cells(b.page, f"[data-testid=failures] tr[data-code='{failure['code'] or ''}']")
        assert [row[1], number(row[2])] == [failure["title"] or "–", failure["count"]]
    shown = b.page.locator("[data-testid=suppressions] tbody tr").count()
    assert shown == len(errors["suppressions"])


def check_masking(b: Browser, recipients: set[str]) -> None:
    table = ["447911123456", "+44 7911 123456", "5511987654321", "12345", "1234", ""]
    masked = b.page.evaluate("xs => xs.map(window.mmbusConsole.maskPhone)", table)
    assert masked == [mask_phone(x) for x in table]
    page = b.page.content()
    assert not [r for r in recipients if r in page], "a phone number shown unmasked"


def test_console_shows_the_demo_campaign_live_as_the_api_does(
    kafka_settings: CommonSettings, tmp_path: Path
) -> None:
    commands, errors = read_commands(DEMO_CSV, campaign=CAMPAIGN)
    assert not errors
    recipients = {c.data.to for c in commands}
    with (
        DemoStack(kafka_settings, tmp_path / "demo") as stack,
        browser(tmp_path) as b,
        httpx.Client(base_url=stack.query_url, timeout=10) as api,
    ):
        page = b.page
        page.goto(f"{stack.query_url}/#/campaigns/{CAMPAIGN}")
        assert CAMPAIGN in page.inner_text("[data-testid=not-found]")
        page.evaluate("window.sameDocument = true")

        published = send_csv(kafka_settings)
        assert published.returncode == 0, published.stderr
        page.wait_for_selector("[data-testid=funnel]", timeout=60_000)
        stack.settle(CAMPAIGN, len(commands), timeout_s=180)
        funnel = api.get(f"/v1/campaigns/{CAMPAIGN}/funnel").json()
        page.wait_for_function(SHOWS_FUNNEL, arg=funnel["funnel"], timeout=20_000)
        assert page.evaluate("window.sameDocument") is True, "updated without a reload"
        assert shown_funnel(b) == {s: funnel["funnel"][s] for s in (*STAGES, *OTHER)}
        check_billing(b, api.get("/v1/billing", params={"campaign_id": CAMPAIGN}).json())
        page.wait_for_selector("#live[data-lag='0']", timeout=20_000)
        assert api.get("/ready").json()["lag"] == 0
        timeline = api.get(f"/v1/campaigns/{CAMPAIGN}/timeline").json()
        for series in ("delivered", "read", "clicked"):
            total = number(page.inner_text(f"[data-series={series}]"))
            assert total == sum(p[series] for p in timeline["points"]) == funnel["funnel"][series]
        check_masking(b, recipients)
        b.shot("campaign")
        b.readme_shot()

        # One message, from the campaign's table to its history.
        first = page.locator("[data-testid=messages] tr[data-message]").first
        key = first.get_attribute("data-message")
        assert key
        first.locator("a").first.click()
        page.wait_for_selector("[data-testid=history]")
        detail = api.get(f"/v1/messages/{key}").json()
        steps = page.locator("[data-testid=history] tr[data-step] td:nth-child(2)")
        assert steps.all_inner_texts() == [h["what"] for h in detail["history"]]
        assert mask_phone(detail["recipient"]) in page.inner_text("main")
        check_masking(b, recipients)
        b.shot("message")

        page.goto(f"{stack.query_url}/#/billing/{CAMPAIGN}")
        page.wait_for_selector("[data-testid=fell-back]")
        check_billing(b, api.get("/v1/billing", params={"campaign_id": CAMPAIGN}).json())
        fell_back = page.locator("[data-testid=fell-back] tr[data-message]").count()
        assert fell_back == funnel["funnel"]["fell_back"] > 0
        check_masking(b, recipients)
        b.shot("billing")

        page.goto(f"{stack.query_url}/#/onboarding")
        page.wait_for_selector("[data-testid=wabas]")
        check_onboarding(b, api.get("/v1/onboarding").json(), api.get("/v1/wabas").json()["items"])
        b.shot("onboarding")

        page.goto(f"{stack.query_url}/#/errors/{CAMPAIGN}")
        page.wait_for_selector("[data-testid=failures], [data-testid=failures-empty]")
        check_errors(b, api.get("/v1/errors", params={"campaign_id": CAMPAIGN}).json())
        b.shot("errors")

        page.goto(f"{stack.query_url}/#/message/wamid.nothing")
        assert "wamid.nothing" in page.inner_text("[data-testid=not-found]")

        page.goto(f"{stack.query_url}/docs")
        page.wait_for_selector(".opblock", timeout=20_000)
        operations = sum(len(ops) for ops in api.get("/openapi.json").json()["paths"].values())
        assert page.locator(".opblock").count() == operations
        b.shot("docs")
    assert b.outside == [], "the console and the docs load nothing from the internet"
