"""Registering a pipeline: idempotent, versioned, and never breaking the active revision."""

from __future__ import annotations

import pytest

from feedbackloop.config import load_config
from feedbackloop.errors import InvalidInput
from pipelines.declarations import InvalidDeclaration, InvalidParams, defaults_of
from pipelines.models import ConfigRevision, Pipeline, SchemaVersion
from pipelines.selectors import revision_active, schema_current
from pipelines.services.registration import pipeline_register, pipelines_from_config
from pipelines.services.revisions import revision_approve_and_activate, revision_create
from tests.pipelines.conftest import DIFFUSERS, declaration

pytestmark = pytest.mark.django_db
S = ConfigRevision.Status


def register(parameters: dict | None = None, **fields):
    return pipeline_register(
        slug=fields.pop("slug", "diffusers"),
        name=fields.pop("name", "Diffusers"),
        parameters=DIFFUSERS if parameters is None else parameters,
        **fields,
    )


def snapshot() -> tuple:
    """Everything a registration can write."""
    return (
        list(Pipeline.objects.values_list("slug", "name", "description", "updated_at")),
        list(SchemaVersion.objects.values_list("pipeline__slug", "number", "digest")),
        list(ConfigRevision.objects.values_list("pipeline__slug", "number", "status", "params")),
    )


def test_the_first_registration_makes_version_1_and_an_active_revision_1_from_the_defaults():
    registration = register(registered_by="worker:gpu-1")
    pipeline = registration.pipeline
    assert registration.created and registration.version_created and registration.changed
    assert (pipeline.slug, pipeline.registered_by, pipeline.renderer) == (
        "diffusers",
        "worker:gpu-1",
        "",
    )
    assert registration.version.number == 1
    active = revision_active(pipeline=pipeline)
    assert active.number == 1 and active.schema_version == registration.version
    assert active.params == defaults_of(DIFFUSERS)
    steps = list(active.transitions.values_list("from_status", "to_status"))
    assert steps == [("", "proposed"), ("proposed", "approved"), ("approved", "active")]


def test_registering_the_same_declaration_again_changes_nothing():
    register()
    before = snapshot()
    again = register()
    reordered = register({"properties": dict(reversed(list(DIFFUSERS["properties"].items())))})
    assert not any((again.created, again.version_created, again.changed))
    assert not reordered.changed
    assert snapshot() == before


def test_a_new_name_or_description_changes_the_pipeline_but_not_its_version():
    register()
    renamed = register(name="CogVideoX", description="2B")
    assert renamed.changed and not renamed.version_created
    assert (renamed.pipeline.name, renamed.pipeline.description) == ("CogVideoX", "2B")
    assert SchemaVersion.objects.count() == 1


def test_changed_parameters_make_a_new_version_and_old_revisions_keep_theirs():
    first = register()
    r1 = revision_active(pipeline=first.pipeline)
    wider = declaration(
        fps={"type": "integer", "minimum": 4, "maximum": 30, "default": 8},
        num_frames={"type": "integer", "minimum": 8, "maximum": 81, "default": 16},
    )
    second = register(wider)
    assert second.version_created and second.version.number == 2
    assert schema_current(pipeline=first.pipeline) == second.version
    r1.refresh_from_db()
    assert r1.schema_version == first.version and "fps" not in r1.params
    r2 = revision_create(pipeline=first.pipeline, params={**r1.params, "num_frames": 81}, parent=r1)
    assert r2.schema_version == second.version and r2.params["fps"] == 8
    assert [v.number for v in first.pipeline.versions.all()] == [2, 1]


def test_a_new_revision_is_checked_against_the_current_version():
    first = register()
    register(
        declaration(num_frames={"type": "integer", "minimum": 8, "maximum": 81, "default": 16})
    )
    pipeline = first.pipeline
    revision_create(pipeline=pipeline, params={"num_frames": 81})
    with pytest.raises(InvalidParams) as exc:
        revision_create(pipeline=pipeline, params={"num_frames": 100, "fps": 8})
    assert set(exc.value.details) == {"num_frames", "fps"}


def test_a_declaration_that_breaks_the_active_revision_is_refused_naming_each_key():
    first = register()
    active = revision_active(pipeline=first.pipeline)
    changed = revision_create(
        pipeline=first.pipeline, params={**active.params, "num_frames": 40, "scheduler": "dpm"}
    )
    revision_approve_and_activate(revision=changed)
    before = snapshot()
    narrower = declaration(
        num_frames={"type": "integer", "minimum": 8, "maximum": 24, "default": 16},
        scheduler={"type": "string", "enum": ["ddim", "euler"], "default": "ddim"},
        seed=None,  # the active revision still has a seed
    )
    with pytest.raises(InvalidInput) as exc:
        register(narrower, name="Renamed in the same call")
    assert exc.value.code == "breaks_active_revision"
    assert set(exc.value.details) == {"num_frames", "scheduler", "seed"}
    for key in ("num_frames", "scheduler", "seed"):
        assert key in exc.value.message
    assert f"r{changed.number}" in exc.value.message
    assert snapshot() == before  # not even the name


def test_a_declaration_that_fits_the_active_revision_may_narrow_the_space():
    register()
    narrower = declaration(
        num_frames={"type": "integer", "minimum": 8, "maximum": 24, "default": 16}
    )
    assert register(narrower).version.number == 2


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"slug": "Diffusers"}, "invalid_slug"),
        ({"slug": "-x"}, "invalid_slug"),
        ({"slug": "a" * 65}, "invalid_slug"),
        ({"name": "  "}, "invalid_name"),
        ({"name": "x" * 201}, "invalid_name"),
        ({"description": "nul\x00"}, "invalid_description"),
        ({"renderer": "no.such.module:render"}, "invalid_renderer"),
        ({"renderer": "pipelines.builtin.renderer"}, "invalid_renderer"),
        ({"initial_params": {"num_frames": 500}}, "invalid_params"),
    ],
)
def test_bad_registrations_are_refused_and_write_nothing(fields, code):
    with pytest.raises(InvalidInput) as exc:
        register(**fields)
    assert exc.value.code == code
    assert snapshot() == ([], [], [])


def test_a_bad_declaration_writes_nothing_even_for_a_known_pipeline():
    register()
    before = snapshot()
    with pytest.raises(InvalidDeclaration):
        register(declaration(seed={"type": "integer"}))
    assert snapshot() == before


def test_revision_1_can_start_from_given_params():
    registration = register(initial_params={"num_frames": 24})
    assert revision_active(pipeline=registration.pipeline).params["num_frames"] == 24


def test_the_config_files_pipelines_are_registered_once_however_often(settings):
    config = load_config(settings.FEEDBACKLOOP_CONFIG_PATH)
    first = pipelines_from_config(entries=config.pipelines)
    before = snapshot()
    again = pipelines_from_config(entries=config.pipelines)
    assert [r.pipeline.slug for r in first] == ["builtin"]
    assert first[0].created and not again[0].changed
    assert snapshot() == before
    builtin = first[0].pipeline
    assert builtin.renderer == "pipelines.builtin.renderer:render_video"
    assert builtin.registered_by == "config"
    assert revision_active(pipeline=builtin).params == {
        **defaults_of(first[0].version.parameters),
        **config.pipeline().params,
    }
