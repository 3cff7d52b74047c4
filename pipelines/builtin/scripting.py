"""Prompt -> on-screen script for the built-in procedural renderer.

The script is the text the renderer *intends* to show, scene by scene, with timings. It is kept
apart from the drawing code so text fidelity can later be measured (OCR of the video against
``Script.lines()``) without rendering anything.

Everything here is deterministic and ASCII-only: the renderer draws with OpenCV's Hershey fonts,
which have glyphs for printable ASCII only, and the OCR comparison is simplest on plain ASCII.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from .declaration import DEFAULT_PARAMS

MAX_LINE_CHARS = 40
MAX_TITLE_CHARS = 40
MIN_POINTS = 3
MAX_POINTS = 5


def _word_set(text: str) -> frozenset[str]:
    # Word lists read (and diff) better as prose than as a long list of string literals.
    return frozenset(text.split())


# Leading words that describe the request rather than the topic ("make a short video about ...").
_FILLER_PREFIX = _word_set(
    """please can could would you make create generate produce render write build give show me
    us a an the short quick brief simple small tiny little new video videos briefing briefings
    explainer clip overview summary presentation slideshow deck animation animated about on of
    regarding explaining explain covering cover describing describe introducing introduce that
    which for how"""
)
_DURATION_WORD = re.compile(r"^\d+(-|\s)?(s|sec|secs|second|seconds|min|mins|minute|minutes)$")

_STOPWORDS = _word_set(
    """a an the and or but nor so yet of to in on at by for with from into onto over under about
    as is are was were be been being am do does did doing have has had having it its it's this
    that these those there here their they them then than too very can could should would will
    shall may might must not no yes i me my we our us you your he she his her him what which who
    whom whose when where why how all any each every some such own same other more most few both
    just also only if while because until up down out off again further once please make create
    generate produce render video videos briefing clip short quick brief explainer explain
    explaining covering cover describe describing overview summary presentation"""
)

_SMALL_TITLE_WORDS = _word_set("a an the and or but nor of to in on at by for with from as vs")

# Point templates per slot; the seed picks a variant so phrasing is a layout choice like colours.
_SLOT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "goal": ("Goal: understand {x}", "Goal: explain {x}", "Aim: learn about {x}"),
    "fact": ("Key fact: {x} matters", "Key fact: focus on {x}", "Fact: {x} is central"),
    "why": ("Why it matters: {x}", "Impact: {x}", "Why care: {x}"),
    "how": ("How it works: {x}", "In practice: {x}", "Look closer: {x}"),
    "next": ("Next step: apply {x}", "Next step: review {x}", "Next: plan for {x}"),
}
_SLOTS_BY_COUNT = {
    3: ("goal", "fact", "next"),
    4: ("goal", "fact", "why", "next"),
    5: ("goal", "fact", "why", "how", "next"),
}


@dataclass(frozen=True)
class Scene:
    text: str
    kind: str  # "title" | "point"
    start_s: float
    end_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "kind": self.kind, "start_s": self.start_s, "end_s": self.end_s}


@dataclass(frozen=True)
class Script:
    title: str
    scenes: list[Scene]

    @property
    def duration_s(self) -> float:
        return self.scenes[-1].end_s if self.scenes else 0.0

    def lines(self) -> list[str]:
        """The on-screen text of each scene, in order (a scene may wrap it over several rows)."""
        return [scene.text for scene in self.scenes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "duration_s": self.duration_s,
            "scenes": [scene.to_dict() for scene in self.scenes],
        }


def to_ascii(text: str) -> str:
    """Fold text to printable ASCII: accents are stripped, other characters become spaces."""
    folded = unicodedata.normalize("NFKD", text)
    folded = folded.replace("\u2019", "'").replace("\u2018", "'")
    folded = folded.replace("\u201c", '"').replace("\u201d", '"')
    folded = folded.replace("\u2013", "-").replace("\u2014", "-")
    chars = []
    for ch in folded:
        if unicodedata.combining(ch):
            continue
        chars.append(ch if 32 <= ord(ch) < 127 else " ")
    return re.sub(r"\s+", " ", "".join(chars)).strip()


def _words(text: str) -> list[str]:
    # Keep internal hyphens, apostrophes, dots and slashes ("x-ray", "don't", "3.5", "TCP/IP")
    # and a trailing percent sign ("12%"), but not edge punctuation.
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9'./\-]*%?", text)
    return [w.strip("'\"./-") for w in words]


def _strip_request_words(words: list[str]) -> list[str]:
    i = 0
    while i < len(words) and (
        words[i].lower() in _FILLER_PREFIX or _DURATION_WORD.match(words[i].lower())
    ):
        i += 1
    return words[i:]


def _title_case(words: list[str]) -> str:
    out = []
    for i, word in enumerate(words):
        if any(c.isupper() for c in word):
            out.append(word)  # keep acronyms and names as written ("GPU", "iPhone")
        elif i > 0 and word.lower() in _SMALL_TITLE_WORDS:
            out.append(word.lower())
        else:
            out.append(word[:1].upper() + word[1:])
    return " ".join(out)


def _fit_words(words: list[str], limit: int) -> str:
    """Join as many leading words as fit in ``limit`` chars; cut a lone overlong word."""
    text = ""
    for word in words:
        candidate = f"{text} {word}".strip()
        if len(candidate) > limit:
            break
        text = candidate
    if not text and words:
        text = words[0][:limit]
    return text


def _make_title(clean: str) -> str:
    first_clause = re.split(r"[.;:!?]|,\s| - ", clean, maxsplit=1)[0]
    words = _strip_request_words(_words(first_clause))
    if not words:  # the whole first clause was request wording; fall back to the whole prompt
        words = _strip_request_words(_words(clean))
    # Trailing small words read badly in a title ("Solar Power for").
    words = words[:8]
    while len(words) > 1 and words[-1].lower() in _STOPWORDS:
        words.pop()
    title = _fit_words(words, MAX_TITLE_CHARS)
    while " " in title and title.rsplit(" ", 1)[1].lower() in _STOPWORDS:
        title = title.rsplit(" ", 1)[0]
    return _title_case(title.split()) if title else "Briefing"


def _key_phrases(clean: str) -> list[str]:
    """Runs of consecutive content words (noun-phrase-ish), at most 3 words, deduplicated."""
    phrases: list[str] = []
    seen: set[str] = set()
    for clause in re.split(r"[.;:!?,()]| - ", clean):
        run: list[str] = []
        for word in [*_words(clause), ""]:
            is_content = bool(word) and word.lower() not in _STOPWORDS and len(word) > 1
            if is_content and not _DURATION_WORD.match(word.lower()):
                run.append(word if any(c.isupper() for c in word[1:]) else word.lower())
                if len(run) < 3:
                    continue
            if run:
                key = " ".join(run).lower()
                if key not in seen:
                    seen.add(key)
                    phrases.append(" ".join(run))
                run = []
    return phrases


def _fill(template: str, phrase: str) -> str:
    room = MAX_LINE_CHARS - len(template.replace("{x}", ""))
    return template.replace("{x}", _fit_words(phrase.split(), room))


def build_script(
    prompt: str,
    seed: int = 0,
    *,
    seconds_per_scene: float = DEFAULT_PARAMS["seconds_per_scene"],
) -> Script:
    """Derive a title card plus 3-5 key-point scenes from the prompt.

    Same prompt and seed give the same script. The number of points follows the prompt (one per
    distinct key phrase, clamped to 3..5); the seed only picks template wording. Scene ``i`` runs
    from ``i * seconds_per_scene`` to ``(i + 1) * seconds_per_scene``; transitions straddle those
    boundaries, so the middle half of every scene always shows its text cleanly.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    if seconds_per_scene <= 0:
        raise ValueError("seconds_per_scene must be positive")
    clean = to_ascii(prompt)
    title = _make_title(clean)

    phrases = _key_phrases(clean) or [title.lower() if title != "Briefing" else "the topic"]
    count = min(MAX_POINTS, max(MIN_POINTS, len(phrases)))
    points: list[str] = []
    for slot_index, slot in enumerate(_SLOTS_BY_COUNT[count]):
        variants = _SLOT_TEMPLATES[slot]
        # Base-3 digits of the seed: seed 0 gives the plain wording, each seed a distinct mix.
        template = variants[(seed // 3**slot_index) % len(variants)]
        points.append(_fill(template, phrases[slot_index % len(phrases)]))

    texts = [("title", title)] + [("point", text) for text in points]
    scenes = [
        Scene(
            text=text,
            kind=kind,
            start_s=round(i * seconds_per_scene, 6),
            end_s=round((i + 1) * seconds_per_scene, 6),
        )
        for i, (kind, text) in enumerate(texts)
    ]
    return Script(title=title, scenes=scenes)
