"""A pipeline's declared parameter space, checked with jsonschema: every problem named by its
key, over the API as a 400 with nothing written."""

from __future__ import annotations

import pytest

from pipelines.builtin.declaration import DECLARATION
from pipelines.declarations import (
    InvalidDeclaration,
    InvalidParams,
    declaration_check,
    declaration_digest,
    params_check,
    params_diff,
)
from pipelines.models import ConfigRevision, Pipeline, SchemaVersion
from tests.pipelines.conftest import DIFFUSERS, body, declaration

BAD = {
    "not valid JSON Schema": (
        declaration(num_frames={"type": "integr", "default": 16}),
        "parameters.properties.num_frames.type",
        "not valid JSON Schema",
    ),
    "a bound that is not a number": (
        declaration(num_frames={"type": "integer", "minimum": "few", "maximum": 49, "default": 16}),
        "parameters.properties.num_frames.minimum",
        "not valid JSON Schema",
    ),
    "a default above its maximum": (
        declaration(num_frames={"type": "integer", "minimum": 8, "maximum": 49, "default": 120}),
        "parameters.properties.num_frames.default",
        "outside the parameter's own schema",
    ),
    "a default not among its choices": (
        declaration(scheduler={"type": "string", "enum": ["ddim", "euler"], "default": "pndm"}),
        "parameters.properties.scheduler.default",
        "outside the parameter's own schema",
    ),
    "a tunable free string": (
        declaration(negative_prompt={"type": "string", "default": "blurry"}),
        "parameters.properties.negative_prompt",
        "free-text parameter cannot be searched",
    ),
    "a tunable array": (
        declaration(sizes={"type": "array", "default": [512, 512]}),
        "parameters.properties.sizes",
        "arrays and objects cannot be searched",
    ),
    "an object marked tunable": (
        declaration(extra={"type": "object", "default": {}, "x-tunable": True}),
        "parameters.properties.extra.x-tunable",
        "arrays and objects cannot be searched",
    ),
    "a tunable number without bounds": (
        declaration(guidance_scale={"type": "number", "default": 6.0}),
        "parameters.properties.guidance_scale",
        "needs bounds",
    ),
    "a log scale from zero": (
        declaration(
            guidance_scale={
                "type": "number",
                "minimum": 0.0,
                "maximum": 20.0,
                "default": 6.0,
                "x-scale": "log",
            }
        ),
        "parameters.properties.guidance_scale",
        "x-scale: log needs a positive lower bound",
    ),
    "a log scale without a lower bound": (
        declaration(
            guidance_scale={
                "type": "number",
                "maximum": 20.0,
                "default": 6.0,
                "x-scale": "log",
                "x-tunable": False,
            }
        ),
        "parameters.properties.guidance_scale",
        "x-scale: log needs a positive lower bound",
    ),
    "a parameter without a default": (
        declaration(num_frames={"type": "integer", "minimum": 8, "maximum": 49}),
        "parameters.properties.num_frames",
        "'default' is a required property",
    ),
    "an x-affects that is not + or -": (
        declaration(
            num_frames={
                "type": "integer",
                "minimum": 8,
                "maximum": 49,
                "default": 16,
                "x-affects": {"temporal_coherence": "more"},
            }
        ),
        "parameters.properties.num_frames.x-affects.temporal_coherence",
        "is not one of",
    ),
    "a parameter name that is not an identifier": (
        declaration(**{"frames per second": {"type": "boolean", "default": True}}),
        "parameters.properties",
        "does not match",
    ),
    "no parameters": ({"properties": {}}, "parameters.properties", "non-empty"),
    "no properties at all": ({"type": "object"}, "parameters", "'properties' is a required"),
    "not an object": (["steps"], "parameters", "must be a JSON Schema object"),
}
CASES = [pytest.param(*case, id=name) for name, case in BAD.items()]


@pytest.mark.parametrize(("parameters", "key", "message"), CASES)
def test_a_bad_declaration_is_refused_naming_the_key(parameters, key, message):
    with pytest.raises(InvalidDeclaration) as exc:
        declaration_check(parameters)
    assert key in exc.value.details, exc.value.details
    assert any(message in m for m in exc.value.details[key]), exc.value.details
    assert str(exc.value).startswith(key)


