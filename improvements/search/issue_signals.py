"""Issue reports as search hints: which parameters might fix a reported problem, and which way.

Three sources, all generic (no parameter is known by name):

- a category or a rating dimension named in a parameter's `x-affects` (`{"flicker": "+"}`: more
  of the parameter, more flicker, so fewer flicker reports means moving it down);
- a free-text note (`other`): its words are matched against parameter names and descriptions
  ("text too small" matches a parameter described as "on-screen text size multiplier"), and
  "too much / too high / too fast / ..." or "too little / too low / too slow / ..." give the
  direction when present;
- every frequent note word also becomes a signal of its own (`other:<word>`), which the
  surrogate models like a category, so a note that names no parameter still teaches the model
  where that complaint appears.

These hints only generate candidates; the surrogate model scores them like any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from improvements.search.space import ParameterSpace

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "this",
        "to",
        "too",
        "very",
        "was",
        "were",
        "with",
        "seems",
        "seem",
        "looks",
        "look",
        "feels",
        "feel",
        "somehow",
        "much",
        "many",
        "little",
        "lot",
        "bit",
        "quite",
        "really",
        "way",
        "not",
        "no",
        "all",
        "some",
        "more",
        "less",
        "than",
        "just",
        "also",
        "there",
        "their",
        "then",
        "them",
        "wrong",
        "off",
        "bad",
        "weird",
        "strange",
    ]
)
_TOO_MUCH = frozenset(
    [
        "much",
        "high",
        "many",
        "fast",
        "big",
        "large",
        "long",
        "strong",
        "bright",
        "loud",
        "heavy",
        "quick",
        "busy",
        "intense",
    ]
)
_TOO_LITTLE = frozenset(
    ["little", "low", "few", "slow", "small", "short", "weak", "dark", "quiet", "tiny", "faint"]
)
_WORD = re.compile(r"[a-z][a-z0-9]+")


def note_tokens(note: str) -> set[str]:
    """Content words of a note (lowercase, no stopwords, at least 3 letters)."""
    return {w for w in _WORD.findall(note.lower()) if len(w) >= 3 and w not in _STOPWORDS}


def note_direction(note: str) -> int:
    """+1 when the note asks for more ("too small"), -1 for less ("too fast"), 0 unknown."""
    words = _WORD.findall(note.lower())
    for i, w in enumerate(words[:-1]):
        if w in ("too", "overly", "very"):
            nxt = words[i + 1]
            if nxt in _TOO_MUCH:
                return -1
            if nxt in _TOO_LITTLE:
                return +1
    return 0


def _stem(word: str) -> str:
    return word[:5] if len(word) > 5 else word


def param_words(space: ParameterSpace, name: str) -> set[str]:
    p = space.by_name[name]
    text = f"{p.name.replace('_', ' ')} {p.description}"
    return {_stem(w) for w in note_tokens(text)}


@dataclass(frozen=True)
class Move:
    """Move `param` in `direction` (+1 up, -1 down, 0 either) to address `signal`."""

    param: str
    direction: int
    signal: str
    source: str  # "x-affects" or "note"


def moves_for_signal(
    space: ParameterSpace, signal: str, *, bad: bool, notes: Iterable[str] = ()
) -> list[Move]:
    """Parameter moves that should reduce a bad signal (bad=True) or raise a good one.

    `signal` is an issue category, a rating dimension, or `other:<word>`; `notes` are the
    free-text notes behind an `other:<word>` signal (for the direction).
    """
    moves: list[Move] = []
    if signal.startswith("other:"):
        word = _stem(signal.split(":", 1)[1])
        votes = sum(note_direction(n) for n in notes)
        direction = (votes > 0) - (votes < 0)
        for p in space.tunable:
            if word in param_words(space, p.name):
                moves.append(Move(p.name, direction, signal, "note"))
        return moves
    for p in space.tunable:
        sign = p.affects.get(signal)
        if sign is None:
            continue
        moves.append(Move(p.name, -sign if bad else sign, signal, "x-affects"))
    return moves
