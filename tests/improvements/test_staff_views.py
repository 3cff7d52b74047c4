"""Staff pages: the generations list (search, filters, create, backend and worker), one
generation with all its reviews, per-frame plots, reviewer management and exclusions, and the
admin's read-only reviews."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client

from feedbackloop.errors import Conflict
from generation.frame_series import MAX_POINTS, frame_series_compute, series_name
from generation.models import Generation, MetricValue, WorkerToken
from improvements.analysis import analysis_compute
from improvements.reviewer_stats import reviewer_statistics
from reviews import selectors as review_selectors
from reviews import services as review_services
from reviews.models import IssueReport, ReviewerExclusion
from tests.factories import FinishedGenerationFactory, UserFactory

pytestmark = pytest.mark.django_db


def _reviewer(username: str):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


@pytest.fixture
def boss(db):
    return UserFactory(username="boss", is_staff=True, is_superuser=True)


@pytest.fixture
def staff(client, boss) -> Client:
    client.force_login(boss)
    return client


def _review(reviewer, generation, value: int, **kwargs):
    return review_services.review_create(
        reviewer=reviewer,
        generation=generation,
        ratings={"overall_satisfaction": value, "visual_quality": value},
        **kwargs,
    )


# --- /generations/ --------------------------------------------------------------------------


def test_staff_search_and_filter_generations_by_prompt_status_backend_and_worker(staff):
    token = WorkerToken.objects.create(name="gpu-box-1", prefix="flw_x", key_hash="a" * 64)
    wind = FinishedGenerationFactory(prompt="Offshore wind farms explained")
    solar = FinishedGenerationFactory(prompt="Solar subsidies in 2025")
    Generation.objects.filter(pk=solar.pk).update(
        backend="remote", claimed_by=token, status=Generation.Status.RUNNING, progress=0.4
    )

    page = staff.get("/generations/", {"q": "wind"}).content.decode()
    assert "Offshore wind farms" in page and "Solar subsidies" not in page

    page = staff.get("/generations/", {"status": "running"}).content.decode()
    assert "Solar subsidies" in page and "Offshore wind" not in page

    page = staff.get("/generations/", {"worker": "gpu-box-1"}).content.decode()
    assert "Solar subsidies" in page and "Offshore wind" not in page
    row = page[page.index(f'data-generation="{solar.id}"') :]
    row = row[: row.index("</tr>")]
    assert ">remote<" in row and "gpu-box-1" in row and "40%" in row

    page = staff.get("/generations/", {"backend": "builtin"}).content.decode()
    assert "Offshore wind" in page and "Solar subsidies" not in page
    assert f'href="/generations/{wind.id}/"' in page


def test_an_unknown_filter_value_is_reported_and_ignored(staff):
    FinishedGenerationFactory(prompt="Any prompt")
    response = staff.get("/generations/", {"status": "exploded"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "not understood" in page and "Any prompt" in page


def test_staff_queue_a_remote_generation_from_the_page_once_per_form(staff, active_revision):
    form = staff.get("/generations/").content.decode()
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form).group(1)
    data = {
        "pipeline": active_revision.pipeline.slug,
        "prompt": "A briefing on tidal power",
        "backend": "remote",
        "idempotency_key": key,
    }
    first = staff.post("/generations/", data)
    second = staff.post("/generations/", data)  # a double submit
    assert first.status_code == second.status_code == 302
    generation = Generation.objects.get(prompt="A briefing on tidal power")
    assert generation.backend == "remote" and generation.status == Generation.Status.QUEUED
    assert generation.requested_by.username == "boss"
    assert Generation.objects.filter(prompt="A briefing on tidal power").count() == 1
    page = staff.get(first["Location"]).content.decode()
    assert "Generation queued" in page and 'class="highlight"' in page


def test_queueing_an_empty_prompt_shows_the_error_and_queues_nothing(staff, active_revision):
    response = staff.post(
        "/generations/",
        {"pipeline": "builtin", "prompt": "   ", "backend": "remote", "idempotency_key": "web-1"},
    )
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.content.decode()
    assert not Generation.objects.exists()


def test_live_progress_reports_the_worker_holding_a_remote_job(staff):
    token = WorkerToken.objects.create(name="gpu-box-2", prefix="flw_y", key_hash="b" * 64)
    generation = FinishedGenerationFactory()
    Generation.objects.filter(pk=generation.pk).update(
        status=Generation.Status.RUNNING, backend="remote", claimed_by=token, progress=0.3
    )
    body = staff.get("/generations/progress.json", {"id": str(generation.id)}).json()
    (row,) = body["generations"]
    assert row["worker"] == "gpu-box-2" and row["progress"] == 0.3


# --- /generations/<id>/ ---------------------------------------------------------------------


def test_the_generation_page_shows_every_reviewers_marks_ratings_bias_and_comments(staff):
    generation = FinishedGenerationFactory(prompt="A briefing on heat pumps")
    ann, bob = _reviewer("ann"), _reviewer("bob")
    _review(
        ann,
        generation,
        2,
        comments="Text flickers <b>badly</b>",
        issues=[review_services.IssueInput(category="flicker", start_s=1.5, end_s=2.5, severity=3)],
    )
    _review(
        bob,
        generation,
        4,
        issues=[review_services.IssueInput(category="blur", start_s=7.0, end_s=8.0)],
    )
    MetricValue.objects.create(generation=generation, name="sharpness", value=123.4)

    response = staff.get(f"/generations/{generation.id}/")
    assert response.status_code == 200
    page = response.content.decode()
    lanes = page[page.index('class="lanes"') : page.index("</ul>", page.index('class="lanes"'))]
    assert ">ann<" in lanes and ">bob<" in lanes
    assert 'data-start="1.500"' in lanes and 'data-start="7.000"' in lanes
    assert "marker sev-3" in lanes
    assert "Text flickers &lt;b&gt;badly&lt;/b&gt;" in page
    table = page[page.index('class="ratings-table"') :]
    assert "Bias" in table and "Bias-corrected mean" in table
    assert "sharpness" in page and "123.4" in page
    assert "Parameters used" in page and "<code>crf</code>" in page
    assert "/series/" in page  # the per-frame plots load after the page


def test_the_generation_page_is_for_staff_only(client):
    generation = FinishedGenerationFactory()
    client.force_login(_reviewer("rita"))
    assert client.get(f"/generations/{generation.id}/").status_code == 403


def _clip(tmp_path, *, flash_at: int, blur_from: int, fps: int = 12, seconds: float = 3.0):
    import cv2

    from videometrics.synthetic import encode_frames, synthetic_frames

    def frames():
        for i, frame in enumerate(synthetic_frames(160, 96, fps, seconds, seed=3)):
            if i == flash_at:
                frame = np.full_like(frame, 250)
            if i >= blur_from:
                frame = cv2.GaussianBlur(frame, (0, 0), 3)
            yield frame

    return encode_frames(frames(), tmp_path / "clip.mp4", fps, crf=18)


def test_per_frame_series_show_a_flash_and_a_blurred_stretch_in_time(tmp_path):
    path = _clip(tmp_path, flash_at=12, blur_from=24)  # 1.0 s flash, blurred from 2.0 s
    series = frame_series_compute(str(path))
    t = np.asarray(series["t"])
    assert len(t) <= MAX_POINTS and len(series["sharpness"]) == len(t)
    flicker = np.asarray([v if v is not None else 0 for v in series["flicker"]])
    assert abs(t[int(flicker.argmax())] - 1.0) < 0.2
    sharp = np.asarray(series["sharpness"], dtype=float)
    assert np.nanmean(sharp[t < 0.9]) > 3 * np.nanmean(sharp[t > 2.1])
    assert any(v for v in series["motion"] if v)


def test_the_series_endpoint_measures_once_and_stores_the_result(staff, tmp_path):
    path = _clip(tmp_path, flash_at=6, blur_from=99, seconds=1.5)
    generation = FinishedGenerationFactory()
    stored = settings.MEDIA_ROOT / f"generations/{generation.id}.mp4"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(path.read_bytes())
    Generation.objects.filter(pk=generation.pk).update(video=f"generations/{generation.id}.mp4")

    response = staff.get(f"/generations/{generation.id}/series/")
    assert response.status_code == 200
    fragment = response.content.decode()
    assert fragment.count("<svg") == 3 and "time in the video (s)" in fragment
    assert (settings.MEDIA_ROOT / series_name(generation.id)).exists()
    page = staff.get(f"/generations/{generation.id}/").content.decode()
    assert page.count('class="chart-svg"') == 3  # stored: drawn with the page itself


def test_an_undecodable_video_gives_a_message_not_a_crash(staff):
    generation = FinishedGenerationFactory()
    stored = settings.MEDIA_ROOT / f"generations/{generation.id}.mp4"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(b"not a video at all")
    Generation.objects.filter(pk=generation.pk).update(video=f"generations/{generation.id}.mp4")
    response = staff.get(f"/generations/{generation.id}/series/")
    assert response.status_code == 200
    assert "could not be measured" in response.content.decode()


# --- /reviewers/ ----------------------------------------------------------------------------


def test_staff_create_a_reviewer_with_a_password_who_can_then_review(staff, client):
    response = staff.post("/reviewers/", {"username": "newbie", "password": "long-pass-123"})
    assert response.status_code == 302
    fresh = Client()
    assert fresh.login(username="newbie", password="long-pass-123")
    assert fresh.get("/review/").status_code == 200


def test_staff_invite_a_reviewer_who_chooses_a_password_with_the_link_once(staff):
    response = staff.post("/reviewers/", {"username": "invitee", "email": "i@example.org"})
    assert response.status_code == 200
    link = re.search(r'id="invite-link">http://testserver([^<]+)<', response.content.decode())
    assert link, "the invitation link is shown"
    guest = Client()
    form_page = guest.get(link.group(1), follow=True)
    assert "Choose your password" in form_page.content.decode()
    done = guest.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "chosen-pass-987", "new_password2": "chosen-pass-987"},
    )
    assert done.status_code == 302
    assert Client().login(username="invitee", password="chosen-pass-987")
    again = Client().get(link.group(1), follow=True).content.decode()
    assert "not valid any more" in again


def test_a_taken_username_is_refused_with_the_reason(staff):
    _reviewer("taken")
    response = staff.post("/reviewers/", {"username": "Taken", "password": "long-pass-123"})
    assert response.status_code == 400
    assert "already an account called" in response.content.decode()


def test_reviewer_statistics_flag_a_harsh_reviewer_who_disagrees_with_the_panel(staff):
    panel = [_reviewer(f"p{i}") for i in range(3)]
    harsh = _reviewer("harsh")
    for n in range(12):
        generation = FinishedGenerationFactory()
        quality = 2 + n % 3  # 2, 3, 4: the panel follows the video's quality
        for person in panel:
            _review(person, generation, quality, seconds_spent=60)
        _review(harsh, generation, 1 if n % 2 else 2, seconds_spent=4)  # fast, low, unrelated
    stats = {s.username: s for s in reviewer_statistics()}
    assert stats["harsh"].bias < -0.75 and stats["harsh"].reviews == 12
    assert stats["harsh"].median_seconds == 4
    flags = " ".join(stats["harsh"].flags)
    assert "harsher" in flags and "very fast" in flags and "agrees little" in flags
    assert not stats["p0"].flags
    page = staff.get("/reviewers/").content.decode()
    row = page[page.index('data-reviewer="harsh"') :]
    assert "harsher" in row[: row.index("</tr>")]


def test_a_reviewer_who_clicks_at_random_is_shown_to_count_for_less_in_the_improver(staff):
    panel = [_reviewer(f"p{i}") for i in range(3)]
    clicker = _reviewer("clicker")
    for n in range(15):
        generation = FinishedGenerationFactory()
        quality = 2 + n % 3
        for i, person in enumerate(panel):
            _review(person, generation, quality + (1 if (n + i) % 4 == 0 else 0))
        _review(clicker, generation, (1, 5, 2, 5, 1)[n % 5])  # nothing to do with the video
    stats = {s.username: s for s in reviewer_statistics()}
    assert stats["clicker"].weight < 0.8
    assert all(stats[f"p{i}"].weight > stats["clicker"].weight for i in range(3))
    page = staff.get(f"/reviewers/{clicker.pk}/").content.decode()
    assert "Weight of a rating" in page and "counts each for less" in page


def test_excluding_a_reviewer_is_recorded_honoured_by_the_analysis_and_reversible(staff, boss):
    good, odd = _reviewer("good"), _reviewer("odd")
    generation = FinishedGenerationFactory()
    _review(good, generation, 4)
    _review(odd, generation, 1)
    pipeline = generation.revision.pipeline
    assert analysis_compute(pipeline=pipeline)["ratings"] == 4

    response = staff.post(
        f"/reviewers/{odd.pk}/", {"action": "exclude", "exclude-reason": "rates everything 1"}
    )
    assert response.status_code == 302
    exclusion = ReviewerExclusion.objects.get(reviewer=odd)
    assert exclusion.created_by == boss and exclusion.reason == "rates everything 1"
    assert review_selectors.excluded_reviewer_ids() == {odd.pk}
    snapshot = analysis_compute(pipeline=pipeline)
    assert snapshot["ratings"] == 2 and snapshot["excluded_reviewers"] == [odd.pk]
    page = staff.get(f"/reviewers/{odd.pk}/").content.decode()
    assert "excluded" in page and "rates everything 1" in page

    staff.post(f"/reviewers/{odd.pk}/", {"action": "revoke", "revoke-reason": "talked to them"})
    exclusion.refresh_from_db()
    assert exclusion.revoked_at is not None and exclusion.revoked_by == boss
    assert review_selectors.excluded_reviewer_ids() == set()
    assert analysis_compute(pipeline=pipeline)["ratings"] == 4
    history = staff.get(f"/reviewers/{odd.pk}/").content.decode()
    assert "rates everything 1" in history and "talked to them" in history


def test_an_exclusion_needs_a_reason_and_cannot_be_doubled(staff, boss):
    odd = _reviewer("odd")
    response = staff.post(f"/reviewers/{odd.pk}/", {"action": "exclude", "exclude-reason": " "})
    assert response.status_code == 400 and not ReviewerExclusion.objects.exists()
    review_services.reviewer_exclusion_create(reviewer=odd, actor=boss, reason="first")
    with pytest.raises(Conflict):
        review_services.reviewer_exclusion_create(reviewer=odd, actor=boss, reason="second")


# --- the admin ------------------------------------------------------------------------------


def test_reviews_in_the_admin_are_read_only_evidence_with_a_watch_link(staff):
    generation = FinishedGenerationFactory(prompt="A briefing on rail freight")
    review = _review(
        _reviewer("ann"),
        generation,
        3,
        issues=[review_services.IssueInput(category="blur", start_s=1.0, end_s=2.0)],
    )
    url = f"/admin/reviews/review/{review.pk}/change/"
    page = staff.get(url).content.decode()
    assert "ann's review of “A briefing on rail freight”" in html.unescape(page)
    assert 'name="ratings-0-value"' not in page and 'type="submit"' not in page.split("<form")[-1]
    assert f'href="/generations/{generation.id}/"' in page
    ratings_before = list(review.ratings.values_list("value", flat=True))
    staff.post(url, {"comments": "changed by an admin"})
    review.refresh_from_db()
    assert review.comments == "" and list(review.ratings.values_list("value", flat=True)) == (
        ratings_before
    )
    assert staff.get("/admin/reviews/review/add/").status_code == 403
    issue = IssueReport.objects.get(review=review)
    delete = staff.post(f"/admin/reviews/issuereport/{issue.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403 and IssueReport.objects.filter(pk=issue.pk).exists()


def test_watch_in_the_generation_admin_opens_the_staff_page(staff):
    generation = FinishedGenerationFactory()
    page = staff.get(f"/admin/generation/generation/{generation.pk}/change/").content.decode()
    assert f'href="/generations/{generation.id}/"' in page
    assert "/media/generations/" not in page
