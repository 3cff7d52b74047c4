"""Importing videos made elsewhere: validated by decoding, poster and metrics, idempotent by
content, bad rows reported by line with nothing left behind, https downloads with limits."""

from __future__ import annotations

import io
import json
import shutil
import ssl
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from PIL import Image

from generation.models import Generation, MetricsRun
from pipelines.models import ConfigRevision
from pipelines.selectors import revision_active
from tests.factories import UserFactory
from tests.integrations.conftest import free_port
from videometrics.synthetic import encode_frames, synthetic_frames

pytestmark = pytest.mark.django_db


def make_video(path: Path, seconds: float = 1.0, seed: int = 0) -> Path:
    frames = synthetic_frames(64, 48, 12, seconds, seed=seed)
    return encode_frames(frames, path, 12, preset="ultrafast")


@pytest.fixture
def library(tmp_path, settings) -> Path:
    """An allowed import root with two videos, a long one and a file that is not a video."""
    root = tmp_path / "library"
    root.mkdir()
    make_video(root / "harbour.mp4", seed=1)
    make_video(root / "trams.mp4", seed=2)
    make_video(root / "long.mp4", seconds=2.5, seed=3)
    (root / "notes.mp4").write_text("these are meeting notes, not a video\n")
    settings.IMPORT_ALLOWED_ROOTS = [str(root)]
    settings.METRICS_OCR_ENABLED = False
    settings.UPLOAD_MAX_DURATION_SECONDS = 2.0
    return root


def run_import(manifest: Path, capture) -> tuple[str, str, bool]:
    out, err = io.StringIO(), io.StringIO()
    failed = False
    with capture(execute=True):
        try:
            call_command("import_videos", str(manifest), stdout=out, stderr=err)
        except CommandError as exc:
            failed = True
            err.write(str(exc))
    return out.getvalue(), err.getvalue(), failed


def media_files(settings) -> list[str]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_good_rows_import_and_bad_rows_are_reported_by_line_leaving_nothing(
    builtin_pipeline, library, tmp_path, settings, django_capture_on_commit_callbacks
):
    outside = tmp_path / "elsewhere.mp4"
    shutil.copy(library / "harbour.mp4", outside)
    manifest = library / "manifest.csv"  # relative paths are read from the manifest's folder
    manifest.write_text(
        "source,prompt,pipeline,params\n"
        "harbour.mp4,Harbour traffic briefing,builtin,\n"  # line 2: imported
        "notes.mp4,Meeting notes,builtin,\n"  # 3: not a video
        f"{outside},Harbour again,builtin,\n"  # 4: outside the root
        "long.mp4,A long one,builtin,\n"  # 5: over the duration limit
        "trams.mp4,Tram ridership,nope,\n"  # 6: unknown pipeline
        'trams.mp4,Tram ridership,builtin,"{""crf"": ""high""}"\n'  # 7: params refused
        "../escape.mp4,Escape,builtin,\n"  # 8: outside the root
        'trams.mp4,Tram ridership,builtin,"{""crf"": 30}"\n'  # 9: imported
    )
    revisions_before = ConfigRevision.objects.count()
    out, err, failed = run_import(manifest, django_capture_on_commit_callbacks)

    assert failed and "2 imported, 0 already imported, 6 failed" in err
    assert "line 2: imported" in out and "line 9: imported" in out
    assert "line 3: error the upload is not a readable video" in err
    assert "line 4: error" in err and "outside the allowed roots" in err
    assert "line 5: error the video's duration is 2.5 seconds; the limit is 2" in err
    assert "line 6: error unknown pipeline 'nope'; known: builtin" in err
    assert "line 7: error crf:" in err
    assert "line 8: error ../escape.mp4 is outside the allowed roots" in err

    harbour = Generation.objects.get(prompt="Harbour traffic briefing")
    trams = Generation.objects.get(prompt="Tram ridership")
    assert Generation.objects.count() == 2
    assert media_files(settings) == sorted(
        f"generations/{g.pk}.{ext}" for g in (harbour, trams) for ext in ("mp4", "jpg")
    ), "a refused row leaves no file"
    assert ConfigRevision.objects.count() == revisions_before + 1  # only line 9's params


def test_an_imported_video_is_ready_for_review_with_poster_and_metrics(
    builtin_pipeline, library, tmp_path, settings, django_capture_on_commit_callbacks
):
    manifest = tmp_path / "set.jsonl"
    manifest.write_text(
        json.dumps(
            {"path": str(library / "harbour.mp4"), "prompt": "Harbour", "pipeline": "builtin"}
        )
        + "\n"
    )
    out, err, failed = run_import(manifest, django_capture_on_commit_callbacks)
    assert not failed, err

    generation = Generation.objects.get()
    active = revision_active(pipeline=builtin_pipeline)
    assert generation.status == "succeeded" and generation.backend == "import"
    assert generation.revision == active and generation.params == active.params
    assert (generation.width, generation.height, generation.codec) == (64, 48, "h264")
    assert generation.duration_s == pytest.approx(1.0, abs=0.1)
    assert generation.size_bytes == (library / "harbour.mp4").stat().st_size
    assert generation.video.read() == (library / "harbour.mp4").read_bytes()
    with Image.open(generation.poster.path) as poster:
        assert poster.format == "JPEG" and poster.size == (64, 48)
    run = MetricsRun.objects.get(generation=generation)
    assert run.status == "succeeded"
    assert generation.metrics.filter(source="server").count() > 5


