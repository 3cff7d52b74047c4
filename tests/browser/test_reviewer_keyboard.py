"""The reviewer's journeys in a real headless Chromium (Debian's /usr/bin/chromium).

Without Chromium these tests skip with a reason; in CI (CI=true) that skip is a failure.
Screenshots of every page go to test-output/<test name>/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group
from django.db import connections

from generation.models import Generation
from generation.services.rendering import generation_run
from generation.services.requests import generation_request
from pipelines.models import Pipeline
from pipelines.services.revisions import revision_create
from reviews.models import Comparison, IssueReport, RatingDimension, Review, ReviewDraft
from tests.browser.conftest import wait_for
from tests.conftest import chromium_launch_args, require_chromium
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.browser,
    # The live server runs in another thread, so the test cannot hold a transaction open; the
    # rating_dimensions fixture puts the migration's rating dimensions back for every test.
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("rating_dimensions"),
]

PASSWORD = "pass-12345"
TIMEOUT_MS = 10_000
# Chromium's accessibility roles of things a person operates.
INTERACTIVE_ROLES = {
    "button",
    "checkbox",
    "combobox",
    "link",
    "listbox",
    "menuitem",
    "radio",
    "searchbox",
    "slider",
    "spinbutton",
    "switch",
    "tab",
    "textbox",
}


@pytest.fixture(autouse=True)
def _quiet_metrics(settings):
    # Rendered videos are measured after they finish; OCR would only slow these tests down.
    settings.METRICS_OCR_ENABLED = False


@pytest.fixture
def browser(monkeypatch) -> Iterator:
    require_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # still plain synchronous code, so Django's async-safety guard does not apply to them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as p:
        launched = p.chromium.launch(**chromium_launch_args())
        yield launched
        launched.close()
        # ORM calls made while Playwright's loop runs use their own connection (Django keys
        # connections by context there); close it, or PostgreSQL cannot drop the test database.
        connections.close_all()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _member(username: str = "rita"):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


def _builtin() -> Pipeline:
    return Pipeline.objects.get(slug="builtin")


def _rendered(prompt: str, revision=None) -> Generation:
    generation, _ = generation_request(
        pipeline=_builtin(), prompt=prompt, revision=revision, enqueue=False
    )
    generation = generation_run(generation_id=str(generation.id))
    assert generation.status == Generation.Status.SUCCEEDED, generation.error
    return generation


def _log_in_with_keyboard(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/")
    page.wait_for_selector("#id_username:focus")  # autofocus
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/accounts/login/" not in page.url, "the login failed"


def _tab_to(page, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching ``selector`` has focus (keyboard reachability)."""
    for _ in range(limit):
        if page.evaluate(
            "s => document.activeElement && document.activeElement.matches(s)", selector
        ):
            return
        page.keyboard.press("Tab")
    pytest.fail(f"{selector} cannot be reached with Tab")


def _video_time(page, index: int = 0) -> float:
    return page.evaluate("i => document.querySelectorAll('video')[i].currentTime", index)


def _unnamed_controls(page) -> list[str]:
    """Interactive nodes of Chromium's accessibility tree that have no accessible name."""
    cdp = page.context.new_cdp_session(page)
    nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    cdp.detach()
    missing = []
    for node in nodes:
        role = (node.get("role") or {}).get("value", "")
        name = ((node.get("name") or {}).get("value") or "").strip()
        if not node.get("ignored") and role in INTERACTIVE_ROLES and not name:
            missing.append(f"{role} (backend node {node.get('backendDOMNodeId')})")
    return missing


def _assert_all_controls_named(page) -> None:
    missing = _unnamed_controls(page)
    assert not missing, f"controls without an accessible name: {missing}"


