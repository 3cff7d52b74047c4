"""The product design's usage example, through the in-process facade."""

from pathlib import Path

import pytest
import yaml

from feedbackloop.errors import InvalidInput, NotFound
from generation.facade import VideoGenerator
from generation.models import ConfigRevision, Generation
from improvements.models import AnalysisRun
from reviews.models import Review
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
DEFAULT = Path(__file__).resolve().parent.parent / "config" / "default_config.yaml"


@pytest.fixture
def config_file(tmp_path, small_params):
    def make(**feedback):
        data = yaml.safe_load(DEFAULT.read_text())
        data["generator"]["params"].update(small_params)
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
    assert result["status"] == "succeeded"
    assert Path(result["output_path"]).stat().st_size > 1000
    assert result["config_revision"] == 1 and result["generation_seconds"] > 0
    assert result["metrics"]["visual_quality"] is not None
    generator.feedback_integration.record_human_feedback(
        generation_id=result["generation_id"],
        ratings={"visual_quality": 4, "content_relevance": 5, "overall_satisfaction": 4},
        comments="Good visual quality, excellent content relevance",
    )
    improvements = generator.check_for_improvements()
    assert improvements == [], "one review (3 ratings) is exactly the threshold: all >= 4"
    summary = generator.get_feedback_summary()
    assert summary["avg_visual_quality"] == 4.0


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


def test_library_default_applies_a_fix_for_the_weakest_dimension(config_file):
    generator = VideoGenerator(config_path=config_file(min_feedback_for_analysis=4))
    result = generator.generate_video(prompt="Flickery briefing", measure=False)
    _rate(generator, result["generation_id"], 4, {"temporal_coherence": 2, "visual_quality": 4})
    improvements = generator.check_for_improvements()
    assert len(improvements) == 1
    proposal = improvements[0]
    assert proposal["status"] == "active" and proposal["revision"] == 2
    assert "temporal coherence is the weakest dimension of r1" in proposal["rationale"]
    assert set(proposal["changes"]) >= {"transition_seconds", "camera_speed"}
    assert proposal["evidence"]["mean"] == 2.0 and proposal["evidence"]["n"] == 4
    # the next generation uses the new revision
    again = generator.generate_video(prompt="After the fix", measure=False)
    assert again["config_revision"] == 2
    # the same feedback does not trigger a second proposal
    assert generator.check_for_improvements() == []
    assert generator.get_improvement_log()[0]["number"] == 2


def test_with_require_approval_the_proposal_waits_for_an_admin(config_file):
    generator = VideoGenerator(
        config_path=config_file(min_feedback_for_analysis=2, require_approval=True)
    )
    result = generator.generate_video(prompt="Needs approval", measure=False)
    _rate(generator, result["generation_id"], 2, {"visual_quality": 2})
    [proposal] = generator.check_for_improvements()
    assert proposal["status"] == "proposed"
    assert ConfigRevision.objects.get(status="active").number == 1
    assert AnalysisRun.objects.count() == 1


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
