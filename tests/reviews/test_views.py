"""The reviewer UI through Django's test client: queue, review form, drafts, comparisons,
permissions, validation and the staff generations page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from django.contrib.auth.models import Group
from django.test import Client

from generation.models import Generation
from reviews import services
from reviews.models import Comparison, IssueReport, Rating, RatingDimension, Review, ReviewDraft
from tests.factories import FinishedGenerationFactory, RevisionFactory, UserFactory

pytestmark = pytest.mark.django_db


def _mentions_revision(html: str, number: int) -> bool:
    """'r2' as a word of its own; inside a random token (CSRF, comparison) it is not a mention."""
    return re.search(rf"(?<![A-Za-z0-9])r{number}(?![A-Za-z0-9])", html) is not None


def _reviewer(username: str):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


@pytest.fixture
def member(db):
    return _reviewer("rosa")


@pytest.fixture
def logged_in(client, member):
    client.force_login(member)
    return client


def _slugs() -> list[str]:
    return list(RatingDimension.objects.filter(active=True).values_list("slug", flat=True))


def _valid_post(**overrides) -> dict:
    data = {f"rating_{slug}": "4" for slug in _slugs()}
    data.update(
        {
            "comments": "fine",
            "seconds_spent": "12.5",
            "issues-TOTAL_FORMS": "0",
            "issues-INITIAL_FORMS": "0",
            "issues-MIN_NUM_FORMS": "0",
            "issues-MAX_NUM_FORMS": "50",
        }
    )
    data.update(overrides)
    return data


def _with_issue(data: dict, index: int = 0, **issue) -> dict:
    fields = {"category": "blur", "severity": "2", "start_s": "1.0", "end_s": "2.0", "note": ""}
    fields.update(issue)
    data = dict(data)
    for key, value in fields.items():
        data[f"issues-{index}-{key}"] = value
    data["issues-TOTAL_FORMS"] = str(index + 1)
    return data


def _review_url(generation) -> str:
    return f"/review/{generation.id}/"


# --- permissions ----------------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_login_from_every_review_page(client):
    generation = FinishedGenerationFactory()
    for url in ["/review/", "/review/next/", _review_url(generation), "/compare/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_users_who_are_neither_reviewers_nor_staff_get_403(client):
    client.force_login(UserFactory(username="outsider"))
    generation = FinishedGenerationFactory()
    assert client.get("/review/").status_code == 403
    assert client.get(_review_url(generation)).status_code == 403
    assert client.get("/").status_code == 403


def test_staff_may_use_the_review_pages(client):
    client.force_login(UserFactory(username="boss", is_staff=True))
    assert client.get("/review/").status_code == 200


def test_a_reviewer_cannot_open_the_admin(logged_in):
    response = logged_in.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_reviewer_cannot_open_an_unfinished_generation(logged_in):
    generation = FinishedGenerationFactory()
    Generation.objects.filter(pk=generation.pk).update(status=Generation.Status.RUNNING)
    assert logged_in.get(_review_url(generation)).status_code == 404
    assert logged_in.post(_review_url(generation), _valid_post()).status_code == 404


def test_home_sends_reviewers_to_their_queue(logged_in):
    response = logged_in.get("/")
    assert response.status_code == 302 and response["Location"] == "/review/"


# --- queue ----------------------------------------------------------------------------------------


def test_the_queue_offers_finished_unreviewed_generations_fewest_reviews_first(logged_in, member):
    revision = RevisionFactory()
    busy = FinishedGenerationFactory(revision=revision)
    quiet = FinishedGenerationFactory(revision=revision)
    mine = FinishedGenerationFactory(revision=revision)
    unfinished = FinishedGenerationFactory(revision=revision)
    Generation.objects.filter(pk=unfinished.pk).update(status=Generation.Status.RUNNING, video="")
    services.review_create(reviewer=_reviewer("other"), generation=busy, ratings={_slugs()[0]: 3})
    services.review_create(reviewer=member, generation=mine, ratings={_slugs()[0]: 3})

    response = logged_in.get("/review/next/")
    assert response["Location"] == _review_url(quiet)
    services.review_create(reviewer=member, generation=quiet, ratings={_slugs()[0]: 3})
    assert logged_in.get("/review/next/")["Location"] == _review_url(busy)


def test_the_queue_stops_offering_a_generation_at_the_target_number_of_reviews(logged_in, settings):
    settings.REVIEWS_TARGET_PER_GENERATION = 2
    generation = FinishedGenerationFactory()
    for name in ("a1", "a2"):
        services.review_create(
            reviewer=_reviewer(name), generation=generation, ratings={_slugs()[0]: 3}
        )
    response = logged_in.get("/review/next/")
    assert response["Location"] == "/review/"
    page = logged_in.get("/review/")
    assert b"Nothing is waiting for your review" in page.content


def test_the_queue_target_comes_from_the_config_file_when_the_environment_sets_none(
    logged_in, settings, tmp_path
):
    data = yaml.safe_load(Path(settings.FEEDBACKLOOP_CONFIG_PATH).read_text())
    data["feedback"]["target_reviews_per_generation"] = 1
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    settings.FEEDBACKLOOP_CONFIG_PATH = config
    settings.REVIEWS_TARGET_PER_GENERATION = None
    generation = FinishedGenerationFactory()
    assert logged_in.get("/review/next/")["Location"] == _review_url(generation)
    services.review_create(
        reviewer=_reviewer("a1"), generation=generation, ratings={_slugs()[0]: 3}
    )
    assert logged_in.get("/review/next/")["Location"] == "/review/"
    # The environment's value wins over the file's.
    settings.REVIEWS_TARGET_PER_GENERATION = 2
    assert logged_in.get("/review/next/")["Location"] == _review_url(generation)


def test_the_queue_page_shows_reviews_done_today_and_videos_waiting(logged_in, member):
    done = FinishedGenerationFactory()
    FinishedGenerationFactory()
    FinishedGenerationFactory()
    services.review_create(reviewer=member, generation=done, ratings={_slugs()[0]: 3})
    html = logged_in.get("/review/").content.decode()
    assert re.search(r'id="reviewed-today">1<', html)
    assert re.search(r'id="waiting">2<', html)


# --- the review page ------------------------------------------------------------------------------


def test_the_review_page_shows_the_prompt_player_and_a_labelled_radio_group_per_dimension(
    logged_in,
):
    generation = FinishedGenerationFactory(prompt="Ocean tides explained", fps=12)
    html = logged_in.get(_review_url(generation)).content.decode()
    assert "Ocean tides explained" in html
    assert f'src="/videos/{generation.id}.mp4"' in html
    assert 'data-fps="12' in html
    for dimension in RatingDimension.objects.filter(active=True):
        assert f"<legend>{dimension.label}</legend>" in html
        assert f'id="desc-{dimension.slug}"' in html
        for value in range(1, 6):
            assert f'for="id_rating_{dimension.slug}_{value}"' in html
    assert "Keyboard shortcuts" in html
    assert "csrfmiddlewaretoken" in html
    # Reviews are blind to the configuration that made the video.
    assert not _mentions_revision(html, generation.revision.number)


def test_the_review_page_renders_in_a_bounded_number_of_queries(
    logged_in, django_assert_max_num_queries
):
    generation = FinishedGenerationFactory()
    for _ in range(5):
        FinishedGenerationFactory()
    with django_assert_max_num_queries(12):
        response = logged_in.get(_review_url(generation))
    assert response.status_code == 200


def test_submitting_saves_ratings_issues_and_comment_and_opens_the_next_video(logged_in, member):
    generation = FinishedGenerationFactory()
    following = FinishedGenerationFactory()
    ReviewDraft.objects.create(reviewer=member, generation=generation, data={"comments": "wip"})
    post = _with_issue(_valid_post(comments="Text flickers"), start_s="1.5", end_s="2.25")
    response = logged_in.post(_review_url(generation), post)
    assert response.status_code == 302 and response["Location"] == "/review/next/"
    assert logged_in.get(response["Location"])["Location"] == _review_url(following)

    review = Review.objects.get(reviewer=member, generation=generation)
    assert review.comments == "Text flickers" and review.seconds_spent == 12.5
    assert Rating.objects.filter(review=review).count() == len(_slugs())
    issue = IssueReport.objects.get(review=review)
    assert (issue.category, issue.severity, issue.start_s, issue.end_s) == ("blur", 2, 1.5, 2.25)
    assert not ReviewDraft.objects.filter(reviewer=member, generation=generation).exists()


@pytest.mark.parametrize(
    ("change", "field_error_id", "message"),
    [
        ({"rating_visual_quality": "6"}, "rating_visual_quality-error", "1 to 5"),
        ({"rating_visual_quality": "0"}, "rating_visual_quality-error", "1 to 5"),
        ({"rating_visual_quality": ""}, "rating_visual_quality-error", "Rate visual quality"),
    ],
)
def test_a_bad_or_missing_rating_comes_back_with_the_error_next_to_it_and_saves_nothing(
    logged_in, change, field_error_id, message
):
    generation = FinishedGenerationFactory()
    response = logged_in.post(_review_url(generation), _valid_post(**change))
    assert response.status_code == 400
    html = response.content.decode()
    error = re.search(rf'<p class="error" id="{field_error_id}">([^<]*)</p>', html)
    assert error and message in error.group(1)
    assert Review.objects.count() == 0


@pytest.mark.parametrize(
    ("issue", "error_id", "message"),
    [
        ({"start_s": "3", "end_s": "2"}, "id_issues-0-end_s-error", "before the start"),
        ({"start_s": "3", "end_s": "12"}, "id_issues-0-end_s-error", "past its end"),
        ({"start_s": "-1", "end_s": "2"}, "id_issues-0-start_s-error", "greater than or equal"),
        ({"category": "ugly"}, "id_issues-0-category-error", "Choose a category"),
        ({"severity": "9"}, "id_issues-0-severity-error", "valid choice"),
    ],
)
def test_a_bad_issue_comes_back_with_the_error_next_to_its_field_and_saves_nothing(
    logged_in, issue, error_id, message
):
    generation = FinishedGenerationFactory(duration_s=10.0)
    response = logged_in.post(_review_url(generation), _with_issue(_valid_post(), **issue))
    assert response.status_code == 400
    html = response.content.decode()
    error = re.search(rf'<p class="error" id="{error_id}">([^<]*)</p>', html)
    assert error and message in error.group(1), html[html.find("issues-0") :][:2000]
    assert 'aria-invalid="true"' in html
    assert Review.objects.count() == 0 and IssueReport.objects.count() == 0


def test_the_error_page_keeps_everything_the_reviewer_typed(logged_in):
    generation = FinishedGenerationFactory(duration_s=10.0)
    post = _with_issue(_valid_post(comments="keep me"), start_s="3", end_s="2", note="left edge")
    html = logged_in.post(_review_url(generation), post).content.decode()
    assert "keep me</textarea>" in html
    assert 'value="left edge"' in html
    assert 'id="id_rating_visual_quality_4" value="4"\n                   checked' in html
    assert 'data-restore="0"' in html


def test_a_double_submit_creates_one_review_and_the_second_goes_to_the_next_video(
    logged_in, member
):
    generation = FinishedGenerationFactory()
    first = logged_in.post(_review_url(generation), _valid_post())
    second = logged_in.post(_review_url(generation), _valid_post(), follow=True)
    assert first.status_code == 302
    assert second.status_code == 200
    assert Review.objects.filter(reviewer=member, generation=generation).count() == 1
    assert b"Your review of that video is saved" in second.content


def test_a_conflict_inside_the_submit_is_treated_as_already_saved(logged_in, member, monkeypatch):
    """Two submits racing past the 'already reviewed' check: the database keeps one."""
    generation = FinishedGenerationFactory()
    services.review_create(reviewer=member, generation=generation, ratings={_slugs()[0]: 3})
    monkeypatch.setattr("reviews.selectors.review_exists", lambda **kwargs: False)
    response = logged_in.post(_review_url(generation), _valid_post())
    assert response.status_code == 302 and response["Location"] == "/review/next/"
    assert Review.objects.filter(reviewer=member, generation=generation).count() == 1


def test_every_form_post_needs_a_csrf_token(member):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    generation = FinishedGenerationFactory()
    assert client.post(_review_url(generation), _valid_post()).status_code == 403
    draft = client.post(
        f"/review/{generation.id}/draft/", json.dumps({"data": {}}), "application/json"
    )
    assert draft.status_code == 403
    assert Review.objects.count() == 0 and ReviewDraft.objects.count() == 0


def test_comments_and_notes_are_escaped(logged_in):
    generation = FinishedGenerationFactory(duration_s=10.0)
    script = "<script>alert('x')</script>"
    post = _with_issue(_valid_post(comments=script), start_s="3", end_s="2", note=script)
    html = logged_in.post(_review_url(generation), post).content.decode()
    assert script not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


# --- drafts ---------------------------------------------------------------------------------------


def test_a_draft_is_saved_and_shown_again_when_the_page_reopens(logged_in, member):
    generation = FinishedGenerationFactory()
    data = {"ratings": {"visual_quality": "4"}, "comments": "</script><b>half</b>"}
    response = logged_in.post(
        f"/review/{generation.id}/draft/", json.dumps({"data": data}), "application/json"
    )
    assert response.status_code == 200
    assert ReviewDraft.objects.get(reviewer=member, generation=generation).data == data
    html = logged_in.get(_review_url(generation)).content.decode()
    embedded = re.search(r'<script id="draft-data" type="application/json">(.*?)</script>', html)
    assert json.loads(embedded.group(1))["data"] == data
    assert logged_in.get(f"/review/{generation.id}/draft/").json()["data"] == data


def test_a_reviewer_cannot_read_or_overwrite_another_reviewers_draft(client, member):
    generation = FinishedGenerationFactory()
    services.review_draft_save(reviewer=member, generation=generation, data={"comments": "mine"})
    client.force_login(_reviewer("mallory"))
    assert client.get(f"/review/{generation.id}/draft/").status_code == 404
    html = client.get(_review_url(generation)).content.decode()
    assert "mine" not in html
    client.post(
        f"/review/{generation.id}/draft/",
        json.dumps({"data": {"comments": "theirs"}}),
        "application/json",
    )
    assert ReviewDraft.objects.get(reviewer=member).data == {"comments": "mine"}


def test_draft_endpoint_rejects_bad_bodies_anonymous_users_and_reviewed_videos(logged_in, member):
    generation = FinishedGenerationFactory()
    url = f"/review/{generation.id}/draft/"
    assert logged_in.post(url, "not json", "application/json").status_code == 400
    assert logged_in.post(url, json.dumps({"data": [1]}), "application/json").status_code == 400
    big = {"data": {"comments": "x" * 70_000}}
    assert logged_in.post(url, json.dumps(big), "application/json").status_code == 400
    services.review_create(reviewer=member, generation=generation, ratings={_slugs()[0]: 3})
    assert logged_in.post(url, json.dumps({"data": {}}), "application/json").status_code == 409
    assert Client().get(url).status_code == 401


# --- comparisons ----------------------------------------------------------------------------------


@pytest.fixture
def pair(db):
    prompt = "Water conservation at home"
    first = FinishedGenerationFactory(prompt=prompt, revision=RevisionFactory())
    second = FinishedGenerationFactory(prompt=prompt, revision=RevisionFactory())
    return first, second


def _open_comparison(client) -> tuple[str, str]:
    response = client.get("/compare/")
    assert response.status_code == 302
    url = response["Location"]
    assert re.fullmatch(r"/compare/[-\w]+/", url)
    return url, client.get(url).content.decode()


def test_the_queue_offers_a_comparison_when_a_pair_exists(logged_in, pair):
    assert b'id="start-compare"' in logged_in.get("/review/").content


def test_no_comparison_is_offered_for_one_revision_only(logged_in):
    revision = RevisionFactory()
    FinishedGenerationFactory(prompt="same", revision=revision)
    FinishedGenerationFactory(prompt="same", revision=revision)
    assert b'id="start-compare"' not in logged_in.get("/review/").content
    assert logged_in.get("/compare/")["Location"] == "/review/"


def test_the_comparison_page_is_blind(logged_in, pair):
    url, html = _open_comparison(logged_in)
    token = url.split("/")[2]
    for generation in pair:
        assert str(generation.id) not in html
        assert not _mentions_revision(html, generation.revision.number)
    assert f'src="/compare/{token}/left.mp4"' in html
    assert f'src="/compare/{token}/right.mp4"' in html
    assert "Water conservation at home" in html


def test_sides_are_randomised_and_recorded_as_shown(logged_in, member, pair):
    seen_left = set()
    for _attempt in range(24):
        url, _ = _open_comparison(logged_in)
        left_id = logged_in.session["reviews.comparisons"][url.split("/")[2]]["left"]
        seen_left.add(left_id)
        # Forget this assignment so the next visit draws again.
        session = logged_in.session
        session["reviews.comparisons"] = {}
        session.save()
        if len(seen_left) == 2:
            break
    assert seen_left == {str(pair[0].id), str(pair[1].id)}

    url, _ = _open_comparison(logged_in)
    shown = logged_in.session["reviews.comparisons"][url.split("/")[2]]
    response = logged_in.post(
        url, {"winner": "left", "winner_visual_quality": "right", "seconds_spent": "30"}
    )
    assert response.status_code == 302 and response["Location"] == "/compare/"
    comparison = Comparison.objects.get(reviewer=member)
    assert str(comparison.left_id) == shown["left"] and str(comparison.right_id) == shown["right"]
    assert comparison.winner == "left" and comparison.seconds_spent == 30
    assert comparison.dimension_winners.get().winner == "right"
    # Once compared, the pair is not offered again.
    assert logged_in.get("/compare/")["Location"] == "/review/"


def test_a_double_submitted_comparison_is_recorded_once(logged_in, member, pair):
    url, _ = _open_comparison(logged_in)
    logged_in.post(url, {"winner": "tie"})
    second = logged_in.post(url, {"winner": "tie"})
    assert second.status_code == 302
    assert Comparison.objects.filter(reviewer=member).count() == 1


def test_a_comparison_without_a_verdict_comes_back_with_the_error(logged_in, pair):
    url, _ = _open_comparison(logged_in)
    response = logged_in.post(url, {"winner": "both"})
    assert response.status_code == 400
    assert b'id="winner-error"' in response.content
    assert Comparison.objects.count() == 0


def test_comparison_media_is_reachable_only_through_the_reviewers_own_token(
    logged_in, pair, settings
):
    url, _ = _open_comparison(logged_in)
    token = url.split("/")[2]
    for generation in pair:
        path = settings.MEDIA_ROOT / generation.video.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(str(generation.id).encode())
    shown = logged_in.session["reviews.comparisons"][token]
    response = logged_in.get(f"/compare/{token}/left.mp4", headers={"Range": "bytes=0-7"})
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == shown["left"][:8].encode()
    assert logged_in.get(f"/compare/{token}/middle.mp4").status_code == 404
    client = Client()
    client.force_login(_reviewer("eve"))
    assert client.get(f"/compare/{token}/left.mp4").status_code == 404
    assert client.get(url).status_code == 404


# --- the staff generations page ----------------------------------------------------------------


def test_the_generations_page_is_for_staff_only(logged_in):
    assert logged_in.get("/generations/").status_code == 403
    assert logged_in.get("/generations/progress.json").status_code == 403
    client = Client()
    assert client.get("/generations/progress.json").status_code == 401
    client.force_login(UserFactory(username="boss", is_staff=True))
    assert client.get("/generations/").status_code == 200


def test_progress_of_running_generations_is_reported_as_json(client):
    generation = FinishedGenerationFactory()
    Generation.objects.filter(pk=generation.pk).update(
        status=Generation.Status.RUNNING, progress=0.4, video=""
    )
    client.force_login(UserFactory(username="boss", is_staff=True))
    html = client.get("/generations/").content.decode()
    assert f'data-generation="{generation.id}" data-status="running"' in html
    body = client.get(f"/generations/progress.json?id={generation.id}").json()
    assert body["generations"] == [
        {
            "id": str(generation.id),
            "status": "running",
            "status_label": "running",
            "progress": 0.4,
            "error": "",
            "worker": "",
            "heartbeat_at": None,
            "video_url": None,
        }
    ]
    assert client.get("/generations/progress.json?id=nope").status_code == 400
