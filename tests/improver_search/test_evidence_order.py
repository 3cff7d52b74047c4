"""The evidence, and so the model and the plan, do not depend on the process's hash seed.

Issue notes are split into a set of words; a set of strings iterates in an order that changes
with PYTHONHASHSEED, and the order of the signals reaches the model's fit. Two runs of the
end-to-end benchmark on the same seed chose different explorers because of it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import numpy as np
from improvements.search.evidence import evidence_gather
from tests.improver_search.feedback_builder import FeedbackBuilder

fb = FeedbackBuilder(np.random.default_rng(0))
fb.add_revision(1, {"x": 0.5}, 3.0)
fb.add_revision(2, {"x": 0.7}, 3.5)
for revision in (1, 2, 1, 2):
    fb.generate(
        revision,
        issue="other",
        note="the captions flicker, blurry grain and noisy shadows",
        reviewers=[0, 1, 2],
    )
print(list(evidence_gather(fb.observations()).signals))
"""


def _signals_with_hash_seed(seed: int) -> str:
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_note_signals_come_in_the_same_order_whatever_the_hash_seed():
    orders = {_signals_with_hash_seed(seed) for seed in range(6)}
    assert len(orders) == 1, orders
    signals = ast.literal_eval(orders.pop())
    assert signals[0] == "other"
    words = [s for s in signals if s.startswith("other:")]
    assert len(words) >= 4
    assert words == sorted(words)
