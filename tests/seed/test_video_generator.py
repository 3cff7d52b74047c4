"""The product design's usage example, through the in-process facade (the seed package).

What the improver proposes from feedback is its policy's decision (improvements/search); its
tests live with it in tests/improver_search/. Here: the loop around it.
"""

from pathlib import Path

import pytest
import yaml

from feedbackloop.errors import InvalidInput, NotFound
from generation.models import Generation
from pipelines.declarations import defaults_of
from pipelines.models import ConfigRevision
from pipelines.services.registration import pipeline_register
from reviews.models import Review
from seed.video_generator import VideoGenerator
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
DEFAULT = Path(__file__).resolve().parents[2] / "config" / "default_config.yaml"


@pytest.fixture
def config_file(tmp_path, small_params):
    def make(**feedback):
        data = yaml.safe_load(DEFAULT.read_text())
        data["pipelines"][0]["params"].update(small_params)
        data["feedback"].update(feedback)
        data["storage"]["output_dir"] = str(tmp_path / "out")
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return make


def test_usage_example_runs_as_written(config_file, tmp_path):
    generator = VideoGenerator(config_path=config_file(min_feedback_for_analysis=3))
    result = generator.generate_video(
        prompt="A policy briefing on renewable energy initiatives",
        output_path=str(tmp_path / "output" / "policy_briefing.mp4"),
    )
    assert result["status"] == "succeeded" and result["pipeline"] == "builtin"
    assert Path(result["output_path"]).stat().st_size > 1000
    assert result["config_revision"] == 1 and result["generation_seconds"] > 0
    assert result["params"]["width"] == 192  # the config file's params made revision 1
    assert result["metrics"]["visual_quality"] is not None
    generator.feedback_integration.record_human_feedback(
        generation_id=result["generation_id"],
        ratings={"visual_quality": 4, "content_relevance": 5, "overall_satisfaction": 4},
        comments="Good visual quality, excellent content relevance",
    )
    generator.check_for_improvements()  # the policy's proposals are tested with the policy
    summary = generator.get_feedback_summary()
    assert summary["avg_visual_quality"] == 4.0 and summary["pipeline"] == "builtin"


def _rate(generator, generation_id, n, ratings):
    for i in range(n):
        generator.feedback_integration.record_human_feedback(
            generation_id=generation_id,
            ratings=ratings,
            reviewer=UserFactory(username=f"r{i}-{id(ratings)}"),
        )


def test_below_the_feedback_threshold_no_improvement_is_made(config_file):
    generator = VideoGenerator(config_path=config_file(min_feedback_for_analysis=10))
    result = generator.generate_video(prompt="Threshold test", measure=False)
    _rate(generator, result["generation_id"], 3, {"temporal_coherence": 1})
    assert generator.check_for_improvements() == []
    assert ConfigRevision.objects.count() == 1


def test_a_second_generator_on_the_same_file_registers_nothing_twice(config_file):
    path = config_file()
    first = VideoGenerator(config_path=path)
    again = VideoGenerator(config_path=path)
    assert first.pipeline == again.pipeline
    assert ConfigRevision.objects.count() == 1
    assert first.pipeline.versions.count() == 1


def test_a_generator_for_a_remote_pipeline_refuses_to_render_in_process(config_file):
    pipeline_register(
        slug="diffusers",
        name="Diffusers",
        parameters={
            "properties": {
                "steps": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
            }
        },
    )
    generator = VideoGenerator(config_path=config_file(), pipeline="diffusers")
    assert generator.pipeline.slug == "diffusers"
    assert generator.active_revision["params"] == {"steps": 20}
    with pytest.raises(InvalidInput, match="remote workers"):
        generator.generate_video(prompt="Needs a GPU")
    assert Generation.objects.count() == 0


def test_a_generator_for_an_unknown_pipeline_names_the_known_ones(config_file):
    with pytest.raises(NotFound, match="no pipeline 'nope'; known pipelines: builtin"):
        VideoGenerator(config_path=config_file(), pipeline="nope")


def test_without_params_in_the_file_revision_one_takes_the_declared_defaults(tmp_path):
    data = yaml.safe_load(DEFAULT.read_text())
    del data["pipelines"][0]["params"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    generator = VideoGenerator(config_path=path)
    assert generator.active_revision["params"] == defaults_of(
        generator.pipeline.versions.get().parameters
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ratings": {"visual_quality": 7}}, InvalidInput, "1 to 5"),
        ({"ratings": {"visual_quality": 2.5}}, InvalidInput, "integer"),
        ({"ratings": {"vibes": 3}}, InvalidInput, "known dimensions: content_relevance"),
    ],
)
def test_bad_feedback_raises_and_writes_nothing(config_file, kwargs, error, message):
    generator = VideoGenerator(config_path=config_file())
    result = generator.generate_video(prompt="Feedback errors", measure=False)
    with pytest.raises(error, match=message):
        generator.feedback_integration.record_human_feedback(
            generation_id=result["generation_id"], **kwargs
        )
    assert Review.objects.count() == 0


@pytest.mark.parametrize("generation_id", ["0b9d3c1e-0000-4000-8000-000000000000", "not-a-uuid"])
def test_unknown_generation_id_is_a_clear_error(config_file, generation_id):
    generator = VideoGenerator(config_path=config_file())
    with pytest.raises(NotFound, match="no generation with id"):
        generator.feedback_integration.record_human_feedback(
            generation_id=generation_id, ratings={"visual_quality": 3}
        )


@pytest.mark.parametrize("prompt", ["", "y" * 2001])
def test_bad_prompt_raises_and_writes_nothing(config_file, prompt):
    generator = VideoGenerator(config_path=config_file())
    with pytest.raises(InvalidInput, match="prompt"):
        generator.generate_video(prompt=prompt)
    assert Generation.objects.count() == 0
