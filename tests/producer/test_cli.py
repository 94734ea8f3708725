from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import redis
import rq
from rq.serializers import JSONSerializer

from plate_ocr.cli import main
from plate_ocr.settings import Settings
from producer import ImageNotFound
from producer.cli import find_images, run_enqueue
from schemas import PlateJob


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
def test_enqueue_track_marks_every_crop_with_the_track(
    settings: Settings, redis_client: redis.Redis, crops: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--redis-url", settings.redis_url, "--queue", settings.queue, "enqueue", str(crops)]
    assert main([*argv, "--camera", "gate-3", "--track", "car-17", "--quiet"]) == 0
    jobs = plate_jobs(redis_client, settings)
    assert len(jobs) == 3
    assert {(job.camera_id, job.track_id) for job in jobs} == {("gate-3", "car-17")}
