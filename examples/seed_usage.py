"""The product design's usage example, as written, in-process.

Run it from the project folder after `make setup` (or `python manage.py migrate`):

    .venv/bin/python examples/seed_usage.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedbackloop.seed import VideoGenerator  # noqa: E402

# Initialize video generator with feedback loop
generator = VideoGenerator(config_path="config/default_config.yaml")

# Generate a video
result = generator.generate_video(
    prompt="A policy briefing on renewable energy initiatives",
    output_path="output/policy_briefing.mp4",
)
print(
    f"Generated {result['output_path']} (generation {result['generation_id']}, "
    f"revision r{result['config_revision']}, {result['generation_seconds']:.1f} s)"
)

# Collect automated feedback (happens automatically during generation)

# Collect human feedback
generator.feedback_integration.record_human_feedback(
    generation_id=result["generation_id"],
    ratings={"visual_quality": 4, "content_relevance": 5, "overall_satisfaction": 4},
    comments="Good visual quality, excellent content relevance",
)

# Check for improvements based on accumulated feedback
improvements = generator.check_for_improvements()
if improvements:
    print(f"Applied {len(improvements)} improvements to the generator")

# Get feedback summary
summary = generator.get_feedback_summary()
print(f"Average visual quality: {summary['avg_visual_quality']}")
