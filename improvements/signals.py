"""What the improver announces, for apps above it (webhooks, email) to act on.

Both are sent inside the improver's transaction: a receiver that records something writes it
in the same transaction (it is kept only if the step commits) and defers any I/O to commit.
"""

from django.dispatch import Signal

# A new improver proposal: sent with ``revision`` (a ConfigRevision, source improver).
proposal_created = Signal()

# An experiment arm was decided: sent with ``arm`` (an ExperimentArm, its status the outcome:
# promoted, dropped, rolled_back or aborted) and ``outcome`` (experiments.ArmOutcome: kind,
# reason, estimate and interval, counts).
experiment_decided = Signal()
