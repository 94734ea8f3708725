import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import redis
import rq
from rq.serializers import JSONSerializer

from plate_ocr.cli import main
from plate_ocr.connection import redacted_url
from plate_ocr.errors import JobError
from plate_ocr.settings import Settings
from producer import ImageNotFound
from producer.cli import find_images, run_enqueue
from schemas import ErrorCode, PlateJob


def plate_jobs(client: redis.Redis, settings: Settings) -> list[PlateJob]:
    queue = rq.Queue(settings.queue, connection=client, serializer=JSONSerializer)
    return [PlateJob.model_validate(job.args[0]) for job in queue.jobs]


@pytest.fixture
def crops(tmp_path: Path) -> Path:
    """crops/a.jpg, crops/b.PNG, crops/night/c.jpeg, and two files that are not images."""
    root = tmp_path / "crops"
    (root / "night").mkdir(parents=True)
    for name in ("a.jpg", "b.PNG", "night/c.jpeg"):
        (root / name).write_bytes(f"image {name}".encode())
    (root / "labels.csv").write_text("a.jpg,ABC123\n")
    (root / "night" / "notes.txt").write_text("rain")
    return root


def test_find_images_searches_folders_recursively_for_image_suffixes(crops: Path) -> None:
    assert find_images([crops]) == [crops / "a.jpg", crops / "b.PNG", crops / "night" / "c.jpeg"]


def test_find_images_takes_a_named_file_whatever_its_suffix_and_lists_each_once(
    crops: Path,
) -> None:
    found = find_images([crops / "labels.csv", crops / "a.jpg", crops])
    assert found[:2] == [crops / "labels.csv", crops / "a.jpg"]
    assert len(found) == 4


def test_find_images_refuses_a_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound):
        find_images([tmp_path / "missing"])


@pytest.mark.redis
def test_enqueue_prints_one_job_id_per_image(
    settings: Settings,
    redis_client: redis.Redis,
    crops: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_enqueue(settings, [crops], camera_id="gate-3", by_reference=False, quiet=False)
    job_ids = capsys.readouterr().out.split()
    assert code == 0
    jobs = plate_jobs(redis_client, settings)
    assert [job.job_id for job in jobs] == job_ids
    assert sorted(job.image_b64 or b"" for job in jobs) == [
        b"image a.jpg",
        b"image b.PNG",
        b"image night/c.jpeg",
    ]
    assert {job.camera_id for job in jobs} == {"gate-3"}


@pytest.mark.redis
def test_enqueue_quiet_prints_only_the_count(
    settings: Settings,
    redis_client: redis.Redis,
    crops: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_enqueue(settings, [crops], camera_id=None, by_reference=False, quiet=True)
    assert capsys.readouterr().out == "3\n"


@pytest.mark.redis
def test_enqueue_by_reference_sends_absolute_file_uris(
    settings: Settings,
    redis_client: redis.Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    odd = tmp_path / "with space #1.jpg"
    odd.write_bytes(b"jpeg")
    settings = settings.model_copy(update={"allowed_roots": (tmp_path,)})
    run_enqueue(settings, [odd], camera_id=None, by_reference=True, quiet=True)
    (job,) = plate_jobs(redis_client, settings)
    assert job.image_b64 is None
    assert job.image_ref is not None and job.image_ref.startswith("file:///")
    # How the worker turns it back into a path: percent-decoding the URI's path.
    assert Path(unquote(urlparse(job.image_ref).path)) == odd.resolve()


def test_enqueue_of_a_folder_without_images_fails(settings: Settings, tmp_path: Path) -> None:
    assert run_enqueue(settings, [tmp_path], camera_id=None, by_reference=False, quiet=True) == 1


@pytest.mark.redis
def test_plate_ocr_enqueue_goes_through_the_command_line(
    settings: Settings,
    redis_client: redis.Redis,
    crops: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--redis-url", settings.redis_url, "--queue", settings.queue, "enqueue", str(crops)]
    assert main([*argv, "--camera", "cli-cam", "--quiet"]) == 0
    assert capsys.readouterr().out == "3\n"
    assert {job.camera_id for job in plate_jobs(redis_client, settings)} == {"cli-cam"}


def test_plate_ocr_enqueue_reports_a_missing_path_as_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["enqueue", str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg" in capsys.readouterr().err


@pytest.mark.redis
def test_enqueue_by_reference_without_allowed_roots_is_refused_before_anything_is_queued(
    settings: Settings,
    redis_client: redis.Redis,
    crops: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--redis-url", settings.redis_url, "--queue", settings.queue]
    assert main([*argv, "enqueue", "--by-reference", str(crops)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "path_not_allowed" in err and "PLATE_OCR_ALLOWED_ROOTS" in err
    assert plate_jobs(redis_client, settings) == []


@pytest.mark.redis
def test_enqueue_by_reference_refuses_a_file_outside_the_allowed_roots(
    settings: Settings, redis_client: redis.Redis, crops: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # A link inside the root that leads out of it is outside too, as the worker sees it.
    (crops / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (tmp_path / "secret.jpg").write_bytes(b"jpeg")
    for roots, images in (((elsewhere,), [crops]), ((crops,), [crops / "link.jpg"])):
        limited = settings.model_copy(update={"allowed_roots": roots})
        with pytest.raises(JobError, match="outside PLATE_OCR_ALLOWED_ROOTS") as refused:
            run_enqueue(limited, images, camera_id=None, by_reference=True, quiet=True)
        assert refused.value.code == ErrorCode.PATH_NOT_ALLOWED
    assert plate_jobs(redis_client, settings) == []


def test_enqueue_against_a_redis_that_never_answered_fails_at_once_in_one_line(
    crops: Path,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://:hunter2@127.0.0.1:{port}/0"
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "plate_ocr.cli", "--redis-url", url, "enqueue", str(crops)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took_s = time.monotonic() - t0
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("plate-ocr: error: cannot reach Redis at redis://:***@127.0.0.1:")
    assert "hunter2" not in done.stderr
    assert took_s < 10  # one connect attempt (and the interpreter starting), not 28 s of retries


def test_redacted_url_hides_only_the_password() -> None:
    assert redacted_url("redis://u:pw@h:1/2") == "redis://u:***@h:1/2"
    assert redacted_url("rediss://:pw@h/0") == "rediss://:***@h/0"
    assert redacted_url("redis://h:6379/0") == "redis://h:6379/0"


@pytest.mark.redis
def test_enqueue_track_marks_every_crop_with_the_track(
    settings: Settings, redis_client: redis.Redis, crops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--redis-url", settings.redis_url, "--queue", settings.queue, "enqueue", str(crops)]
    assert main([*argv, "--camera", "gate-3", "--track", "car-17", "--quiet"]) == 0
    jobs = plate_jobs(redis_client, settings)
    assert len(jobs) == 3
    assert {(job.camera_id, job.track_id) for job in jobs} == {("gate-3", "car-17")}