def test_importing_the_same_bytes_again_finds_the_first_generation(
    builtin_pipeline, library, tmp_path, settings, django_capture_on_commit_callbacks
):
    shutil.copy(library / "harbour.mp4", library / "harbour-copy.mp4")
    manifest = library / "m.csv"
    manifest.write_text("path,prompt,pipeline\nharbour.mp4,Harbour,builtin\n")
    run_import(manifest, django_capture_on_commit_callbacks)
    first = Generation.objects.get()
    manifest.write_text("path,prompt,pipeline\nharbour-copy.mp4,Harbour (copy),builtin\n")
    out, _err, failed = run_import(manifest, django_capture_on_commit_callbacks)

    assert not failed and f"line 2: duplicate {first.pk} already imported" in out
    assert Generation.objects.get() == first
    assert first.content_sha256 and len(first.content_sha256) == 64
    assert len(media_files(settings)) == 2


def test_params_pick_the_matching_revision_or_make_one_manual_revision(
    builtin_pipeline, library, tmp_path, django_capture_on_commit_callbacks
):
    active = revision_active(pipeline=builtin_pipeline)
    rows = [
        {"path": "harbour.mp4", "prompt": "A", "pipeline": "builtin", "params": active.params},
        {"path": "trams.mp4", "prompt": "B", "pipeline": "builtin", "params": {"crf": 33}},
    ]
    manifest = library / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    _out, err, failed = run_import(manifest, django_capture_on_commit_callbacks)
    assert not failed, err

    same = Generation.objects.get(prompt="A")
    assert same.revision == active
    made = Generation.objects.get(prompt="B")
    assert made.revision.source == "manual" and made.revision.status == "proposed"
    assert made.revision.params == {**active.params, "crf": 33} == made.params
    assert revision_active(pipeline=builtin_pipeline) == active, "the import activates nothing"

    make_video(library / "third.mp4", seed=9)
    manifest.write_text(
        json.dumps(
            {"path": "third.mp4", "prompt": "C", "pipeline": "builtin", "params": {"crf": 33}}
        )
    )
    run_import(manifest, django_capture_on_commit_callbacks)
    assert Generation.objects.get(prompt="C").revision == made.revision  # reused, not a third


# --- https ------------------------------------------------------------------------------------


def self_signed_certificate(folder: Path, ip: str) -> tuple[Path, Path]:
    """A certificate for ``ip`` and its key, as PEM files (made with cryptography)."""
    import ipaddress
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture
def https_server(tmp_path, library, monkeypatch) -> Iterator[str]:
    """A local HTTPS server with a self-signed certificate that requests is told to trust,
    serving the library folder; /moved redirects to plain http."""
    cert, key = self_signed_certificate(tmp_path, "127.0.0.1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:9/harbour.mp4")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), partial(Handler, directory=library))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_https_urls_download_within_the_size_limit(
    builtin_pipeline, library, https_server, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.IMPORT_MAX_BYTES = (library / "harbour.mp4").stat().st_size
    rows = [
        {"url": f"{https_server}/harbour.mp4", "prompt": "From afar", "pipeline": "builtin"},
        {"url": f"{https_server}/long.mp4", "prompt": "Too big", "pipeline": "builtin"},
        {"url": f"{https_server}/missing.mp4", "prompt": "Gone", "pipeline": "builtin"},
        {"url": f"{https_server}/moved", "prompt": "Downgraded", "pipeline": "builtin"},
        {"url": "http://127.0.0.1:9/harbour.mp4", "prompt": "Plain", "pipeline": "builtin"},
    ]
    manifest = tmp_path / "urls.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    out, err, failed = run_import(manifest, django_capture_on_commit_callbacks)

    assert "line 1: imported" in out
    assert "line 2: error" in err and "the limit is" in err
    assert "line 3: error" in err and "HTTP 404" in err
    assert "line 4: error" in err and "line 5: error" in err and "only https" in err
    generation = Generation.objects.get()
    assert generation.prompt == "From afar"
    assert generation.video.read() == (library / "harbour.mp4").read_bytes()
    assert len(media_files(settings)) == 2
    assert not list(Path(settings.FILE_UPLOAD_TEMP_DIR).glob("import-*")), "downloads removed"


def test_import_api_is_for_staff_and_reports_every_row(
    builtin_pipeline, library, settings, django_capture_on_commit_callbacks
):
    client = Client()
    client.force_login(UserFactory(username="rita"))
    body = {
        "entries": [
            {"path": str(library / "harbour.mp4"), "prompt": "API one", "pipeline": "builtin"},
            {"path": str(library / "notes.mp4"), "prompt": "API two", "pipeline": "builtin"},
            {"path": "/etc/hostname", "prompt": "API three", "pipeline": "builtin"},
            {"pth": "typo.mp4", "prompt": "API four", "pipeline": "builtin"},
        ]
    }
    post = partial(client.post, "/api/v1/imports/", body, content_type="application/json")
    assert post().status_code == 403
    client.force_login(UserFactory(username="stan", is_staff=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = post()
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["imported"], data["duplicates"], data["errors"]) == (1, 0, 3)
    results = data["results"]
    assert [r["line"] for r in results] == [1, 2, 3, 4]
    assert results[0]["status"] == "imported" and results[0]["generation_id"]
    assert "not a readable video" in results[1]["message"]
    assert "outside the allowed roots" in results[2]["message"]
    assert "unknown field pth" in results[3]["message"]
    assert Generation.objects.get().requested_by.username == "stan"
