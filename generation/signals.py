"""What generation announces, for apps above it (webhooks) to act on."""

from django.dispatch import Signal

# A generation failed for good: sent with ``generation_id`` and ``error``, inside the
# transaction (if any) that failed it.
generation_failed = Signal()
