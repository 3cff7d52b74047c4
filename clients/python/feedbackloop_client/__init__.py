"""The Python client of a feedbackloop site's REST API, for remote workers and scripts.

A remote generator worker (token from ``manage.py create_worker_token NAME --pipelines SLUG``)::

    from feedbackloop_client import FeedbackLoopClient, LeaseKeeper

    api = FeedbackLoopClient("https://feedbackloop.example.com", token="flw_…")
    api.register_pipeline("my-model", "My model", parameters={"type": "object", ...})
    job = api.claim(pipelines=["my-model"], lease_seconds=300)   # None when none waits
    if job is not None:
        with LeaseKeeper(api, job, 300) as lease:                 # heartbeats from a thread
            ...                                                   # generate with job.params
            lease.report(0.5)
        api.complete(job.id, job.lease_id, "out.mp4", poster_path="out.jpg")

It needs ``requests`` only: no Django, Celery or the site's code.
"""

__version__ = "0.2.0"

from feedbackloop_client.client import FeedbackLoopClient, Job  # noqa: E402
from feedbackloop_client.errors import ApiError, ApiUnavailable, LeaseLost  # noqa: E402
from feedbackloop_client.lease import LeaseKeeper  # noqa: E402

__all__ = [
    "ApiError",
    "ApiUnavailable",
    "FeedbackLoopClient",
    "Job",
    "LeaseKeeper",
    "LeaseLost",
    "__version__",
]
