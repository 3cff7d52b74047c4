"""Exports of ratings, issues, preference pairs and generations as JSONL and Parquet."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from integrations.exports import export_filters, writers
from integrations.exports.rows import reviewer_pseudonym
from reviews.models import Comparison, Review

pytestmark = pytest.mark.django_db


def export(tmp_path: Path, kind: str, fmt: str = "jsonl", **filters: str) -> list[dict]:
    out = tmp_path / f"{kind}.{fmt}"
    options = {k: v for k, v in filters.items()}
    call_command("export_feedback", kind=kind, fmt=fmt, out=str(out), **options)
    if fmt == "parquet":
        return pq.read_table(out).to_pylist()
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_ratings_export_has_one_row_per_review_with_its_dimensions(feedback_world, tmp_path):
    rows = export(tmp_path, "ratings")
    assert len(rows) == Review.objects.count() == 3
    g1 = feedback_world["generations"][0]
    first = next(r for r in rows if r["generation_id"] == str(g1.pk))
    assert first["ratings"] == {"visual_quality": 2, "overall_satisfaction": 3}
    assert first["pipeline"] == "builtin" and first["revision"] == 1
    assert first["seconds_spent"] == 42.0 and first["comments"] == "blurry titles"


def test_reviewer_ids_are_pseudonymous_and_stable(feedback_world, tmp_path):
    ann, bob = feedback_world["users"]
    rows = export(tmp_path, "ratings")
    reviewers = {r["reviewer"] for r in rows}
    assert reviewers == {reviewer_pseudonym(ann.pk), reviewer_pseudonym(bob.pk)}
    text = json.dumps(rows)
    assert "ann" not in text and "bob" not in text
    assert all(str(u.pk) != r["reviewer"] for u in (ann, bob) for r in rows)
    again = export(tmp_path, "ratings")
    assert [r["reviewer"] for r in again] == [r["reviewer"] for r in rows]


def test_pairs_are_oriented_by_the_verdict_with_per_dimension_verdicts(feedback_world, tmp_path):
    g1, g2, g3 = feedback_world["generations"]
    left_wins, right_wins, tie = feedback_world["comparisons"]
    rows = {r["comparison_id"]: r for r in export(tmp_path, "pairs")}
    assert len(rows) == 3

    row = rows[str(left_wins.pk)]
    assert row["prompt"] == "Harbour traffic" and row["tie"] is False
    assert row["chosen"]["generation_id"] == str(g1.pk) and row["chosen"]["side"] == "left"
    assert row["rejected"]["generation_id"] == str(g2.pk)
    assert row["chosen"]["revision"] == 1 and row["rejected"]["revision"] == 2
    assert row["chosen"]["params"] == {"fps": 12, "crf": 20}
    assert row["rejected"]["params"] == {"fps": 24, "crf": 18}
    assert row["chosen"]["video_uri"].startswith("file://")
    assert row["chosen"]["video_uri"].endswith(g1.video.name)
    # The right side looked better (rejected here), the left was more relevant (chosen).
    assert row["dimensions"] == {"visual_quality": "rejected", "content_relevance": "chosen"}

    row = rows[str(right_wins.pk)]
    assert row["chosen"]["generation_id"] == str(g2.pk) and row["chosen"]["side"] == "right"
    assert row["dimensions"] == {"visual_quality": "chosen", "factual_accuracy": "tie"}

    row = rows[str(tie.pk)]
    assert row["tie"] is True
    assert {row["chosen"]["pipeline"], row["rejected"]["pipeline"]} == {"builtin", "other"}


def test_parquet_pairs_read_back_as_the_jsonl_rows_in_several_row_groups(
    feedback_world, tmp_path, monkeypatch
):
    monkeypatch.setattr(writers, "ROW_GROUP_ROWS", 2)
    as_json = {r["comparison_id"]: r for r in export(tmp_path, "pairs")}
    rows = export(tmp_path, "pairs", "parquet")
    table = pq.ParquetFile(tmp_path / "pairs.parquet")
    assert table.metadata.num_row_groups == 2 and table.metadata.num_rows == 3
    for row in rows:
        expected = as_json[row["comparison_id"]]
        assert row["chosen"]["generation_id"] == expected["chosen"]["generation_id"]
        assert json.loads(row["chosen"]["params"]) == expected["chosen"]["params"]
        assert row["tie"] == expected["tie"]
        verdicts = {k: v for k, v in row["dimensions"].items() if v is not None}
        assert verdicts == expected["dimensions"]
        assert row["created_at"].isoformat() == expected["created_at"].replace("Z", "+00:00")


def test_parquet_ratings_have_a_column_per_dimension(feedback_world, tmp_path):
    rows = export(tmp_path, "ratings", "parquet")
    g1 = feedback_world["generations"][0]
    first = next(r for r in rows if r["generation_id"] == str(g1.pk))
    assert first["ratings"]["visual_quality"] == 2
    assert first["ratings"]["overall_satisfaction"] == 3
    assert first["ratings"]["factual_accuracy"] is None


def test_issues_keep_their_time_ranges(feedback_world, tmp_path):
    for fmt in ("jsonl", "parquet"):
        (issue,) = export(tmp_path, "issues", fmt)
        assert (issue["category"], issue["start_s"], issue["end_s"]) == ("blur", 1.5, 3.0)
        assert issue["severity"] == 2 and issue["severity_label"] == "major"
        assert issue["generation_id"] == str(feedback_world["generations"][0].pk)


def test_generations_carry_params_revision_pipeline_and_metrics(feedback_world, tmp_path):
    g1 = feedback_world["generations"][0]
    for fmt in ("jsonl", "parquet"):
        rows = {r["generation_id"]: r for r in export(tmp_path, "generations", fmt)}
        assert len(rows) == 3
        row = rows[str(g1.pk)]
        params = row["params"] if fmt == "jsonl" else json.loads(row["params"])
        assert params == {"fps": 12, "crf": 20}
        assert (row["pipeline"], row["revision"], row["status"]) == ("builtin", 1, "succeeded")
        assert row["metrics"]["sharpness"] == 0.25
        assert row["worker_metrics"]["render_fps"] == 31.0


def test_filters_by_pipeline_revision_and_date_range(feedback_world, tmp_path):
    g1, g2, g3 = feedback_world["generations"]
    rows = export(tmp_path, "ratings", pipeline="other")
    assert [r["generation_id"] for r in rows] == [str(g3.pk)]
    rows = export(tmp_path, "ratings", pipeline="builtin", revision="2")
    assert [r["generation_id"] for r in rows] == [str(g2.pk)]
    pairs = export(tmp_path, "pairs", pipeline="other")
    assert len(pairs) == 1 and pairs[0]["tie"] is True  # either side of the pipeline counts

    old = Review.objects.get(generation=g1)
    Review.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    rows = export(tmp_path, "ratings", since=since)
    assert str(g1.pk) not in {r["generation_id"] for r in rows} and len(rows) == 2
    rows = export(tmp_path, "ratings", until=since)
    assert [r["generation_id"] for r in rows] == [str(g1.pk)]
    # A plain date for until includes that whole day.
    day = old.created_at.date() - timedelta(days=10)
    rows = export(tmp_path, "ratings", since=day.isoformat(), until=day.isoformat())
    assert [r["generation_id"] for r in rows] == [str(g1.pk)]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"pipeline": "nope"}, "valid pipelines: builtin, other"),
        ({"pipeline": "builtin", "revision": "9"}, "its revisions: 1, 2"),
        ({"revision": "1"}, "revision needs pipeline"),
        ({"since": "last tuesday"}, "since must be a date"),
    ],
)
def test_bad_filter_values_are_refused_with_the_valid_ones(
    feedback_world, tmp_path, options, named
):
    with pytest.raises(CommandError, match=named):
        export(tmp_path, "ratings", **options)
    assert not (tmp_path / "ratings.jsonl").exists()


def test_unknown_kind_format_or_filter_lists_the_valid_ones(db):
    from feedbackloop.errors import DomainError
    from integrations.exports import export_check

    with pytest.raises(DomainError, match="valid kinds: ratings, issues, pairs, generations"):
        export_check(kind="likes", fmt="jsonl")
    with pytest.raises(DomainError, match="valid formats: jsonl, parquet"):
        export_check(kind="pairs", fmt="csv")
    with pytest.raises(DomainError, match="valid filters: pipeline, revision, since, until"):
        export_filters(reviewer="ann")
    with pytest.raises(CommandError, match="invalid choice: 'likes'.*'ratings', 'issues'"):
        call_command("export_feedback", kind="likes", fmt="jsonl", out="x")


def test_an_unknown_option_on_the_command_line_lists_the_filters(db, capsys):
    from integrations.management.commands.export_feedback import Command

    argv = ["manage.py", "export_feedback", "--kind", "pairs", "--format", "jsonl"]
    with pytest.raises(SystemExit):
        Command().run_from_argv([*argv, "--out", "x", "--reviewer", "ann"])
    assert (
        "unrecognized arguments: --reviewer ann; valid filters: --pipeline, --revision, "
        "--since, --until" in capsys.readouterr().err
    )


def test_api_streams_exports_to_staff_only(feedback_world, staff):
    client = Client()
    client.force_login(feedback_world["users"][0])  # ann: a user without a staff role
    assert client.get("/api/v1/exports/pairs/").status_code == 403
    client.force_login(staff)
    response = client.get("/api/v1/exports/pairs/?format=jsonl&pipeline=builtin")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert 'filename="builtin-pairs-' in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == Comparison.objects.count()

    response = client.get("/api/v1/exports/ratings/?format=parquet")
    assert response.status_code == 200
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    assert table.num_rows == Review.objects.count()


@pytest.mark.parametrize(
    ("url", "status", "named"),
    [
        ("/api/v1/exports/likes/", 404, "valid kinds: ratings, issues, pairs, generations"),
        ("/api/v1/exports/pairs/?format=csv", 400, "valid formats: jsonl, parquet"),
        ("/api/v1/exports/pairs/?reviewer=ann", 400, "valid filters: pipeline, revision"),
        ("/api/v1/exports/pairs/?pipeline=nope", 404, "valid pipelines: builtin, other"),
    ],
)
def test_api_errors_list_the_valid_choices(feedback_world, staff, url, status, named):
    client = Client()
    client.force_login(staff)
    response = client.get(url)
    assert response.status_code == status
    assert named in response.json()["error"]["message"]


def test_admin_action_downloads_the_selected_pipelines_feedback(feedback_world, staff):
    builtin, _other = feedback_world["pipelines"]
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/integrations/feedbackexport/").status_code == 200
    response = client.post(
        "/admin/integrations/feedbackexport/",
        {"action": "export_pairs_jsonl", "_selected_action": [builtin.pk]},
    )
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="builtin-pairs-')
    rows = [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]
    assert len(rows) == 3  # every comparison touches builtin


def _admin_export(staff, *selected, **fields):
    client = Client()
    client.force_login(staff)
    return client.post(
        "/admin/integrations/feedbackexport/",
        {"_selected_action": [p.pk for p in selected], **fields},
    )


def _rows(response) -> list[dict]:
    return [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]


def test_admin_export_filters_by_revision_and_date_range(feedback_world, staff):
    builtin, _other = feedback_world["pipelines"]
    today = timezone.localdate()
    everything = _admin_export(staff, builtin, action="export_ratings_jsonl")
    assert len(_rows(everything)) == 2
    only_r2 = _admin_export(staff, builtin, action="export_ratings_jsonl", revision="2")
    assert [row["revision"] for row in _rows(only_r2)] == [2]
    tomorrow = (today + timedelta(days=1)).isoformat()
    later = _admin_export(staff, builtin, action="export_ratings_jsonl", since=tomorrow)
    assert _rows(later) == []
    through_today = _admin_export(
        staff, builtin, action="export_ratings_jsonl", since=today.isoformat(), until=today
    )
    assert len(_rows(through_today)) == 2  # until includes its day


def test_admin_export_refuses_a_revision_across_pipelines_or_a_bad_range(feedback_world, staff):
    builtin, other = feedback_world["pipelines"]
    client = Client()
    client.force_login(staff)
    url = "/admin/integrations/feedbackexport/"
    across = client.post(
        url,
        {
            "_selected_action": [builtin.pk, other.pk],
            "action": "export_ratings_jsonl",
            "revision": "1",
        },
        follow=True,
    )
    assert not hasattr(across, "streaming_content")
    assert "A revision filter needs exactly one pipeline" in across.content.decode()
    backwards = client.post(
        url,
        {
            "_selected_action": [builtin.pk],
            "action": "export_ratings_jsonl",
            "since": "2026-02-01",
            "until": "2026-01-01",
        },
        follow=True,
    )
    assert "until must be after since" in backwards.content.decode()
    page = client.get(url).content.decode()
    assert 'name="since"' in page and 'name="revision"' in page
