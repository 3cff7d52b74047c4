"""The staff dashboard: SVG charts from analysis snapshots and the current experiment."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from improvements import charts
from improvements.experiments import revision_approve_as_arm
from improvements.models import AnalysisRun
from pipelines.services.revisions import revision_create

User = get_user_model()
URL = "/dashboard/"


def snapshot(at, shift: float = 0.0, label: str = "text_legibility") -> dict:
    return {
        "computed_at": at.isoformat(),
        "ratings": 240,
        "reviews": 80,
        "comparisons": 30,
        "revisions": [
            {"number": 1, "status": "retired", "model_variant": "draft"},
            {"number": 2, "status": "active", "model_variant": "standard"},
        ],
        "corrected": {
            "overall_satisfaction": [
                {
                    "revision": 1,
                    "mean": 3.1 + shift,
                    "ci_low": 2.8 + shift,
                    "ci_high": 3.4 + shift,
                    "raw_mean": 3.0,
                    "n": 40,
                    "n_reviewers": 5,
                },
                {
                    "revision": 2,
                    "mean": 3.7 + shift,
                    "ci_low": 3.4 + shift,
                    "ci_high": 4.0 + shift,
                    "raw_mean": 3.8,
                    "n": 40,
                    "n_reviewers": 5,
                },
            ],
            label: [
                {
                    "revision": 2,
                    "mean": 3.2,
                    "ci_low": 2.9,
                    "ci_high": 3.5,
                    "raw_mean": 3.2,
                    "n": 40,
                    "n_reviewers": 5,
                }
            ],
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
            {
                "metric": "sharpness",
                "dimension": "overall_satisfaction",
                "rho": 0.71,
                "p_value": 0.001,
                "n": 80,
            },
            {
                "metric": "flicker <script>",
                "dimension": label,
                "rho": -0.3,
                "p_value": 0.04,
                "n": 80,
            },
            {"metric": "sharpness", "dimension": label, "rho": None, "p_value": None, "n": 4},
        ],
        "generation_seconds": [{"revision": 2, "mean": 3.2, "n": 40, "failure_rate": 0.0}],
    }


@pytest.fixture
def staff(client, db):
    client.force_login(User.objects.create(username="boss", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def analyses(builtin_pipeline):
    now = timezone.now()
    for days, shift in ((2, -0.2), (1, 0.0)):
        AnalysisRun.objects.create(
            pipeline=builtin_pipeline, snapshot=snapshot(now - timedelta(days=days), shift)
        )
    AnalysisRun.objects.create(  # an older format, without the corrected means
        pipeline=builtin_pipeline, snapshot={"active_revision": 2, "dimensions": {}}
    )


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
        assert "style=" not in svg  # styled by class: the site's CSP allows no inline style
    assert "Corrected overall rating per revision over time" in page
    assert "<polyline" in found[0] and found[0].count("<circle") == 4  # 2 revisions × 2 analyses
    assert "Bradley–Terry" in page and "Spearman" in page and "Krippendorff" in page
    assert "r1 · blur" in page and "α = 0.62" in page and "undefined" in page
    assert "240</b> ratings" in page
    assert page.count("<table") == 5  # the experiment chart is empty: no table for it


@pytest.mark.django_db
def test_the_ranking_labels_each_revision_with_its_interval_and_count(staff, analyses):
    ranking = next(s for s in svgs(staff.get(URL).content.decode()) if "Bradley" in s)
    assert "+0.40 [+0.10, +0.70]" in ranking and "-0.40 [-0.70, -0.10]" in ranking
    assert ranking.count("30 comparisons of this revision") == 2
    assert "log-strength (0 = an average revision" in ranking


@pytest.mark.django_db
def test_empty_correlation_cells_say_why(staff, analyses):
    page = staff.get(URL).content.decode()
    heatmap = next(s for s in svgs(page) if "Spearman" in s)
    assert ">n=4<" in heatmap  # (sharpness, text legibility): 4 paired generations
    assert "not enough paired data (fewer than 10 generations" in page
    assert "not enough paired data (n = 4 &lt; 10)" in page  # the data table's "why empty"


def test_column_headers_of_the_heatmap_fit_inside_the_chart():
    long_name = "a_very_long_dimension_name_here"
    chart = charts.heatmap(
        {("sharpness", long_name): (0.5, 0.01, 30), ("flicker", "overall"): (None, None, 3)},
        title="t",
        description="d",
    )
    match = re.search(r'<svg[^>]*viewBox="0 0 (\d+) (\d+)"', chart.svg)
    header = re.search(
        r'<text x="([\d.]+)" y="([\d.]+)"[^>]*rotate\(-90[^>]*>a very long', chart.svg
    )
    assert header, "column headers stand upright"
    # Upright text grows upwards from its anchor: the anchor must be lower than its length.
    length = len("a very long dimension na") * charts.CHAR_PX
    assert float(header.group(2)) - length >= 0
    assert float(header.group(1)) <= int(match.group(1))


def test_the_experiment_and_time_axes_are_labelled():
    looks = [(10, 0.5, None, None, "continue"), (20, 0.4, -1.0, 1.5, "continue")]
    chart = charts.experiment_chart(looks, min_effect=0.25)
    assert "candidate − control (rating points)" in chart.svg
    assert "ratings so far (both arms)" in chart.svg
    assert "<polyline" in chart.svg


@pytest.mark.django_db
def test_text_from_the_data_is_escaped(staff, analyses):
    page = staff.get(URL).content.decode()
    assert "<script>" not in page and "flicker &lt;script&gt;" in page


@pytest.mark.django_db
def test_an_empty_dashboard_says_no_data_yet(staff, builtin_pipeline):
    response = staff.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert len(svgs(page)) == 6
    assert page.count("no data yet") >= 5 and "no experiment yet" in page
    assert "No analysis yet" in page


@pytest.mark.django_db
def test_each_arm_of_the_current_experiment_is_charted_with_its_interval(staff, active_revision):
    proposal = revision_create(
        pipeline=active_revision.pipeline,
        params={**active_revision.params, "crf": 20},
        parent=active_revision,
    )
    arm = revision_approve_as_arm(revision=proposal)
    arm.result = {
        **arm.result,
        "estimate": 0.44,
        "lower": 0.03,
        "upper": 0.85,
        "n_candidate": 32,
        "n_control": 128,
    }
    arm.save(update_fields=["result"])
    page = staff.get(URL).content.decode()
    chart = next(s for s in svgs(page) if "Experiment #" in s)
    assert f"r{proposal.number} (" in chart
    assert "+0.44 [+0.03, +0.85]" in chart and "n 32/128" in chart
    assert "arm − control (rating points)" in chart


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
    line = charts.line_chart(
        [0, 1, 2], [None, None, None], title="t", description="d", x_label="x", y_label="y"
    )
    assert line.empty
