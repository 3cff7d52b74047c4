"""Motion cadence: scene cuts, held (repeated) frames, freezes, skipped and out-of-order frames.

The input is one number per consecutive frame pair: the mean absolute luma difference with the
global brightness change taken out (`motion_mad`), so flicker does not look like motion. In
smooth video it changes slowly from pair to pair. The defects a viewer sees as judder show up as
patterns in that series:

* a **held** frame (a repeat, a freeze, a frame-rate reduction, an uneven cadence) is a *still*
  pair — next to no change while the neighbouring pairs move — and is usually followed by a
  catch-up jump;
* a **skipped** frame is a lone spike (or dip) against the local motion level, unless the
  spike's change sits in a few regions that changed abruptly (a caption or graphic swapped: a
  partial cut, left out like a cut);
* an **out-of-order** (swapped, shuffled) or flashed frame breaks the triangle of distances:
  in smooth motion frames t − 1 and t + 1 differ more than either differs from frame t (two
  steps against one), so when `skip` (the motion_mad of frames t − 1 and t + 1) falls below
  REVERSAL_RATIO × the larger of the two single steps, frame t is out of place.

A **cut** is an isolated spike that does not end a run of held frames: a jump that follows held
frames is the catch-up of a freeze or of a slideshow, however large, so periodic jumps are never
excused as cuts. Long still stretches (over MAX_HOLD_S) are deliberate stills such as a title
card, not held frames; so are still stretches at the very start or end of the video or right
after a cut.

The series is a few numbers per frame, kept until the end of the pass (≈ 150 bytes a frame with
Python's float objects: under 3 MB for ten minutes at 30 fps); decoded frames are never kept.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

# A pair is still when it changes less than STILL_ABS code values (at the temporal level), or
# less than STILL_REL × the motion of its neighbours (grainy or noisy content never reaches the
# absolute floor, but a repeated frame still drops far below its neighbours).
STILL_ABS = 0.12
STILL_REL = 0.25
WINDOW = 4  # neighbours each side that set a pair's local motion level
# Spikes and dips against the local level: skipped, swapped or shuffled frames.
GLITCH_RATIO = 1.8
GLITCH_SLACK = 0.25
# A held frame is only as visible as the motion it interrupts: its weight rises from 0 at a
# local motion level of MOTION_MIN to 1 at MOTION_FULL (code values of motion_mad). Below
# MOTION_MIN (slow, smooth content) there is no cadence to judge, and spikes/dips are not judged.
MOTION_MIN = 0.4
MOTION_FULL = 1.2
REVERSAL_RATIO = 0.8
# A cut is a spike at least CUT_RATIO × the local level and CUT_MIN code values.
CUT_RATIO = 3.0
CUT_MIN = 3.0
# Still stretches longer than this are deliberate stills, not held frames.
MAX_HOLD_S = 1.5
FREEZE_MIN = 3  # a held run of at least this many frames is reported as a freeze


def _side_medians(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Median of the non-NaN values in the `window` positions before, and after, each position
    (NaN where there are none)."""
    n = values.size
    padded = np.concatenate([np.full(window, np.nan), values, np.full(window, np.nan)])
    view = np.lib.stride_tricks.sliding_window_view(padded, 2 * window + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN, as wanted
        before = np.nanmedian(view[:n, :window], axis=1)
        after = np.nanmedian(view[:n, window + 1 :], axis=1)
    return before, after


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of every run of True in a boolean array."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[0], mask.view(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


@dataclass(frozen=True)
class Cadence:
    """What the cadence analysis found; per-pair arrays are indexed by pair (t − 1, t)."""

    cut: np.ndarray  # bool per pair
    held: float  # repeated frames inside motion, each weighted by the motion it interrupts
    freezes: int  # held runs of at least FREEZE_MIN frames
    glitches: int  # skipped / out-of-order frames (spikes and dips) outside held runs
    judged: int  # pairs with motion to judge a cadence by

    @property
    def cuts(self) -> int:
        return int(self.cut.sum())

    @property
    def jitter(self) -> float | None:
        """Share of judged display slots that break the cadence (held + glitched frames)."""
        if self.cut.size == 0:
            return None
        if self.judged == 0:
            return 0.0
        return min(1.0, (self.held + self.glitches) / self.judged)


def analyse_cadence(
    motion_mad: np.ndarray,
    fps: float | None,
    skip: np.ndarray | None = None,
    local: np.ndarray | None = None,
) -> Cadence:
    """Classify every consecutive pair (see the module docstring); `fps` sets MAX_HOLD_S.

    `skip[i]`, when given, is the motion_mad between the first frame of pair i − 1 and the
    second of pair i (NaN where unknown). `local[i]` marks a pair whose change is local new
    content (temporal.local_change: a caption or graphic swapped): as a spike it is a partial
    cut, never a skipped frame. NaN in `motion_mad` marks a break (no pair), treated as a cut.
    """
    m = np.asarray(motion_mad, dtype=np.float64)
    n = m.size
    if n == 0:
        return Cadence(np.zeros(0, bool), 0, 0, 0, 0)
    breaks = np.isnan(m)
    m = np.where(breaks, 0.0, m)
    max_hold = max(2, round(MAX_HOLD_S * (fps or 25.0)))

    # Each pair is compared with the motion on BOTH sides: a change of motion regime (a graphic
    # that starts moving, a transition) steps the level up or down without being a defect,
    # whereas a held frame is still against both sides and a skipped frame jumps above both.
    still = (m < STILL_ABS) & ~breaks
    before, after = _side_medians(np.where(still, np.nan, m), WINDOW)
    with np.errstate(invalid="ignore"):
        still |= m < STILL_REL * np.fmin(before, after)
    before, after = _side_medians(np.where(still, np.nan, m), WINDOW)
    low = np.nan_to_num(np.fmin(before, after), nan=0.0)  # the calmer side
    high = np.nan_to_num(np.fmax(before, after), nan=0.0)  # the busier side
    spike = ~still & ~breaks & (m > GLITCH_RATIO * high + GLITCH_SLACK)
    big = spike & (m >= CUT_MIN) & (m >= CUT_RATIO * high)
    partial_cut = spike & (np.asarray(local, dtype=bool) if local is not None else False)

    held_pair = np.zeros(n, bool)
    held_weight = 0.0
    catch_up = np.zeros(n, bool)
    static = np.zeros(n, bool)  # deliberate stills: not judged
    freezes = 0
    for a, b in _runs(still):
        length = b - a + 1
        after_cut = a > 0 and big[a - 1] and not (a > 1 and still[a - 2])
        if a == 0 or b == n - 1 or length > max_hold or after_cut:
            static[a : b + 1] = True
            continue
        catch_up[b + 1] = spike[b + 1]
        # The motion the run interrupts: the calmer of the two sides (moving pairs only, the
        # catch-up left out); in a slideshow there are none, and the catch-up is the motion.
        left = m[max(0, a - WINDOW) : a][~still[max(0, a - WINDOW) : a]]
        right = m[b + 2 : b + 2 + WINDOW][~still[b + 2 : b + 2 + WINDOW]]
        sides = [float(np.median(x)) for x in (left, right) if x.size]
        context = min(sides) if sides else float(m[b + 1])
        weight = min(1.0, max(0.0, (context - MOTION_MIN) / (MOTION_FULL - MOTION_MIN)))
        if weight <= 0.0:
            static[a : b + 1] = True
            continue
        held_pair[a : b + 1] = True
        held_weight += weight * length
        freezes += length >= FREEZE_MIN

    # A cut: a big spike, or a spike of local new content, that is not a catch-up, is not
    # followed by held frames (the first jump of a slideshow whose first hold starts the video)
    # and has no other spike within ±WINDOW.
    cut = (big | partial_cut) & ~catch_up
    cut[:-1] &= ~held_pair[1:]
    for i in np.flatnonzero(cut):
        lo, hi = max(0, i - WINDOW), min(n, i + WINDOW + 1)
        if spike[lo:hi].sum() > 1:
            cut[i] = False
    cut |= breaks

    moving = ~still & ~cut
    dip = moving & (low >= MOTION_MIN) & (m < low / GLITCH_RATIO - GLITCH_SLACK)
    # Out of order: pair i ends at frame i + 1; compare frames i and i + 2 (skip[i + 1]) with
    # the two single steps around frame i + 1 (pairs i and i + 1).
    reversed_ = np.zeros(n, bool)
    if skip is not None and n >= 2:
        k = np.asarray(skip, dtype=np.float64)[1:]
        step = np.fmax(m[:-1], m[1:])
        with np.errstate(invalid="ignore"):
            out = (k < REVERSAL_RATIO * step) & (step >= MOTION_MIN)
        out &= moving[:-1] & moving[1:]
        reversed_[:-1] = out
    judged = held_pair | catch_up | (moving & (low >= MOTION_MIN))
    judged &= ~static & ~cut
    glitch = ((spike & moving & ~catch_up) | dip | reversed_) & judged & ~held_pair
    return Cadence(
        cut=cut,
        held=held_weight,
        freezes=int(freezes),
        glitches=int(glitch.sum()),
        judged=int(judged.sum()),
    )
