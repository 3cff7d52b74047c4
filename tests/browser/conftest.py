"""Browser fixtures: Chromium contexts at desktop and phone sizes, and the per-page checks.

Every page a journey opens goes through ``PageChecks.check``: no horizontal overflow
(``document.documentElement.scrollWidth <= innerWidth``) and no serious or critical axe-core
violation. axe-core comes from the npm registry (tests/browser/package.json; ``make test`` runs
``npm ci`` here). Screenshots and a JSON report per test go to test-output/<test name>/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.conftest import chromium_launch_args, require_chromium, skip_or_fail

AXE_JS = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
TIMEOUT_MS = 15_000
PASSWORD = "pass-12345"

VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
}
BLOCKING_IMPACTS = ("serious", "critical")


def require_axe() -> str:
    if not AXE_JS.exists():
        skip_or_fail("axe-core is not installed: run `npm ci` in tests/browser (make test does)")
    return AXE_JS.read_text()


def screenshot(page: Any, path: Path) -> None:
    """The whole page as the window shows it. Chromium's full-page capture drops touch
    emulation (a phone page would be drawn with its desktop-only parts), so a phone-sized page
    is captured through a window as tall as the page instead."""
    viewport = page.viewport_size
    if viewport != VIEWPORTS["phone"]["viewport"]:
        page.screenshot(path=str(path), full_page=True)
        return
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    try:
        page.screenshot(path=str(path))
    finally:
        page.set_viewport_size(viewport)


@dataclass
class PageChecks:
    """Runs the overflow and axe checks on a page and remembers every result."""

    output_dir: Path
    size: str
    axe_source: str
    results: list[dict[str, Any]] = field(default_factory=list)

    def check(self, page: Any, name: str) -> dict[str, Any]:
        page.wait_for_load_state("load")
        widths = page.evaluate(
            "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
        )
        # A phone browser zooms out to fit a page that is too wide, so innerWidth grows with it:
        # the window the context was made with is the width to fit.
        widths["inner"] = min(widths["inner"], page.viewport_size["width"])
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            # Evaluated through the DevTools protocol: no <script> tag, so a CSP cannot block it.
            page.evaluate(self.axe_source + "\n;undefined")
        violations = page.evaluate(
            """async () => {
                const result = await axe.run(document, {resultTypes: ["violations"]});
                return result.violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ")),
                }));
            }"""
        )
        shot = self.output_dir / f"{len(self.results):02d}-{name}-{self.size}.png"
        screenshot(page, shot)
        result = {
            "page": name,
            "size": self.size,
            "url": page.url,
            "scroll_width": widths["scroll"],
            "inner_width": widths["inner"],
            "overflow": widths["scroll"] > widths["inner"],
            "blocking": [v for v in violations if v["impact"] in BLOCKING_IMPACTS],
            "other": [
                {"id": v["id"], "impact": v["impact"]}
                for v in violations
                if v["impact"] not in BLOCKING_IMPACTS
            ],
            "screenshot": str(shot),
        }
        self.results.append(result)
        (self.output_dir / f"page-checks-{self.size}.json").write_text(
            json.dumps(self.results, indent=2)
        )
        return result

    def assert_clean(self) -> None:
        problems = []
        for r in self.results:
            reasons = []
            if r["overflow"]:
                reasons.append(f"{r['scroll_width']} px wide in a {r['inner_width']} px window")
            reasons += [
                f"axe {v['impact']} {v['id']}: {v['help']} at {v['nodes']}" for v in r["blocking"]
            ]
            if reasons:
                problems.append(f"{r['page']} ({r['size']}): " + "; ".join(reasons))
        assert not problems, "pages that fail the checks:\n" + "\n".join(problems)


@pytest.fixture
def browser(monkeypatch) -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        launched = p.chromium.launch(**chromium_launch_args())
        yield launched
        launched.close()
        # ORM calls made while Playwright's loop runs use their own connection; close it, or
        # PostgreSQL cannot drop the test database.
        connections.close_all()


@pytest.fixture
def open_context(browser) -> Iterator[Any]:
    """open_context(size) → (context, page, errors): a fresh browser profile at that size."""
    opened = []

    def make(size: str) -> tuple[Any, Any, list[str]]:
        context = browser.new_context(**VIEWPORTS[size])
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        opened.append(context)
        return context, page, errors

    yield make
    for context in opened:
        context.close()


@pytest.fixture
def checks_for(output_dir) -> Any:
    axe_source = require_axe()
    return lambda size: PageChecks(output_dir=output_dir, size=size, axe_source=axe_source)


def wait_for(page: Any, expression: str, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until a JavaScript expression is true.

    Playwright's wait_for_function evaluates its predicate with eval() inside the page, which
    the site's Content-Security-Policy forbids; page.evaluate goes through the DevTools
    protocol instead, so this polls with it.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_ms} ms waiting for: {expression}")
        page.wait_for_timeout(50)


def log_in(page: Any, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "/accounts/login/" not in page.url, f"{username} could not log in"
