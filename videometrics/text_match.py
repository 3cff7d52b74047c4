"""How much of the intended on-screen text was shown: order- and layout-tolerant matching.

A caption may be wrapped differently, shown together with the next one, split over two panels
or read by the OCR in another order than it was written. None of that is an error: the text
was there. So each *word* of the intended text is looked for on its own, anywhere in what was
read during its time window (every sampled frame of it, all lines), and costs the fewest
character edits that turn it into some stretch of that text — a semi-global (substring)
Levenshtein alignment. Missing, misspelled or garbled words still cost their edits; extra text
on screen costs nothing (a second caption shown early is not this caption's fault).

Text is normalised by Unicode NFKC and case folding; whitespace is removed from what was read,
because the recogniser often drops the spaces between words of small text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import numpy as np


def normalize_text(text: str) -> str:
    """NFKC, casefold, and drop all whitespace."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def words(text: str) -> list[str]:
    """The normalised words of `text` (NFKC, casefold), split at whitespace."""
    return [w for w in unicodedata.normalize("NFKC", text).casefold().split() if w]


def substring_distance(word: str, text: str) -> int:
    """Fewest edits (insert, delete, substitute) turning `word` into some substring of `text`.

    Row-by-row dynamic programming over `text`, vectorised with numpy: free start and end in
    `text`; the insertion chain along a row is a running minimum of (value − index) + index.
    """
    m, n = len(word), len(text)
    if m == 0:
        return 0
    if n == 0:
        return m
    t = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(n + 1, dtype=np.int64)
    prev = np.zeros(n + 1, dtype=np.int64)  # row 0: the match may start anywhere
    for i, ch in enumerate(word, start=1):
        cost = (t != ord(ch)).astype(np.int64)
        best = np.empty(n + 1, dtype=np.int64)
        best[0] = i
        best[1:] = np.minimum(prev[1:] + 1, prev[:-1] + cost)
        prev = np.minimum.accumulate(best - idx) + idx
    return int(prev.min())


def missing_characters(reference: str, shown: Iterable[str]) -> tuple[int, int]:
    """(character edits needed to find every word of `reference` in `shown`, reference length).

    `shown` holds what was read on the frames of the reference's time window; each word is
    matched against all of it, in any order. Reference length counts non-space characters.
    """
    ref_words = words(reference)
    total = sum(len(w) for w in ref_words)
    haystack = "\x00".join(normalize_text(s) for s in shown)  # \x00 never matches a letter
    return sum(substring_distance(w, haystack) for w in ref_words), total
