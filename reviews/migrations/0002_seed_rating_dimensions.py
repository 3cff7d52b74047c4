from django.db import migrations

DIMENSIONS = [
    ("visual_quality", "Visual quality", "Sharpness, clean frames, no noise, blur or compression artifacts.", 1),
    ("temporal_coherence", "Temporal coherence", "Smooth motion and transitions; no flicker, jumps or jitter.", 2),
    ("content_relevance", "Content relevance", "The video covers what the prompt asked for.", 3),
    ("factual_accuracy", "Factual accuracy", "On-screen text and facts are correct and legible.", 4),
    ("overall_satisfaction", "Overall satisfaction", "How good the video is overall.", 5),
]


def seed(apps, schema_editor):
    RatingDimension = apps.get_model("reviews", "RatingDimension")
    for slug, label, description, order in DIMENSIONS:
        RatingDimension.objects.update_or_create(
            slug=slug, defaults={"label": label, "description": description, "order": order}
        )


def unseed(apps, schema_editor):
    RatingDimension = apps.get_model("reviews", "RatingDimension")
    RatingDimension.objects.filter(slug__in=[d[0] for d in DIMENSIONS], ratings__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("reviews", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
