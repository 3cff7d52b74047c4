"""Run web, the Celery workers and Celery beat together; Ctrl-C stops them all.

The embedded default for one machine. In production run the three as separate services
(see the README) and as many workers as the load needs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start the web server, a Celery worker and Celery beat; stop them all on Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default=os.environ.get("RUN_ADDR", "127.0.0.1:8000"))
        parser.add_argument("--concurrency", default=os.environ.get("CELERY_CONCURRENCY", "2"))

    def handle(self, *args, **options) -> None:
        python = sys.executable
        beat_schedule = os.path.join(
            os.environ.get("FEEDBACKLOOP_VAR_DIR", "var"), "celerybeat.pid"
        )
        commands = {
            "web": [python, "manage.py", "runserver", options["addr"], "--noreload"],
            # Renders, measurements and the improver: the long work.
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "feedbackloop",
                "worker",
                "--loglevel=INFO",
                "-Q",
                ",".join(
                    settings.CELERY_QUEUES_USED[q] for q in ("generation", "metrics", "improver")
                ),
                "--concurrency",
                options["concurrency"],
                "-n",
                "embedded@%h",
            ],
            # Short housekeeping (the reconciler, feedback, webhooks) on its own small worker, so
            # it never waits behind renders: recovery must run while every render slot is busy.
            "housekeeping": [
                python,
                "-m",
                "celery",
                "-A",
                "feedbackloop",
                "worker",
                "--loglevel=INFO",
                "-Q",
                settings.CELERY_QUEUES_USED["default"],
                "--concurrency",
                "1",
                "-n",
                "housekeeping@%h",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "feedbackloop",
                "beat",
                "--loglevel=INFO",
                "--pidfile",
                beat_schedule,
            ],
        }
        if os.path.exists(beat_schedule):
            os.unlink(beat_schedule)  # a stale pid file from a killed run would stop beat
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, cmd in commands.items():
            # Own process groups: the terminal's Ctrl-C reaches us, and we stop them in order.
            # One BLAS thread: the improver's matrices are small, and threads only fight.
            env = {
                **os.environ,
                "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
            }
            children[name] = subprocess.Popen(cmd, start_new_session=True, env=env)
            self.stdout.write(f"started {name} (pid {children[name].pid})")
        self.stdout.write(
            self.style.SUCCESS(f"site on http://{options['addr']}/  — Ctrl-C stops all")
        )
        exit_code = 0
        try:
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(
                            f"{name} exited with {child.returncode}; stopping the rest"
                        )
                        exit_code = 1
                        stopping = True
                        break
                time.sleep(0.5)
        finally:
            for child in children.values():
                if child.poll() is None:
                    # The main process only: Celery stops its own pool (a warm shutdown that
                    # lets a running task finish); signalling the group would orphan it.
                    child.terminate()
            deadline = time.time() + 20
            for child in children.values():
                try:
                    child.wait(timeout=max(deadline - time.time(), 0.1))
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
            self.stdout.write("stopped web, workers and beat")
        if exit_code:
            sys.exit(exit_code)
