"""Video and poster files: HTTP Range (206/416), permissions, and the nginx hand-off."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from generation.models import Generation
from generation.views import RangeNotSatisfiable, byte_range
from tests.factories import FinishedGenerationFactory, UserFactory

pytestmark = pytest.mark.django_db

SIZE = 10_000
CONTENT = bytes(i % 251 for i in range(SIZE))


@pytest.fixture
def member(db):
    user = UserFactory(username="vera")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


@pytest.fixture
def stored_video(settings):
    generation = FinishedGenerationFactory(poster="generations/poster-test.jpg")
    path = Path(settings.MEDIA_ROOT) / generation.video.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(CONTENT)
    (Path(settings.MEDIA_ROOT) / generation.poster.name).write_bytes(b"\xff\xd8jpeg")
    return generation


def _get(client, generation, **headers):
    return client.get(f"/videos/{generation.id}.mp4", headers=headers)


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_middle_byte_range_returns_exactly_those_bytes_with_206(client, member, stored_video):
    client.force_login(member)
    response = _get(client, stored_video, Range="bytes=1000-1999")
    assert response.status_code == 206
    assert _body(response) == CONTENT[1000:2000]
    assert response["Content-Range"] == f"bytes 1000-1999/{SIZE}"
    assert response["Content-Length"] == "1000"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/mp4"


def test_an_open_ended_range_returns_the_rest_of_the_file(client, member, stored_video):
    client.force_login(member)
    response = _get(client, stored_video, Range="bytes=9000-")
    assert response.status_code == 206
    assert _body(response) == CONTENT[9000:]
    assert response["Content-Range"] == f"bytes 9000-{SIZE - 1}/{SIZE}"


def test_a_suffix_range_returns_the_last_bytes(client, member, stored_video):
    client.force_login(member)
    response = _get(client, stored_video, Range="bytes=-500")
    assert response.status_code == 206
    assert _body(response) == CONTENT[-500:]
    assert response["Content-Range"] == f"bytes {SIZE - 500}-{SIZE - 1}/{SIZE}"


def test_a_range_ending_past_the_file_is_clamped_to_its_end(client, member, stored_video):
    client.force_login(member)
    response = _get(client, stored_video, Range=f"bytes=9990-{SIZE * 3}")
    assert response.status_code == 206
    assert _body(response) == CONTENT[9990:]
    assert response["Content-Length"] == "10"


def test_a_range_starting_past_the_end_is_416_with_the_size(client, member, stored_video):
    client.force_login(member)
    response = _get(client, stored_video, Range=f"bytes={SIZE}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{SIZE}"


def test_no_range_returns_the_whole_file_and_advertises_ranges(client, member, stored_video):
    client.force_login(member)
    response = _get(client, stored_video)
    assert response.status_code == 200
    assert _body(response) == CONTENT
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(SIZE)


def test_several_ranges_are_answered_with_the_whole_file(client, member, stored_video):
    client.force_login(member)
    response = _get(client, stored_video, Range="bytes=0-9,20-29")
    assert response.status_code == 200
    assert _body(response) == CONTENT


def test_a_stale_if_range_gets_the_whole_file(client, member, stored_video):
    client.force_login(member)
    response = _get(client, stored_video, Range="bytes=0-9", **{"If-Range": '"stale"'})
    assert response.status_code == 200
    fresh = _get(client, stored_video, Range="bytes=0-9", **{"If-Range": response["ETag"]})
    assert fresh.status_code == 206 and _body(fresh) == CONTENT[:10]


def test_head_reports_the_length_without_a_body(client, member, stored_video):
    client.force_login(member)
    response = client.head(f"/videos/{stored_video.id}.mp4", headers={"Range": "bytes=0-99"})
    assert response.status_code == 206
    assert response["Content-Length"] == "100"
    assert response.content == b""


def test_the_poster_is_served_as_jpeg(client, member, stored_video):
    client.force_login(member)
    response = client.get(f"/posters/{stored_video.id}.jpg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert _body(response) == b"\xff\xd8jpeg"


def test_anonymous_users_are_sent_to_the_login_page(client, stored_video):
    response = _get(client, stored_video)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_user_without_a_reviewer_role_is_refused(client, stored_video):
    client.force_login(UserFactory(username="outsider"))
    assert _get(client, stored_video).status_code == 403


def test_reviewers_never_get_an_unfinished_generations_video(client, member, stored_video):
    Generation.objects.filter(pk=stored_video.pk).update(status=Generation.Status.FAILED)
    client.force_login(member)
    assert _get(client, stored_video).status_code == 404
    staff = UserFactory(username="stella", is_staff=True)
    client.force_login(staff)
    assert _get(client, stored_video).status_code == 200


def test_with_an_accel_prefix_nginx_is_told_which_file_to_send(
    client, member, stored_video, settings
):
    settings.VIDEO_ACCEL_REDIRECT_PREFIX = "/protected-media/"
    client.force_login(member)
    response = _get(client, stored_video, Range="bytes=0-9")
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/protected-media/{stored_video.video.name}"
    assert response.content == b""


def test_a_missing_file_is_404(client, member, stored_video, settings):
    (Path(settings.MEDIA_ROOT) / stored_video.video.name).unlink()
    client.force_login(member)
    assert _get(client, stored_video).status_code == 404


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", None),
        ("bytes=0-0", (0, 0)),
        ("bytes=5-", (5, 99)),
        ("bytes=-1", (99, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=10-5", None),
        ("bytes=a-b", None),
        ("items=0-5", None),
        ("bytes=0-5,7-9", None),
    ],
)
def test_range_headers_are_parsed_as_rfc_9110_says(header, expected):
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0", "bytes=500-600"])
def test_unsatisfiable_ranges_are_recognised(header):
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 100)