def test_reviewer_plays_rates_marks_an_issue_and_lands_on_the_next_video_by_keyboard(
    page, live_server, active_revision, output_dir
):
    started = time.monotonic()
    _member()
    first = _rendered("A policy briefing on renewable energy initiatives")
    second = _rendered("Quarterly update on city public transport ridership")
    fps = first.fps
    base = live_server.url

    page.goto(f"{base}/")
    _assert_all_controls_named(page)
    page.screenshot(path=output_dir / "00-login.png", full_page=True)
    _log_in_with_keyboard(page, base, "rita")
    assert page.url == f"{base}/review/", "reviewers land on their queue"
    assert page.locator("#waiting").inner_text() == "2"
    _assert_all_controls_named(page)
    page.screenshot(path=output_dir / "01-queue.png", full_page=True)
    _tab_to(page, "#start-review")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/review/{first.id}/")
    wait_for(page, "document.querySelector('video').readyState >= 2")
    _assert_all_controls_named(page)

    # Play with Space: the clock advances. Space again pauses.
    page.keyboard.press("Escape")  # leave any control: page shortcuts apply
    page.keyboard.press("Space")
    wait_for(page, "document.querySelector('video').currentTime > 0.3")
    assert page.locator("#player button.play").inner_text() == "Pause"
    page.keyboard.press("Space")
    wait_for(page, "document.querySelector('video').paused")

    # Speed: two steps slower with "[" is 0.5x, shown in the speed control.
    page.keyboard.press("[")
    page.keyboard.press("[")
    assert page.evaluate("document.querySelector('video').playbackRate") == 0.5
    assert page.locator("#speed").input_value() == "0.5"

    # Frame step forward: exactly one frame, shown in the frame readout.
    page.keyboard.press("Home")  # (no shortcut: makes sure the page ignores unknown keys)
    frame_before = int(page.locator("#frame").inner_text())
    page.keyboard.press(".")
    wait_for(page, f"document.querySelector('#frame').textContent === '{frame_before + 1}'")
    assert _video_time(page) == pytest.approx((frame_before + 1.5) / fps, abs=1e-3)
    page.keyboard.press(",")
    wait_for(page, f"document.querySelector('#frame').textContent === '{frame_before}'")

    # Seek: back to the start with the seek bar's Home key, then +1 s with the arrow shortcut.
    _tab_to(page, "#seek")
    page.keyboard.press("Home")
    wait_for(page, "document.querySelector('video').currentTime < 0.1")
    page.keyboard.press("Escape")  # leave any control: page shortcuts apply
    page.keyboard.press("ArrowRight")
    wait_for(page, "Math.abs(document.querySelector('video').currentTime - 1.0) < 0.06")

    # Rate every dimension with the keyboard: in a group, a digit rates it and moves on.
    slugs = list(RatingDimension.objects.filter(active=True).values_list("slug", flat=True))
    values = ["4", "5", "3", "4", "5", "2", "3"][: len(slugs)]
    _tab_to(page, f"input[name='rating_{slugs[0]}']")
    for value in values:
        page.keyboard.press(value)
    for slug, value in zip(slugs, values, strict=True):
        assert page.locator(f"input[name='rating_{slug}']:checked").get_attribute("value") == value

    # Nothing is lost: the draft reaches the server and comes back after a reload.
    wait_for(page, "document.querySelector('#draft-status').dataset.state === 'saved'")
    assert ReviewDraft.objects.filter(generation=first).exists()
    page.reload()
    wait_for(page, "document.querySelector('video').readyState >= 1")
    for slug, value in zip(slugs, values, strict=True):
        assert page.locator(f"input[name='rating_{slug}']:checked").get_attribute("value") == value

    # Mark an issue at the current time with "i", pick its category by typing, end it with "e".
    page.keyboard.press("Escape")  # leave any control: page shortcuts apply
    page.keyboard.press("ArrowRight")  # 1 s in
    wait_for(page, "document.querySelector('video').currentTime >= 0.99")
    start = _video_time(page)
    page.keyboard.press("i")
    category = page.locator("#id_issues-0-category")
    assert category.evaluate("el => el === document.activeElement")
    page.keyboard.press("b")  # type-ahead in the select: "blur"
    assert category.input_value() == "blur"
    page.keyboard.press("Escape")
    for _ in range(3):
        page.keyboard.press(".")
    page.keyboard.press("e")
    end = _video_time(page)
    assert float(page.locator("#id_issues-0-start_s").input_value()) == pytest.approx(
        start, abs=1e-3
    )
    assert float(page.locator("#id_issues-0-end_s").input_value()) == pytest.approx(end, abs=1e-3)
    assert end > start

    # The issue is a marker on the timeline; activating it seeks to the issue's start.
    marker = page.locator("#markers .marker")
    assert marker.count() == 1
    page.keyboard.press("Escape")  # leave any control: page shortcuts apply
    page.keyboard.press("Shift+ArrowLeft")  # back 5 s: the start
    wait_for(page, "document.querySelector('video').currentTime === 0")
    _tab_to(page, "#markers .marker")
    page.keyboard.press("Enter")
    wait_for(page, f"Math.abs(document.querySelector('video').currentTime - {start}) < 0.01")

    _tab_to(page, "#id_comments")
    page.keyboard.type("Text is sharp <b>but</b> the end flickers")
    _assert_all_controls_named(page)
    page.screenshot(path=output_dir / "02-review-filled.png", full_page=True)

    # Submit with Ctrl+Enter: one transaction, then the next video opens.
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"{base}/review/{second.id}/")
    assert "Review saved" in page.locator(".messages").inner_text()
    wait_for(page, "document.querySelector('video').readyState >= 1")
    page.screenshot(path=output_dir / "03-next-video.png", full_page=True)

    review = Review.objects.get(generation=first)
    assert review.comments == "Text is sharp <b>but</b> the end flickers"
    assert {r.dimension.slug: r.value for r in review.ratings.select_related("dimension")} == {
        slug: int(v) for slug, v in zip(slugs, values, strict=True)
    }
    issue = IssueReport.objects.get(review=review)
    assert issue.category == "blur"
    assert issue.start_s == pytest.approx(start, abs=1e-3)
    assert issue.end_s == pytest.approx(end, abs=1e-3)
    assert review.seconds_spent and review.seconds_spent > 0
    assert not ReviewDraft.objects.filter(generation=first).exists()
    assert time.monotonic() - started < 60


