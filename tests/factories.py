from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from generation.models import ConfigRevision, Generation
from generation.params import DEFAULT_PARAMS


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pass-12345")


class RevisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConfigRevision

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
