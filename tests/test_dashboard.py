"""The staff dashboard: SVG charts from analysis snapshots and the current experiment."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections
from django.utils import timezone

from generation.services import revision_create, revision_ensure_active
from improvements import charts
from improvements.experiments import experiment_evaluate, experiment_start
from improvements.models import AnalysisRun, ExperimentDecision
from reviews.services import review_create
from tests.conftest import chromium_launch_args, require_chromium
from tests.factories import FinishedGenerationFactory

User = get_user_model()
URL = "/dashboard/"


def snapshot(at, shift: float = 0.0, label: str = "text_legibility") -> dict:
    return {
        "computed_at": at.isoformat(),
        "ratings": 240,
        "reviews": 80,
        "comparisons": 30,
        "revisions": [{"number": 1, "status": "retired", "model_variant": "draft"},
                      {"number": 2, "status": "active", "model_variant": "standard"}],
        "corrected": {
            "overall_satisfaction": [
                {"revision": 1, "mean": 3.1 + shift, "ci_low": 2.8 + shift, "ci_high": 3.4 + shift,
                 "raw_mean": 3.0, "n": 40, "n_reviewers": 5},
                {"revision": 2, "mean": 3.7 + shift, "ci_low": 3.4 + shift, "ci_high": 4.0 + shift,
                 "raw_mean": 3.8, "n": 40, "n_reviewers": 5},
            ],
            label: [{"revision": 2, "mean": 3.2, "ci_low": 2.9, "ci_high": 3.5, "raw_mean": 3.2,
                     "n": 40, "n_reviewers": 5}],
        },
        "agreement": {"overall_satisfaction": 0.62, label: None, "motion": -0.1},
        "bradley_terry": [
            {"revision": 1, "strength": -0.4, "ci_low": -0.7, "ci_high": -0.1, "comparisons": 30},
            {"revision": 2, "strength": 0.4, "ci_low": 0.1, "ci_high": 0.7, "comparisons": 30},
        ],
        "issue_rates": [
            {"revision": 1, "category": "blur", "count": 8, "reviews": 40, "rate": 0.2},
            {"revision": 2, "category": "text_error", "count": 2, "reviews": 40, "rate": 0.05},
        ],
        "correlations": [
            {"metric": "sharpness", "dimension": "overall_satisfaction", "rho": 0.71,
             "p_value": 0.001, "n": 80},
            {"metric": "flicker <script>", "dimension": label, "rho": -0.3, "p_value": 0.04,
             "n": 80},
            {"metric": "sharpness", "dimension": label, "rho": None, "p_value": None, "n": 4},
        ],
        "generation_seconds": [{"revision": 2, "mean": 3.2, "n": 40, "failure_rate": 0.0}],
    }  # fmt: skip


@pytest.fixture
def staff(client, db):
    client.force_login(User.objects.create(username="boss", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def analyses(db):
    now = timezone.now()
    for days, shift in ((2, -0.2), (1, 0.0)):
        AnalysisRun.objects.create(snapshot=snapshot(now - timedelta(days=days), shift))
    AnalysisRun.objects.create(snapshot={"active_revision": 2, "dimensions": {}})  # older format


def svgs(page: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", page, flags=re.S)


@pytest.mark.django_db
def test_staff_see_every_chart_as_accessible_svg(staff, analyses):
    page = staff.get(URL).content.decode()
    found = svgs(page)
    assert len(found) == 6
    for svg in found:
        assert (
            'role="img"' in svg and "<title" in svg and "<desc" in svg and "aria-labelledby" in svg
        )
    assert "Corrected overall rating per revision over time" in page
    assert "<polyline" in found[0] and found[0].count("<circle") == 4  # 2 revisions × 2 analyses
    assert "Bradley–Terry" in page and "Spearman" in page and "Krippendorff" in page
    assert "r1 · blur" in page and "α = 0.62" in page and "undefined" in page
    assert "240</b> ratings" in page
    assert page.count("<table") == 5  # the experiment chart is empty: no table for it


@pytest.mark.django_db
def test_text_from_the_data_is_escaped(staff, analyses):
    page = staff.get(URL).content.decode()
    assert "<script>" not in page and "flicker &lt;script&gt;" in page


@pytest.mark.django_db
def test_an_empty_dashboard_says_no_data_yet(staff):
    response = staff.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert len(svgs(page)) == 6
    assert page.count("no data yet") >= 5 and "no canary experiment yet" in page
    assert "No analysis yet" in page


@pytest.mark.django_db
def test_the_current_experiment_is_charted_with_its_band(staff, active_revision):
    proposal = revision_create(params={**active_revision.params, "crf": 20}, parent=active_revision)
    experiment = experiment_start(revision=proposal)
    panel = [User.objects.create(username=f"p{i}") for i in range(3)]
    for round_ in range(2):
        for arm, revision, value in (("candidate", proposal, 5), ("control", active_revision, 3)):
            for i in range(3):
                generation = FinishedGenerationFactory(revision=revision, experiment_arm=arm)
                review_create(reviewer=panel[i], generation=generation,
                              ratings={"overall_satisfaction": value - round_})  # fmt: skip
        experiment_evaluate(experiment=experiment)
    page = staff.get(URL).content.decode()
    chart = next(s for s in svgs(page) if "Canary r" in s)
    assert "<polygon" in chart and "minimum effect" in chart
    assert f"Canary r{proposal.number}</b> against r{active_revision.number}" in page
    assert "waiting for" in page


@pytest.mark.django_db
def test_reviewers_get_403_and_anonymous_users_the_login_page(client):
    reviewer = User.objects.create(username="rita")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(reviewer)
    assert client.get(URL).status_code == 403


def test_charts_handle_missing_values():
    assert charts.rating_over_time({"r1": []}).empty
    assert charts.interval_chart([("r1", None, None, None, "")], title="t", description="d").empty
    chart = charts.bar_chart([("a", None, "undefined")], title="t", description="d")
    assert not chart.empty and "undefined" in chart.svg
    looks = [(10, 0.5, None, None, "continue"), (20, 0.4, -1.0, 1.5, "continue")]
    assert "<polyline" in charts.experiment_chart(looks, min_effect=0.25).svg


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("rating_dimensions")
def test_dashboard_screenshot(live_server, output_dir, monkeypatch, small_params):
    require_chromium()
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    now = timezone.now()
    for days, shift in ((3, -0.3), (2, -0.1), (1, 0.0)):
        AnalysisRun.objects.create(snapshot=snapshot(now - timedelta(days=days), shift))
    User.objects.create_user("boss", password="pass-12345", is_staff=True, is_superuser=True)
    active = revision_ensure_active(params=small_params)
    proposal = revision_create(params={**active.params, "crf": 20}, parent=active)
    experiment = experiment_start(revision=proposal)
    for n, estimate, half in ((40, 0.5, 1.6), (80, 0.45, 0.9), (120, 0.42, 0.6), (160, 0.44, 0.41)):
        ExperimentDecision.objects.create(
            experiment=experiment, kind="continue", reason="difference within the band",
            estimate=estimate, lower=estimate - half, upper=estimate + half,
            n_candidate=n // 5, n_control=n - n // 5,
        )  # fmt: skip
    connections.close_all()
    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium_launch_args())
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/accounts/login/?next={URL}")
        page.fill("input[name=username]", "boss")
        page.fill("input[name=password]", "pass-12345")
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(f"**{URL}")
        assert page.locator("svg[role=img]").count() == 6
        assert page.get_by_text(f"Canary r{proposal.number}", exact=False).count() >= 1
        page.screenshot(path=str(output_dir / "dashboard.png"), full_page=True)
        # The changelog and the canary's revision page, for the record.
        page.goto(f"{live_server.url}/admin/generation/configrevision/")
        page.screenshot(path=str(output_dir / "changelog.png"), full_page=True)
        page.goto(f"{live_server.url}/admin/generation/configrevision/{proposal.pk}/change/")
        assert page.get_by_role("button", name="Roll back to this revision").count() == 0
        page.screenshot(path=str(output_dir / "revision.png"), full_page=True)
        browser.close()
    connections.close_all()
    assert (output_dir / "dashboard.png").stat().st_size > 10_000