@pytest.mark.django_db
@pytest.mark.parametrize(("parameters", "key", "message"), CASES)
def test_a_bad_declaration_over_the_api_is_400_naming_the_key_and_writes_nothing(
    gpu, parameters, key, message
):
    response = gpu.put("/api/v1/pipelines/diffusers/", body(parameters), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_parameters"
    assert key in error["details"] and error["message"].startswith(key)
    assert any(message in m for m in error["details"][key])
    assert not Pipeline.objects.exists() and not SchemaVersion.objects.exists()
    assert not ConfigRevision.objects.exists()


def test_every_problem_is_named_at_once():
    bad = declaration(
        negative_prompt={"type": "string", "default": ""},
        num_frames={"type": "integer", "minimum": 8, "maximum": 49, "default": 4},
        guidance_scale={"type": "number", "default": 6.0},
    )
    with pytest.raises(InvalidDeclaration) as exc:
        declaration_check(bad)
    assert set(exc.value.details) == {
        "parameters.properties.negative_prompt",
        "parameters.properties.num_frames.default",
        "parameters.properties.guidance_scale",
    }
    assert "(and 2 more)" in str(exc.value)
    assert all(len(messages) == len(set(messages)) for messages in exc.value.details.values())


def test_not_tunable_free_text_arrays_and_objects_are_accepted():
    accepted = declaration_check(
        declaration(
            sizes={
                "type": "array",
                "items": {"type": "integer"},
                "default": [1],
                "x-tunable": False,
            },
            extra={"type": "object", "default": {}, "x-tunable": False},
        )
    )
    assert accepted["properties"]["negative_prompt"]["x-tunable"] is False
    assert "sizes" in accepted["properties"] and "extra" in accepted["properties"]


def test_a_log_scale_with_a_positive_exclusive_lower_bound_is_accepted():
    accepted = declaration_check(
        declaration(
            guidance_scale={
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 20,
                "default": 6.0,
                "x-scale": "log",
            }
        )
    )
    assert accepted["properties"]["guidance_scale"]["x-scale"] == "log"


def test_a_checked_declaration_is_a_closed_object_schema_with_a_stable_digest():
    checked = declaration_check(DIFFUSERS)
    assert checked["type"] == "object" and checked["additionalProperties"] is False
    reordered = {"properties": dict(reversed(list(DIFFUSERS["properties"].items())))}
    assert declaration_digest(declaration_check(reordered)) == declaration_digest(checked)
    assert declaration_digest(declaration_check(declaration(seed=None))) != declaration_digest(
        checked
    )


def test_the_builtin_declaration_is_valid_and_annotated_for_the_improver():
    checked = declaration_check(DECLARATION)
    properties = checked["properties"]
    assert properties["crf"]["x-affects"]["visual_artifact"] == "+"
    assert properties["width"]["x-tunable"] is False
    assert all("default" in spec and "description" in spec for spec in properties.values())


def test_params_are_completed_with_defaults_and_given_one_spelling_per_value():
    space = declaration_check(DIFFUSERS)
    params = params_check(space, {"num_inference_steps": 30.0, "guidance_scale": 7})
    assert params["num_inference_steps"] == 30 and isinstance(params["num_inference_steps"], int)
    assert params["guidance_scale"] == 7.0 and isinstance(params["guidance_scale"], float)
    assert params["scheduler"] == "ddim" and params["negative_prompt"] == "blurry"
    assert params_check(space, {"num_frames": 24}, partial=True) == {"num_frames": 24}


def test_bad_params_name_every_key():
    space = declaration_check(DIFFUSERS)
    with pytest.raises(InvalidParams) as exc:
        params_check(space, {"num_frames": 200, "scheduler": "pndm", "cfg": 3, "seed": "x"})
    assert set(exc.value.details) == {"num_frames", "scheduler", "cfg", "seed"}
    assert "unknown parameter" in exc.value.details["cfg"][0]
    assert "num_inference_steps" in exc.value.details["cfg"][0]  # the allowed keys are listed
    with pytest.raises(InvalidParams):
        params_check(space, ["num_frames"])


def test_params_diff_lists_only_changed_keys():
    assert params_diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": (2, 3), "c": (None, 4)}
    assert params_diff(None, {"a": 1}) == {"a": (None, 1)}


def test_a_numeric_enum_is_searchable_without_bounds():
    from pipelines.declarations import declaration_check

    declaration_check(
        {
            "properties": {
                "height": {"type": "integer", "enum": [256, 480, 720], "default": 480},
                "steps": {"type": "integer", "minimum": 1, "maximum": 100, "default": 30},
            }
        }
    )
