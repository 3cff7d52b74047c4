"""Export 1,000,000 ratings and print the time and the exporting process's peak RSS.

Builds a PostgreSQL database of its own (default feedbackloop_export_bench on 127.0.0.1:5432)
with 2,000 generations, 100 reviewers and one review of 5 ratings per (reviewer, generation):
200,000 reviews, 1,000,000 ratings, bulk-loaded with COPY. Then runs `manage.py export_feedback`
as a child process for each case and samples the child's RSS (psutil, every 20 ms) to its peak.
The cases include a 10% date slice of the same data: with constant-memory exports its peak RSS
is about the same as the full export's.

    .venv/bin/python benchmarks/export_scale.py [--ratings 1000000] [--keep] [--reuse]

--reuse keeps an already loaded database; --keep leaves it after the run (else it is dropped).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DIMENSIONS = 5
REVIEWERS = 100
DAYS = 30


def database_url(name: str) -> str:
    return f"{SERVER}/{name}"


def create_database(name: str, *, fresh: bool) -> bool:
    """Create the database; True if it was made now (False: it existed and is reused)."""
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not fresh:
            return False
        if exists:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return True


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage_env(name: str, workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(name),
        "FEEDBACKLOOP_VAR_DIR": str(workdir / "var"),
        "MEDIA_ROOT": str(workdir / "media"),
        "DJANGO_SETTINGS_MODULE": "feedbackloop.settings",
    }


def load(n_ratings: int) -> None:
    """Bulk-load generations, reviewers, reviews and ratings with COPY (in this process)."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from feedbackloop.config import BUILTIN_ENTRY
    from generation.models import Generation
    from pipelines.builtin.declaration import DECLARATION
    from pipelines.selectors import revision_active
    from pipelines.services.registration import pipeline_register
    from reviews.models import Rating, RatingDimension, Review

    entry = {k: v for k, v in BUILTIN_ENTRY.items() if k != "declaration"}
    pipeline = pipeline_register(parameters=DECLARATION, registered_by="bench", **entry).pipeline
    revision = revision_active(pipeline=pipeline)
    dimensions = list(RatingDimension.objects.order_by("order").values_list("pk", flat=True))
    assert len(dimensions) >= DIMENSIONS, "the seeded rating dimensions are missing"
    dimensions = dimensions[:DIMENSIONS]
    n_reviews = n_ratings // DIMENSIONS
    n_generations = -(-n_reviews // REVIEWERS)
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"bench-reviewer-{i}", password="!") for i in range(REVIEWERS)
    )
    start = datetime.now(UTC) - timedelta(days=DAYS)
    generation_ids = [uuid.uuid4() for _ in range(n_generations)]
    Generation.objects.bulk_create(
        (
            Generation(
                id=gid,
                prompt=f"Briefing {i}",
                status=Generation.Status.SUCCEEDED,
                revision=revision,
                params=revision.params,
                video=f"generations/{gid}.mp4",
                duration_s=6.0,
            )
            for i, gid in enumerate(generation_ids)
        ),
        batch_size=1000,
    )
    span = DAYS * 86400
    review_table, rating_table = Review._meta.db_table, Rating._meta.db_table
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3
        review_ids: list[uuid.UUID] = []
        with raw.copy(
            f"COPY {review_table} (id, reviewer_id, generation_id, comments, seconds_spent, "
            "created_at, updated_at) FROM STDIN"
        ) as copy:
            for r in range(n_reviews):
                rid = uuid.uuid4()
                review_ids.append(rid)
                created = start + timedelta(seconds=span * r / n_reviews)
                copy.write_row(
                    (
                        rid,
                        users[r % REVIEWERS].pk,
                        generation_ids[r // REVIEWERS],
                        "fine" if r % 7 else "",
                        10.0 + r % 50,
                        created,
                        created,
                    )
                )
        with raw.copy(
            f"COPY {rating_table} (review_id, dimension_id, value, created_at) FROM STDIN"
        ) as copy:
            for r, rid in enumerate(review_ids):
                created = start + timedelta(seconds=span * r / n_reviews)
                for d, dimension in enumerate(dimensions):
                    copy.write_row((rid, dimension, 1 + (r * 7 + d * 3) % 5, created))
        cursor.execute(f"ANALYZE {review_table}")
        cursor.execute(f"ANALYZE {rating_table}")


def measured(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run a child process; (seconds, peak RSS bytes sampled every 20 ms, stderr tail)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    _out, err = child.communicate()
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return elapsed, peak, err.strip().splitlines()[-1] if err.strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--database", default="feedbackloop_export_bench")
    parser.add_argument("--reuse", action="store_true", help="keep an already loaded database")
    parser.add_argument("--keep", action="store_true", help="do not drop the database after")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="export-bench-"))
    env = manage_env(args.database, workdir)
    os.environ.update(env)
    made = create_database(args.database, fresh=not args.reuse)
    if made:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        t1 = time.perf_counter()
        load(args.ratings)
        print(
            f"database {args.database}: migrated in {t1 - t0:.1f}s, "
            f"{args.ratings:,} ratings loaded (COPY) in {time.perf_counter() - t1:.1f}s"
        )
    else:
        print(f"database {args.database}: reused")

    recent = (datetime.now(UTC) - timedelta(days=DAYS // 10)).date().isoformat()
    cases = [
        ("ratings jsonl, all", ["--kind", "ratings", "--format", "jsonl"]),
        ("ratings parquet, all", ["--kind", "ratings", "--format", "parquet"]),
        (f"ratings jsonl, since {recent} (~10%)", ["--kind", "ratings", "--format", "jsonl"]),
    ]
    cases[2][1].extend(["--since", recent])
    print(f"{'case':<40} {'rows':>9} {'ratings':>10} {'seconds':>8} {'peak RSS':>9} {'file':>9}")
    for label, options in cases:
        out = workdir / f"export-{len(options)}-{options[3]}"
        command = [sys.executable, "manage.py", "export_feedback", *options, "--out", str(out)]
        seconds, peak, said = measured(command, env)
        rows = int(said.split()[1]) if said.startswith("exported") else -1
        print(
            f"{label:<40} {rows:>9,} {rows * DIMENSIONS:>10,} {seconds:>8.1f} "
            f"{peak / 2**20:>7.0f}MB {out.stat().st_size / 2**20:>7.0f}MB"
        )
        out.unlink()
    if not args.keep:
        drop_database(args.database)


if __name__ == "__main__":
    main()
