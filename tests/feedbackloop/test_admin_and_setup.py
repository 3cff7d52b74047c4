import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from generation.models import Generation
from pipelines.models import ConfigRevision
from pipelines.services.revisions import revision_create
from tests.factories import FinishedGenerationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pass-12345")
    client.force_login(user)
    return client


def test_revision_changelist_shows_number_status_source_author_and_param_diff(
    admin_client_logged_in, active_revision
):
    revision_create(
        pipeline=active_revision.pipeline,
        params={**active_revision.params, "crf": 18},
        parent=active_revision,
        rationale="sharper text",
    )
    page = admin_client_logged_in.get("/admin/pipelines/configrevision/").content.decode()
    assert "<code>crf</code>: 23 → <b>18</b>" in page
    assert "proposed" in page and "active" in page and "initial" in page and "sharper text" in page


def test_revision_page_shows_its_transitions(admin_client_logged_in, active_revision):
    page = admin_client_logged_in.get(
        f"/admin/pipelines/configrevision/{active_revision.pk}/change/"
    ).content.decode()
    assert "proposed" in page and "approved" in page and "initial" in page


def test_admin_can_add_a_revision_which_starts_proposed(admin_client_logged_in, active_revision):
    response = admin_client_logged_in.post(
        "/admin/pipelines/configrevision/add/",
        {
            "pipeline": active_revision.pipeline.pk,
            "parent": active_revision.pk,
            "params": '{"grain": 0.0}',
            "rationale": "less grain",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    new = ConfigRevision.objects.get(number=active_revision.number + 1)
    assert new.status == "proposed" and new.params["grain"] == 0.0
    assert new.params["width"] == active_revision.params["width"]


def test_admin_add_with_a_bad_param_shows_the_error_and_saves_nothing(
    admin_client_logged_in, active_revision
):
    before = ConfigRevision.objects.count()
    response = admin_client_logged_in.post(
        "/admin/pipelines/configrevision/add/",
        {
            "pipeline": active_revision.pipeline.pk,
            "parent": active_revision.pk,
            "params": '{"crf": 90}',
            "rationale": "",
        },
    )
    assert response.status_code == 200
    assert "crf" in response.content.decode()
    assert "90 is greater than the maximum of 51" in response.content.decode()
    assert ConfigRevision.objects.count() == before


def test_approve_action_activates_and_retires_the_old_revision(
    admin_client_logged_in, active_revision
):
    proposal = revision_create(
        pipeline=active_revision.pipeline, params={"crf": 20}, parent=active_revision
    )
    admin_client_logged_in.post(
        "/admin/pipelines/configrevision/",
        {"action": "approve_and_activate", "_selected_action": [proposal.pk]},
    )
    proposal.refresh_from_db()
    active_revision.refresh_from_db()
    assert (proposal.status, active_revision.status) == ("active", "retired")


def test_generation_admin_lists_videos(admin_client_logged_in, active_revision):
    FinishedGenerationFactory(prompt="Demo video about tides", revision=active_revision)
    page = admin_client_logged_in.get("/admin/generation/generation/").content.decode()
    assert "Demo video about tides" in page


def test_setup_site_twice_makes_one_of_everything(django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setenv("DEMO_REVIEWER_PASSWORD", "s3cret-pass")
    with django_capture_on_commit_callbacks(execute=False) as first:
        call_command("setup_site")
    with django_capture_on_commit_callbacks(execute=False) as second:
        call_command("setup_site")
    assert ConfigRevision.objects.get().status == "active"
    assert ConfigRevision.objects.get().pipeline.slug == "builtin"
    assert Generation.objects.count() == 3
    assert len(first) == 3 and len(second) == 3  # still queued: asked again, claimed once
    assert PeriodicTask.objects.filter(task="improvements.tasks.improver_run_task").count() == 1
    reviewer = get_user_model().objects.get(username="reviewer")
    assert (
        reviewer.check_password("s3cret-pass") and reviewer.groups.filter(name="reviewer").exists()
    )
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_staff and admin.has_perm("pipelines.approve_configrevision")


def test_login_page_is_served_and_home_requires_login(client):
    assert client.get("/accounts/login/").status_code == 200
    response = client.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_every_model_has_an_admin_page_that_opens(admin_client_logged_in, active_revision):
    from django.apps import apps
    from django.contrib import admin

    for app in ("pipelines", "generation", "reviews", "improvements"):
        for model in apps.get_app_config(app).get_models():
            assert admin.site.is_registered(model), model.__name__
            url = f"/admin/{app}/{model._meta.model_name}/"
            assert admin_client_logged_in.get(url).status_code == 200, url
