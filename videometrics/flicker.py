"""Visible brightness flicker from the per-frame mean luma, with a perceptual dead zone.

A frame flickers when its mean luma overshoots the range spanned by its neighbours `k` frames
before and after (k = 1 … MAX_LAG): a frame brighter or darker than both. Monotone changes —
fades, exposure ramps, the start and end of a transition — never overshoot, so they are not
flicker, while a frame-to-frame exposure jitter (k = 1) and a breathing of up to ~4 Hz at 24 fps
(k up to 3) are caught. Each frame counts only the part of its overshoot above THRESHOLD code
values: a 1-level change of the mean is invisible (a Weber fraction under ~1 % at mid-grey), and
it is also the size of the codec's own brightness wobble. Windows that span a scene cut are
skipped. References: the temporal contrast sensitivity of D. H. Kelly, "Visual responses to
time-dependent stimuli", JOSA 51(4), 1961; global flicker as in J. Delon, "Movie and video
scale-time equalization", IEEE TIP 15(1), 2006.
"""

from __future__ import annotations

import numpy as np

MAX_LAG = 3
THRESHOLD = 1.5  # code values of overshoot that stay invisible


def flicker_overshoot(mean_luma: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Per-frame overshoot in code values (NaN where no window fits); `cut` is per pair."""
    mu = np.asarray(mean_luma, dtype=np.float64)
    n = mu.size
    out = np.full(n, np.nan)
    if n < 3:
        return out
    # cuts_before[i] = number of cut pairs among pairs 0..i-1 (pair j joins frames j and j+1).
    cuts_before = np.concatenate([[0], np.cumsum(np.asarray(cut, dtype=np.int64))])
    for k in range(1, MAX_LAG + 1):
        if n <= 2 * k:
            break
        t = np.arange(k, n - k)
        prev, cur, nxt = mu[t - k], mu[t], mu[t + k]
        over = np.maximum(np.maximum(np.minimum(prev, nxt) - cur, cur - np.maximum(prev, nxt)), 0)
        clean = cuts_before[t + k] - cuts_before[t - k] == 0  # pairs t-k … t+k-1 hold no cut
        over = np.where(clean, over, np.nan)
        current = out[t]
        out[t] = np.where(np.isnan(current), over, np.fmax(current, over))
    return out


def visible_flicker(mean_luma: np.ndarray, cut: np.ndarray) -> float | None:
    """Mean over frames of max(0, overshoot − THRESHOLD), code values; None if too short."""
    over = flicker_overshoot(mean_luma, cut)
    over = over[~np.isnan(over)]
    if over.size == 0:
        return None
    return float(np.mean(np.maximum(over - THRESHOLD, 0.0)))
