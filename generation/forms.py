"""Forms of the staff generations page."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms

from feedbackloop.errors import DomainError
from generation.models import Generation
from generation.services.requests import validate_prompt
from pipelines.models import Pipeline

BACKEND_CHOICES = [
    ("builtin", "built-in renderer (on this site's workers)"),
    ("remote", "remote: a job for API workers"),
]


class GenerationFilterForm(forms.Form):
    """Search and filters of the list; every field is optional and unknown values are errors."""

    q = forms.CharField(required=False, max_length=200, label="Search prompts")
    pipeline = forms.ChoiceField(required=False, choices=[("", "any pipeline")])
    status = forms.ChoiceField(
        required=False, choices=[("", "any status"), *Generation.Status.choices]
    )
    backend = forms.ChoiceField(required=False, choices=[("", "any backend")])
    worker = forms.ChoiceField(required=False, choices=[("", "any worker")])

    def __init__(self, *args: Any, backends: list[str], workers: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["backend"].choices = [("", "any backend"), *((b, b) for b in backends)]
        self.fields["worker"].choices = [("", "any worker"), *((w, w) for w in workers)]
        self.fields["pipeline"].choices = [
            ("", "any pipeline"),
            *Pipeline.objects.order_by("slug").values_list("slug", "name"),
        ]


class GenerationCreateForm(forms.Form):
    """Queue one generation of a pipeline with its active configuration."""

    pipeline = forms.ModelChoiceField(
        queryset=Pipeline.objects.order_by("slug"), to_field_name="slug", empty_label=None
    )
    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    backend = forms.ChoiceField(choices=BACKEND_CHOICES, initial="builtin")
    # One key per rendering of the form: a double submit queues one generation, not two.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=128)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {}).setdefault("idempotency_key", f"web-{uuid.uuid4()}")
        super().__init__(*args, **kwargs)

    def clean_prompt(self) -> str:
        try:
            return validate_prompt(self.cleaned_data.get("prompt"))
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc
