"""Headless Debian chromium driven by Playwright, offline, and what the tests read off a page.

Never ``playwright install``: it downloads a browser build, which cannot be
fetched here. The machine's own chromium is launched by path with a fresh
profile, and every request for anything but the loopback server is refused
and recorded, so a page that needs the internet fails its test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Set to a path (docs/console.png) to also write the README's screenshot of the campaign view.
README_SHOT = "MMBUS_CONSOLE_SCREENSHOT"


@dataclass
class Browser:
    page: Page
    shots: Path
    outside: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"console screenshot: {path}")
        return path

    def readme_shot(self) -> None:
        target = os.environ.get(README_SHOT)
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=target)
            print(f"README screenshot: {target}")


@contextmanager
def browser(tmp_path: Path) -> Iterator[Browser]:
    shots = tmp_path / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.new_page()
            opened = Browser(page, shots)

            def loopback_only(route: Route) -> None:
                if urlsplit(route.request.url).hostname in {"127.0.0.1", "localhost"}:
                    route.continue_()
                else:
                    opened.outside.append(route.request.url)
                    route.abort()

            context.route("**/*", loopback_only)
            yield opened
        finally:
            context.close()


def number(text: str) -> int:
    """A count as the console writes it (1,234)."""
    return int(re.sub(r"[^\d]", "", text))


def cells(page: Page, selector: str) -> list[str]:
    return [c.strip() for c in page.locator(f"{selector} td").all_inner_texts()]
