"""The web process's WSGI application (gunicorn feedbackloop.wsgi, runserver).

Garbage collection is tuned for a web worker once the application is loaded: the ~120,000
objects that Django, DRF and the apps leave behind are frozen (moved out of every future
collection: they live as long as the process), and the youngest generation is collected after
50,000 new container objects instead of 700. Request garbage is almost all freed by reference
counting; at the default thresholds the collector still ran about every third review
submission and cost ~0.4 ms of its ~2.5 ms CPU, ~0.04 ms with these
(benchmarks/ratings_load.py; measured in-process).
"""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedbackloop.settings")
application = get_wsgi_application()

WEB_GC_THRESHOLDS = (50_000, 20, 20)
gc.freeze()
gc.set_threshold(*WEB_GC_THRESHOLDS)
