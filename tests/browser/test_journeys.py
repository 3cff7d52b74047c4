"""Journeys of a reviewer, an admin and an approver in Chromium, at 1280×800 and 390×844.

Every page a journey opens is checked (tests/browser/conftest.py: PageChecks): it must not be
wider than the window, and axe-core must find no serious or critical violation. Screenshots
and the per-page results (page-checks-<size>.json) are saved under test-output/<test name>/.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from generation.models import Generation, WorkerToken
from improvements.experiments import revision_approve_as_arm
from improvements.models import AnalysisRun
from pipelines.services.revisions import revision_create
from reviews import services as review_services
from reviews.models import Review, ReviewerExclusion
from tests.browser.conftest import PASSWORD, log_in, wait_for
from tests.browser.media import video_generation

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("rating_dimensions"),
]
SIZES = ["desktop", "phone"]
User = get_user_model()


@pytest.fixture(autouse=True)
def _quiet_metrics(settings):
    settings.METRICS_OCR_ENABLED = False


def _reviewer(username: str):
    user = User.objects.create_user(username, password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


def _staff(username: str, *, superuser: bool = True, perms: tuple[str, ...] = ()):
    user = User.objects.create_user(
        username, password=PASSWORD, is_staff=True, is_superuser=superuser
    )
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def snapshot(at, shift: float = 0.0) -> dict:
    """An analysis as the improver stores it (see improvements/analysis.py)."""
    return {
        "computed_at": at.isoformat(),
        "ratings": 240,
        "reviews": 80,
        "comparisons": 30,
        "corrected": {
            "overall_satisfaction": [
                {
                    "revision": 1,
                    "mean": 3.1 + shift,
                    "ci_low": 2.8 + shift,
                    "ci_high": 3.4 + shift,
                    "n": 40,
                    "n_reviewers": 5,
                },
                {
                    "revision": 2,
                    "mean": 3.7 + shift,
                    "ci_low": 3.4 + shift,
                    "ci_high": 4.0 + shift,
                    "n": 40,
                    "n_reviewers": 5,
                },
            ],
        },
        "agreement": {"overall_satisfaction": 0.62, "text_legibility": None},
        "bradley_terry": [
            {"revision": 1, "strength": -0.4, "ci_low": -0.7, "ci_high": -0.1, "comparisons": 30},
            {"revision": 2, "strength": 0.4, "ci_low": 0.1, "ci_high": 0.7, "comparisons": 30},
        ],
        "issue_rates": [
            {"revision": 1, "category": "blur", "count": 8, "reviews": 40, "rate": 0.2},
            {"revision": 2, "category": "text_error", "count": 2, "reviews": 40, "rate": 0.05},
        ],
        "correlations": [
            {
                "metric": "sharpness",
                "dimension": "overall_satisfaction",
                "rho": 0.71,
                "p_value": 0.001,
                "n": 80,
            },
            {
                "metric": "temporal_ssim",
                "dimension": "temporal_coherence",
                "rho": None,
                "p_value": None,
                "n": 4,
            },
        ],
    }


def _clipped_chart_text(page) -> list[str]:
    """Text of the page's SVG charts that reaches outside its chart (and so is cut off)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('svg.chart-svg')].flatMap(svg => {
            const box = svg.getBoundingClientRect();
            return [...svg.querySelectorAll('text')].filter(t => {
                const r = t.getBoundingClientRect();
                return r.width > 0 && (r.left < box.left - 1 || r.right > box.right + 1
                    || r.top < box.top - 1 || r.bottom > box.bottom + 1);
            }).map(t => t.textContent);
        })"""
    )


def _no_overflow(page) -> bool:
    width = page.evaluate("document.documentElement.scrollWidth")
    return width <= min(page.evaluate("window.innerWidth"), page.viewport_size["width"])


# --- reviewer -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_reviewer_journey(size, open_context, checks_for, live_server, tmp_path):
    checks = checks_for(size)
    _reviewer("rita")
    first = video_generation("A policy briefing on renewable energy initiatives", seconds=3.0)
    video_generation("A policy briefing on renewable energy initiatives", seconds=2.5)
    video_generation("Quarterly update on city public transport ridership", seconds=2.0)
    base = live_server.url
    context, page, errors = open_context(size)

    page.goto(f"{base}/")
    checks.check(page, "login")
    log_in(page, base, "rita")
    assert page.url == f"{base}/review/"
    checks.check(page, "queue")

    page.click("#start-review")
    page.wait_for_url(f"{base}/review/*/")
    wait_for(page, "document.querySelector('video').readyState >= 1")
    shortcuts_visible = page.locator(".shortcuts").is_visible()
    assert shortcuts_visible == (size == "desktop"), "the shortcut panel is for keyboards only"
    checks.check(page, "review")

    # Rate every dimension by tapping/clicking the scores.
    for fieldset in page.locator("fieldset.rating").all():
        fieldset.locator("label.score").nth(3).click()
    if size == "desktop":
        # The player stays in view while the last dimension is rated.
        page.locator("fieldset.rating").last.scroll_into_view_if_needed()
        box = page.locator("#player video").bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] / 2 <= 800, box

    # An issue whose end is past the video: clamped on the bar, explained at the field.
    page.click("#add-issue")
    page.select_option("#id_issues-0-category", "flicker")
    page.fill("#id_issues-0-end_s", "999")
    page.locator("#id_issues-0-end_s-range").wait_for()
    assert "past its end" in page.locator("#id_issues-0-end_s-range").inner_text()
    assert page.locator("#id_issues-0-end_s").get_attribute("aria-invalid") == "true"
    assert _no_overflow(page), "an issue past the end must not stretch the page"
    marker = page.locator("#markers .marker").bounding_box()
    bar = page.locator("#markers").bounding_box()
    assert marker["x"] + marker["width"] <= bar["x"] + bar["width"] + 1
    checks.check(page, "review-issue-past-the-end")
    page.fill("#id_issues-0-end_s", "1.5")
    page.locator("#id_issues-0-end_s-range").wait_for(state="detached")

    # The session lapses: the autosave says so, with a link to log in again.
    context.clear_cookies()
    page.fill("#id_comments", "written after the session ended")
    wait_for(page, "document.querySelector('#draft-status').dataset.state === 'expired'")
    status = page.locator("#draft-status").inner_text()
    assert "session has expired" in status and "could not be reached" not in status
    login_link = page.locator("#login-again")
    assert "/accounts/login/?next=%2Freview%2F" in login_link.get_attribute("href")
    checks.check(page, "review-session-expired")
    login_link.click()
    page.fill("#id_username", "rita")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == f"{base}/review/{first.id}/"
    assert page.locator("#id_comments").input_value() == "written after the session ended"

    with page.expect_navigation():
        page.click("#submit-review")
    assert Review.objects.filter(generation=first, reviewer__username="rita").exists()
    checks.check(page, "next-video")

    page.goto(f"{base}/compare/")
    page.wait_for_url(f"{base}/compare/*/")
    wait_for(page, "[...document.querySelectorAll('video')].every(v => v.readyState >= 1)")
    checks.check(page, "compare")
    page.click("label[for=id_winner_left]")
    with page.expect_navigation():
        page.click("#submit-comparison")

    # Staff pages are not for reviewers: a styled 403, with a way back.
    response = page.goto(f"{base}/dashboard/")
    assert response.status == 403
    assert page.get_by_role("heading", name="This page is not for your account").is_visible()
    checks.check(page, "403-staff-page")
    page.goto(f"{base}/no/such/page/")
    checks.check(page, "404")

    # The navigation fits the bar on a phone: every link inside the header.
    header = page.locator(".site-header").bounding_box()
    for link in page.locator(".site-nav a, .site-nav button").all():
        box = link.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= header["x"] + header["width"] + 1
        assert (
            header["y"] <= box["y"]
            and box["y"] + box["height"] <= header["y"] + header["height"] + 1
        )
    assert not errors, errors
    checks.assert_clean()


# --- admin ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_admin_journey(size, open_context, checks_for, live_server, settings, active_revision):
    checks = checks_for(size)
    _staff("boss")
    ann, bob = _reviewer("ann"), _reviewer("bob")
    watched = video_generation("A briefing on heat pumps", seconds=3.0)
    for person, value, issue in ((ann, 2, (0.5, 1.2, 3)), (bob, 4, (2.0, 2.6, 1))):
        review_services.review_create(
            reviewer=person,
            generation=watched,
            ratings={"overall_satisfaction": value, "visual_quality": value},
            comments=f"{person.username} says hello",
            issues=[
                review_services.IssueInput(
                    category="flicker", start_s=issue[0], end_s=issue[1], severity=issue[2]
                )
            ],
            seconds_spent=42,
        )
    token = WorkerToken.objects.create(name="gpu-box-1", prefix="flw_t", key_hash="c" * 64)
    remote = video_generation("A remote job in flight", seconds=1.0)
    Generation.objects.filter(pk=remote.pk).update(
        status=Generation.Status.RUNNING, backend="remote", claimed_by=token, progress=0.2
    )
    base = live_server.url
    context, page, errors = open_context(size)
    log_in(page, base, "boss")
    checks.check(page, "home")

    page.goto(f"{base}/generations/")
    checks.check(page, "generations")
    row = page.locator(f"tr[data-generation='{remote.id}']")
    assert "gpu-box-1" in row.inner_text() and "remote" in row.inner_text()
    Generation.objects.filter(pk=remote.pk).update(progress=0.6)
    wait_for(
        page,
        f"document.querySelector(\"tr[data-generation='{remote.id}'] .percent\").textContent"
        " === '60%'",
    )
    page.fill("#id_q", "heat")
    with page.expect_navigation():
        page.click(".filters button[type=submit]")
    assert page.locator("tr[data-generation]").count() == 1
    checks.check(page, "generations-search")
    page.goto(f"{base}/generations/?status=running&worker=gpu-box-1")
    assert page.locator("tr[data-generation]").count() == 1
    page.fill("#id_prompt", "A new briefing on tidal power")
    page.select_option("#id_create_backend", "remote")
    with page.expect_navigation():
        page.click("#queue-generation")
    assert page.locator("tr.highlight").count() == 1
    assert Generation.objects.filter(prompt="A new briefing on tidal power").exists()
    checks.check(page, "generations-queued")

    page.goto(f"{base}/generations/{watched.id}/")
    wait_for(page, "document.querySelector('#player video').readyState >= 1")
    page.locator("#series .chart-svg").first.wait_for()  # measured on first view
    assert page.locator(".lane").count() == 2
    assert page.locator("#series .chart-svg").count() == 3
    page.locator(".lane-markers .marker").nth(1).click()
    wait_for(page, "document.querySelector('#player video').currentTime >= 1.9")
    assert "ann says hello" in page.inner_text("body")
    checks.check(page, "generation")

    page.goto(f"{base}/dashboard/")
    checks.check(page, "dashboard-empty")

    page.goto(f"{base}/reviewers/")
    checks.check(page, "reviewers")
    page.fill("#id_username", "newcomer")
    with page.expect_navigation():
        page.click("#reviewer-create button[type=submit]")
    invite = page.locator("#invite-link").inner_text()
    assert "/accounts/invite/" in invite
    checks.check(page, "reviewers-invite")
    page.click(f"a[href='/reviewers/{ann.pk}/']")
    checks.check(page, "reviewer")
    page.fill("#id_exclude-reason", "Rates everything 2; see the flags")
    with page.expect_navigation():
        page.click("button.danger")
    assert ReviewerExclusion.objects.filter(reviewer=ann, revoked_at__isnull=True).exists()
    checks.check(page, "reviewer-excluded")

    review = Review.objects.get(reviewer=ann)
    page.goto(f"{base}/admin/reviews/review/{review.pk}/change/")
    assert page.locator("input[name$='-value']").count() == 0, "ratings are not editable"
    assert page.get_by_role("link", name="A briefing on heat pumps").count() == 1
    checks.check(page, "admin-review-read-only")

    # The invitation works in a fresh browser: choose a password, log in, land on the queue.
    _, guest, guest_errors = open_context(size)
    guest.goto(invite)
    checks.check(guest, "invite-accept")
    guest.fill("#id_new_password1", "chosen-pass-987")
    guest.fill("#id_new_password2", "chosen-pass-987")
    with guest.expect_navigation():
        guest.click("button[type=submit]")
    checks.check(guest, "invite-done")
    log_in(guest, base, "newcomer", "chosen-pass-987")
    assert guest.url == f"{base}/review/"

    # A missing CSRF cookie: the styled failure page, not Django's debug page.
    _, bare, _ = open_context(size)
    bare.goto(f"{base}/accounts/login/")
    bare.context.clear_cookies()
    bare.fill("#id_username", "boss")
    bare.fill("#id_password", PASSWORD)
    with bare.expect_navigation():
        bare.click("button[type=submit]")
    assert bare.get_by_role("heading", name="Your browser did not send the security cookie")
    checks.check(bare, "csrf-failure")

    settings.ROOT_URLCONF = "tests.urls_failing"
    response = page.goto(f"{base}/boom/")
    assert response.status == 500
    checks.check(page, "500")
    favicon = page.goto(f"{base}/favicon.ico")
    assert favicon.status == 200 and favicon.headers["content-type"].startswith("image/")

    assert not errors and not guest_errors, errors + guest_errors
    checks.assert_clean()


# --- approver -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_approver_journey(size, open_context, checks_for, live_server, active_revision):
    checks = checks_for(size)
    perms = ("view_review", "view_generation", "approve_configrevision")
    _staff("vera", superuser=False, perms=perms)
    now = timezone.now()
    pipeline = active_revision.pipeline
    for days, shift in ((3, -0.3), (2, -0.1), (1, 0.0)):
        AnalysisRun.objects.create(
            pipeline=pipeline, snapshot=snapshot(now - timedelta(days=days), shift)
        )
    proposal = revision_create(
        pipeline=pipeline, params={**active_revision.params, "crf": 20}, parent=active_revision
    )
    arm = revision_approve_as_arm(revision=proposal)
    arm.result = {
        **arm.result,
        "estimate": 0.3,
        "lower": -0.2,
        "upper": 0.8,
        "n_candidate": 20,
        "n_control": 80,
    }
    arm.save(update_fields=["result"])
    candidate = video_generation("A briefing on grid batteries", seconds=2.0)
    waiting = revision_create(
        pipeline=pipeline,
        params={**active_revision.params, "sharpen": 0.6, "grain": 0.01},
        parent=active_revision,
        source="improver",
        rationale="visual quality is the weakest dimension (2.9 [2.7, 3.1]); blur is reported in "
        "31% of reviews; sharpening helped in past experiments",
        evidence={
            "dimensions": {"visual_quality": {"mean": 2.9, "low": 2.7, "high": 3.1}},
            "arm": {
                "role": "challenger",
                "alpha": 0.02,
                "mixture": 0.1,
                "share": 0.3,  # what the improver planned for it
                "predicted": {"estimate": 0.3, "low": 0.1, "high": 0.5, "level": 0.9},
            },
        },
        predicted_impact={"estimate": 0.3, "low": 0.1, "high": 0.5, "level": 0.9},
    )
    for who in (active_revision, waiting):
        for index in range(2):  # the sample videos, as if rendered on demand already
            video_generation(
                f"sample prompt {index}",
                seconds=2.0,
                revision=who,
                params=who.params,
                idempotency_key=f"sample:{who.pk}:{index}",
            )
    base = live_server.url
    context, page, errors = open_context(size)
    log_in(page, base, "vera")

    page.goto(f"{base}/dashboard/")
    body = page.inner_text("body")
    checks.check(page, "dashboard")
    svgs = page.locator("svg.chart-svg")
    assert svgs.count() >= 6
    ranking = page.locator("svg.chart-svg", has_text="Bradley–Terry").text_content()
    assert "[-0.70, -0.10]" in ranking.replace("−", "-") or "[+0.10, +0.70]" in ranking
    assert "30 comparisons of this revision" in ranking
    heat = page.locator("section.chart", has_text="Spearman")
    assert "not enough paired data" in heat.inner_text()
    assert "Review queue" in page.inner_text("header")
    experiment = page.locator(".experiment-summary").inner_text()
    assert f"r{proposal.number}" in experiment and "challenger" in experiment
    # Headers and axis labels are drawn inside their charts, not cut off at an edge.
    assert not _clipped_chart_text(page)
    assert "Dashboard" in body

    page.goto(f"{base}/generations/{candidate.id}/")
    page.locator("#series .chart-svg").first.wait_for()
    assert not _clipped_chart_text(page)
    checks.check(page, "generation")
    page.goto(f"{base}/reviewers/")
    checks.check(page, "reviewers")

    page.goto(f"{base}/proposals/?pipeline={pipeline.slug}")
    checks.check(page, "proposals")
    page.click(f"a:text('r{waiting.number}')")
    page.locator("#player video").first.wait_for()
    assert page.locator("#player video").count() == 2, "parent and proposal play side by side"
    details = page.inner_text("main")
    assert "sharpen" in details and "+0.30 [+0.10, +0.50]" in details
    checks.check(page, "proposal")
    page.click("#approve")
    page.wait_for_load_state()
    assert "approved" in page.inner_text("main")
    waiting.refresh_from_db()
    assert waiting.status == "canary"
    # The approved proposal runs on its planned share, and the running arm keeps its own.
    page.goto(f"{base}/dashboard/")
    arms = page.locator(".experiment-summary .arms").inner_text()
    assert f"r{waiting.number} (challenger, running) on 30% of new generations" in arms
    kept = round(arm.share * 100)
    assert f"r{proposal.number} (challenger, running) on {kept}% of new generations" in arms

    page.goto(f"{base}/admin/")
    checks.check(page, "admin-index")
    assert not errors, errors
    checks.assert_clean()
