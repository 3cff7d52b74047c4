"""Server-side validation of the reviewer UI's forms.

The forms check what a person can get wrong and put the message next to the field; the
services check the same rules again and stay the authority (their InvalidInput is mapped back
onto the form by the view).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.forms import formset_factory

from reviews.models import Comparison, IssueReport, RatingDimension
from reviews.services import IssueInput

RATING_CHOICES = [(str(v), str(v)) for v in range(1, 6)]
MAX_ISSUES = 50
COMMENTS_MAX_LENGTH = 10_000


def rating_field_name(dimension: RatingDimension) -> str:
    return f"rating_{dimension.slug}"


class ReviewForm(forms.Form):
    """Ratings for every active dimension, a comment and the time the reviewer spent."""

    comments = forms.CharField(required=False, max_length=COMMENTS_MAX_LENGTH)
    seconds_spent = forms.FloatField(required=False, min_value=0, max_value=7 * 24 * 3600)

    def __init__(self, *args: Any, dimensions: Iterable[RatingDimension], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dimensions = list(dimensions)
        for dimension in self.dimensions:
            self.fields[rating_field_name(dimension)] = forms.TypedChoiceField(
                label=dimension.label,
                help_text=dimension.description,
                choices=RATING_CHOICES,
                coerce=int,
                widget=forms.RadioSelect,
                error_messages={
                    "required": f"Rate {dimension.label.lower()} from 1 to 5.",
                    "invalid_choice": "A rating is a whole number from 1 to 5.",
                },
            )

    def rating_fields(self) -> list[tuple[RatingDimension, forms.BoundField]]:
        return [(d, self[rating_field_name(d)]) for d in self.dimensions]

    def ratings(self) -> dict[str, int]:
        return {d.slug: self.cleaned_data[rating_field_name(d)] for d in self.dimensions}


class IssueForm(forms.Form):
    """One timestamped issue; the video's duration bounds its range."""

    category = forms.ChoiceField(
        choices=IssueReport.Category.choices,
        error_messages={"invalid_choice": "Choose a category from the list."},
    )
    severity = forms.TypedChoiceField(
        choices=[(str(v), label) for v, label in IssueReport.Severity.choices],
        coerce=int,
        initial=str(IssueReport.Severity.MINOR),
    )
    start_s = forms.FloatField(label="Start (s)", min_value=0)
    end_s = forms.FloatField(label="End (s)", min_value=0)
    note = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args: Any, duration_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.duration_s = duration_s

    def clean_start_s(self) -> float:
        return self._in_video("start_s")

    def clean_end_s(self) -> float:
        return self._in_video("end_s")

    def _in_video(self, name: str) -> float:
        value = self.cleaned_data[name]
        # The player reports times with more precision than a frame; allow a millisecond.
        if self.duration_s is not None and value > self.duration_s + 1e-3:
            raise forms.ValidationError(
                f"The video ends at {self.duration_s:.2f} s; {value:.2f} s is past its end."
            )
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("start_s"), cleaned.get("end_s")
        if start is not None and end is not None and end < start:
            self.add_error("end_s", f"The end ({end:.2f} s) is before the start ({start:.2f} s).")
        return cleaned

    def issue_input(self) -> IssueInput:
        data = self.cleaned_data
        return IssueInput(
            category=data["category"],
            severity=data["severity"],
            start_s=data["start_s"],
            end_s=data["end_s"],
            note=data.get("note") or "",
        )


IssueFormSet = formset_factory(
    IssueForm, extra=0, max_num=MAX_ISSUES, validate_max=True, absolute_max=MAX_ISSUES
)


def issue_formset(data: Any = None, *, duration_s: float | None) -> forms.BaseFormSet:
    return IssueFormSet(data, prefix="issues", form_kwargs={"duration_s": duration_s})


WINNER_CHOICES = [
    (Comparison.Winner.LEFT.value, "Left"),
    (Comparison.Winner.TIE.value, "Tie"),
    (Comparison.Winner.RIGHT.value, "Right"),
]


class ComparisonForm(forms.Form):
    """Left, right or tie overall, and optionally per dimension."""

    winner = forms.ChoiceField(
        label="Which video is better overall?",
        choices=WINNER_CHOICES,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose left, right or tie."},
    )
    seconds_spent = forms.FloatField(required=False, min_value=0, max_value=7 * 24 * 3600)

    def __init__(self, *args: Any, dimensions: Iterable[RatingDimension], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dimensions = list(dimensions)
        for dimension in self.dimensions:
            self.fields[f"winner_{dimension.slug}"] = forms.ChoiceField(
                label=dimension.label,
                help_text=dimension.description,
                required=False,
                choices=[("", "No opinion"), *WINNER_CHOICES],
                widget=forms.RadioSelect,
            )

    def dimension_fields(self) -> list[tuple[RatingDimension, forms.BoundField]]:
        return [(d, self[f"winner_{d.slug}"]) for d in self.dimensions]

    def dimension_winners(self) -> dict[str, str]:
        return {
            d.slug: self.cleaned_data[f"winner_{d.slug}"]
            for d in self.dimensions
            if self.cleaned_data.get(f"winner_{d.slug}")
        }