def test_bad_issue_range_shows_the_error_next_to_the_field_and_saves_nothing(
    page, live_server, active_revision, output_dir
):
    _member()
    generation = _rendered("An explainer on household water conservation")
    base = live_server.url
    _log_in_with_keyboard(page, base, "rita")
    page.goto(f"{base}/review/{generation.id}/")
    wait_for(page, "document.querySelector('video').readyState >= 1")

    page.keyboard.press("Escape")  # leave any control: page shortcuts apply
    for _ in range(5):  # no group focused: each digit rates the first unrated dimension
        page.keyboard.press("4")
    page.keyboard.press("i")
    page.keyboard.press("f")  # "flicker"
    page.keyboard.press("Escape")
    page.locator("#id_issues-0-start_s").fill("1.5")
    page.locator("#id_issues-0-end_s").fill("0.5")
    page.locator("#id_comments").fill("<script>document.title='pwned'</script>")
    page.locator("#id_comments").press("Control+Enter")
    page.wait_for_load_state()

    error = page.locator("#id_issues-0-end_s-error")
    assert "before the start" in error.inner_text()
    assert page.locator("#id_issues-0-end_s").get_attribute("aria-invalid") == "true"
    assert page.locator("#form-errors[role=alert]").is_visible()
    # What the reviewer typed is still there, and the comment is text, not a script.
    assert page.locator("#id_issues-0-category").input_value() == "flicker"
    assert page.locator("#id_comments").input_value() == "<script>document.title='pwned'</script>"
    assert page.title() != "pwned"
    page.screenshot(path=output_dir / "review-with-error.png", full_page=True)
    assert Review.objects.count() == 0
    assert IssueReport.objects.count() == 0


