from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from generation.models import Generation
from pipelines.builtin.declaration import DECLARATION, DEFAULT_PARAMS
from pipelines.declarations import declaration_digest
from pipelines.models import ConfigRevision, Pipeline, SchemaVersion

# One 1-5 rating for each of the five global rating dimensions (a complete review).
FIVE = {
    "visual_quality": 4,
    "temporal_coherence": 3,
    "content_relevance": 5,
    "factual_accuracy": 2,
    "overall_satisfaction": 4,
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pass-12345")


class PipelineFactory(factory.django.DjangoModelFactory):
    """The built-in pipeline (by default) with its declared space as schema v1."""

    class Meta:
        model = Pipeline
        django_get_or_create = ("slug",)
        skip_postgeneration_save = True

    slug = "builtin"
    name = "Built-in renderer"
    renderer = "pipelines.builtin.renderer:render_video"

    @factory.post_generation
    def schema(self, create: bool, extracted: dict | None, **kwargs: object) -> None:
        if create and not self.versions.exists():
            declaration = extracted or DECLARATION
            SchemaVersion.objects.create(
                pipeline=self,
                number=1,
                parameters=declaration,
                digest=declaration_digest(declaration),
            )


class RevisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConfigRevision

    pipeline = factory.SubFactory(PipelineFactory)
    schema_version = factory.LazyAttribute(lambda o: o.pipeline.versions.order_by("-number")[0])
    number = factory.Sequence(lambda n: n + 100)
    params = factory.LazyFunction(lambda: dict(DEFAULT_PARAMS))
    status = ConfigRevision.Status.PROPOSED


class FinishedGenerationFactory(factory.django.DjangoModelFactory):
    """A succeeded generation row without rendering (for feedback tests that need no video)."""

    class Meta:
        model = Generation

    prompt = factory.Sequence(lambda n: f"Briefing number {n}")
    revision = factory.SubFactory(RevisionFactory)
    params = factory.LazyAttribute(lambda o: dict(o.revision.params))
    status = Generation.Status.SUCCEEDED
    video = factory.Sequence(lambda n: f"generations/fake-{n}.mp4")
    duration_s = 10.0
