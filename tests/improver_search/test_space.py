import math

import numpy as np
import pytest

from improvements.search import ParameterSpace, SpaceError

SCHEMA = {
    "type": "object",
    "properties": {
        "steps": {"type": "integer", "minimum": 2, "maximum": 200, "default": 25, "x-scale": "log"},
        "guidance": {
            "type": "number",
            "minimum": 1.0,
            "maximum": 20.0,
            "default": 7.5,
            "x-step": 0.5,
        },
        "crf": {"type": "integer", "minimum": 0, "maximum": 51, "default": 23, "x-step": 2},
        "width": {
            "type": "integer",
            "minimum": 160,
            "maximum": 1920,
            "default": 640,
            "multipleOf": 2,
        },
        "scheduler": {"type": "string", "enum": ["ddim", "euler", "unipc"], "default": "ddim"},
        "height": {"type": "integer", "enum": [480, 256, 720], "default": 480},
        "karras": {"type": "boolean", "default": False},
        "strength": {"type": "number", "minimum": 0.0, "maximum": 1.0, "default": 0.3},
        "seed": {
            "type": "integer",
            "minimum": 0,
            "maximum": 1000,
            "default": 7,
            "x-tunable": False,
        },
        "negative_prompt": {"type": "string", "default": "blurry"},
    },
}


@pytest.fixture
def space() -> ParameterSpace:
    return ParameterSpace.from_schema(SCHEMA)


def test_untunable_and_free_string_parameters_are_not_searched(space):
    assert "seed" not in space.tunable_names
    assert "negative_prompt" not in space.tunable_names
    assert set(space.tunable_names) == {
        "steps",
        "guidance",
        "crf",
        "width",
        "scheduler",
        "height",
        "karras",
        "strength",
    }


def test_log_scale_puts_the_geometric_midpoint_at_one_half(space):
    steps = space.by_name["steps"]
    assert steps.to_unit(20) == pytest.approx(0.5)  # sqrt(2 * 200)
    assert steps.from_unit(0.5) == 20
    assert steps.from_unit(0.0) == 2 and steps.from_unit(1.0) == 200


def test_numeric_enum_is_ordered_and_string_enum_is_categorical(space):
    height, scheduler = space.by_name["height"], space.by_name["scheduler"]
    assert height.choices == (256, 480, 720) and not height.categorical
    assert scheduler.categorical
    # One-hot features scaled so two different schedulers are at distance 1.
    f = space.features([{"scheduler": "ddim"}, {"scheduler": "unipc"}])
    group = space.feature_groups[space.tunable_names.index("scheduler")]
    assert np.linalg.norm(f[0, group] - f[1, group]) == pytest.approx(1.0)


def test_booleans_and_enums_round_trip_through_unit_coordinates(space):
    params = space.complete({"scheduler": "unipc", "karras": True, "height": 720})
    again = space.from_unit(space.to_unit(params), params)
    assert again == params


def test_untunable_parameters_keep_the_base_value(space):
    base = space.complete({"seed": 99, "negative_prompt": "ugly"})
    moved = space.from_unit(np.ones(len(space.tunable)), base)
    assert moved["seed"] == 99 and moved["negative_prompt"] == "ugly"
    candidate = {**moved, "seed": 5}
    assert space.restrict_to_meaningful(candidate, base)["seed"] == 99


def test_x_step_grid_is_anchored_at_the_default(space):
    crf = space.by_name["crf"]
    assert crf.snap(23) == 23  # an even grid from 0 would move the default to 24
    assert crf.snap(26.2) == 27
    assert space.by_name["guidance"].snap(8.1) == 8.0


def test_multiple_of_keeps_width_even(space):
    width = space.by_name["width"]
    assert all(width.from_unit(u) % 2 == 0 for u in np.linspace(0, 1, 37))


def test_a_change_smaller_than_x_step_is_not_meaningful(space):
    base = space.default()
    assert not space.is_meaningful_change(base, {**base, "guidance": 7.7})
    assert space.is_meaningful_change(base, {**base, "guidance": 8.0})
    assert not space.is_meaningful_change(base, {**base, "crf": 24})
    restricted = space.restrict_to_meaningful({**base, "guidance": 7.7, "crf": 27}, base)
    assert restricted["guidance"] == 7.5 and restricted["crf"] == 27


def test_without_x_step_a_change_must_move_five_percent_of_the_range(space):
    base = space.default()
    assert not space.is_meaningful_change(base, {**base, "strength": 0.33})
    assert space.is_meaningful_change(base, {**base, "strength": 0.36})
    # Log scale: 5% of the log range, measured in log units.
    steps = space.by_name["steps"]
    assert steps.unit_step() == pytest.approx(0.05)
    assert not steps.meaningful(25, 26)
    assert not steps.meaningful(25, 30) and steps.meaningful(25, 32)  # 5% of log(100) = x1.26


def test_any_enum_or_boolean_change_is_one_step(space):
    base = space.default()
    assert space.changes(base, {**base, "karras": True}) == {"karras": (False, True)}
    assert space.step_distance(base, {**base, "scheduler": "euler"}) == 1.0


@pytest.mark.parametrize(
    "prop, message",
    [
        ({"type": "string", "x-tunable": True}, "free string"),
        ({"type": "number", "minimum": 0, "maximum": 1, "default": 2}, "outside"),
        ({"type": "number", "minimum": 0, "maximum": 1, "x-scale": "log"}, "log scale"),
        ({"type": "number", "default": 1}, "minimum and maximum"),
        ({"type": "object"}, "not searchable"),
        ({"type": "string", "enum": ["a"], "default": "b"}, "not one of"),
        ({"type": "number", "minimum": 0, "maximum": 1, "x-affects": {"blur": "?"}}, "x-affects"),
    ],
)
def test_unsearchable_declarations_are_refused_naming_the_parameter(prop, message):
    with pytest.raises(SpaceError, match=rf"^p: .*{message}"):
        ParameterSpace.from_schema({"properties": {"p": prop}})


def test_x_affects_and_x_cost_are_read(space):
    s = ParameterSpace.from_schema(
        {
            "properties": {
                "fps": {
                    "type": "integer",
                    "minimum": 8,
                    "maximum": 60,
                    "default": 24,
                    "x-affects": {"flicker": "-", "generation_seconds": "+"},
                    "x-cost": True,
                }
            }
        }
    )
    fps = s.by_name["fps"]
    assert fps.affects == {"flicker": -1, "generation_seconds": 1} and fps.cost
    # No x-step: 5% of the range (2.6 frames per second), at least one whole frame.
    assert math.isclose(fps.unit_step(), 0.05)
    assert not fps.meaningful(24, 26) and fps.meaningful(24, 27)