def test_blind_comparison_plays_and_seeks_both_videos_together(
    page, live_server, active_revision, small_params, output_dir
):
    member = _member()
    prompt = "A policy briefing on renewable energy initiatives"
    first = _rendered(prompt)
    other = revision_create(
        pipeline=_builtin(),
        params={**small_params, "transition_style": "cut", "seconds_per_scene": 0.9},
    )
    second = _rendered(prompt, revision=other)
    base = live_server.url
    _log_in_with_keyboard(page, base, "rita")
    _tab_to(page, "#start-compare")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/compare/*/")
    html = page.content()
    text = page.inner_text("body")  # what the reviewer reads; tokens in the markup are random
    for generation in (first, second):
        assert str(generation.id) not in html
        assert not re.search(rf"\br{generation.revision.number}\b", text)
        assert not re.search(r"\brevision\b", text, re.IGNORECASE)
    wait_for(page, "[...document.querySelectorAll('video')].every(v => v.readyState >= 2)")
    _assert_all_controls_named(page)

    # Play both with Space; pause; they stay together.
    page.keyboard.press("Escape")  # leave any control: page shortcuts apply
    page.keyboard.press("Space")
    wait_for(
        page, "[...document.querySelectorAll('video')].every(v => v.currentTime > 0.3 && !v.paused)"
    )
    page.keyboard.press("Space")
    wait_for(page, "[...document.querySelectorAll('video')].every(v => v.paused)")
    assert _video_time(page, 0) == pytest.approx(_video_time(page, 1), abs=0.1)

    # Seek with the mouse on the shared seek bar: both videos go to the same moment.
    bar = page.locator("#seek").bounding_box()
    page.mouse.click(bar["x"] + bar["width"] * 0.6, bar["y"] + bar["height"] / 2)
    wait_for(
        page,
        "(() => { const [a, b] = document.querySelectorAll('video');"
        " return a.currentTime > 0.5 && Math.abs(a.currentTime - b.currentTime) < 0.01; })()",
    )
    # …and with the keyboard: one frame forward moves both.
    left_before = _video_time(page, 0)
    page.keyboard.press("Escape")  # leave any control: page shortcuts apply
    page.keyboard.press(".")
    wait_for(page, f"document.querySelectorAll('video')[0].currentTime > {left_before}")
    assert _video_time(page, 0) == pytest.approx(_video_time(page, 1), abs=0.01)

    # Speed applies to both.
    page.keyboard.press("]")
    assert page.evaluate("[...document.querySelectorAll('video')].map(v => v.playbackRate)") == [
        1.25,
        1.25,
    ]
    page.screenshot(path=output_dir / "compare.png", full_page=True)

    # Verdict with the keyboard: focus "Left", Space selects it, Ctrl+Enter submits.
    _tab_to(page, "#id_winner_left")
    page.keyboard.press("Space")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"{base}/review/")
    comparison = Comparison.objects.get(reviewer=member)
    assert comparison.winner == "left"
    assert {comparison.left_id, comparison.right_id} == {first.id, second.id}
    page.screenshot(path=output_dir / "after-compare.png", full_page=True)


def test_staff_see_running_generations_progress_live(
    page, live_server, active_revision, output_dir
):
    UserFactory(username="boss", is_staff=True)
    generation, _ = generation_request(pipeline=_builtin(), prompt="Live progress", enqueue=False)
    base = live_server.url
    _log_in_with_keyboard(page, base, "boss")
    page.goto(f"{base}/generations/")
    row = page.locator(f"tr[data-generation='{generation.id}']")
    assert row.get_attribute("data-status") == "queued"

    Generation.objects.filter(pk=generation.pk).update(
        status=Generation.Status.RUNNING, progress=0.5
    )
    wait_for(
        page,
        f"document.querySelector(\"tr[data-generation='{generation.id}'] progress\").value === 0.5",
    )
    assert row.locator(".percent").inner_text() == "50%"
    _assert_all_controls_named(page)
    page.screenshot(path=output_dir / "generations-running.png", full_page=True)

    Generation.objects.filter(pk=generation.pk).update(status=Generation.Status.QUEUED)
    generation_run(generation_id=str(generation.id))
    wait_for(
        page,
        f"document.querySelector(\"tr[data-generation='{generation.id}']\").dataset.status"
        " === 'succeeded'",
    )
    assert row.locator("a", has_text="Watch").count() == 1
    page.screenshot(path=output_dir / "generations-finished.png", full_page=True)


def test_a_draft_survives_a_lost_connection_in_the_browser(
    page, live_server, active_revision, output_dir
):
    _member()
    generation = _rendered("An explainer on household water conservation")
    base = live_server.url
    _log_in_with_keyboard(page, base, "rita")
    review_url = f"{base}/review/{generation.id}/"

    # The server cannot be reached for drafts: the page says so and keeps a local copy.
    page.route("**/draft/", lambda route: route.abort())
    page.goto(review_url)
    wait_for(page, "document.querySelector('video').readyState >= 1")
    page.keyboard.press("3")
    page.keyboard.press("5")
    page.locator("#id_comments").fill("written while offline")
    wait_for(page, "document.querySelector('#draft-status').dataset.state === 'failed'")
    assert "this browser" in page.locator("#draft-status").inner_text()
    page.screenshot(path=output_dir / "draft-offline.png", full_page=True)
    assert not ReviewDraft.objects.exists()

    # Reopened with the server back: the local copy is restored and sent on to the server.
    page.unroute("**/draft/")
    page.goto(review_url)
    assert page.locator("#id_comments").input_value() == "written while offline"
    slugs = list(RatingDimension.objects.filter(active=True).values_list("slug", flat=True))
    assert page.locator(f"input[name='rating_{slugs[0]}']:checked").get_attribute("value") == "3"
    assert page.locator(f"input[name='rating_{slugs[1]}']:checked").get_attribute("value") == "5"
    wait_for(page, "document.querySelector('#draft-status').dataset.state === 'saved'")
    draft = ReviewDraft.objects.get(generation=generation)
    assert draft.data["comments"] == "written while offline"
