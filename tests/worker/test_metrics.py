"""`WorkerMetrics` on its own: hooks in, registry samples out, liveness on a fake clock."""

from collections.abc import Callable

import pytest

from schemas import ErrorCode, ModelInfo, PlateReading, ReadingError, Timings
from worker.metrics import WorkerMetrics

MODEL = ModelInfo(name="m", sha256="a" * 64)


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def sample(metrics: WorkerMetrics, metric: str, /, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(metric, labels)


@pytest.fixture
def metrics() -> WorkerMetrics:
    m = WorkerMetrics()
    m.describe(MODEL, device="cuda:1", backend="engine")
    return m


def test_describing_the_model_makes_it_ready_and_labels_the_info_metric() -> None:
    m = WorkerMetrics()
    assert not m.model_loaded
    m.describe(MODEL, device="cuda:1", backend="engine")
    assert m.model_loaded
    labels = {"name": "m", "sha256": "a" * 64, "device": "cuda:1", "backend": "engine"}
    assert sample(m, "plate_ocr_model_info", **labels) == 1


def test_counters_start_at_zero_so_that_rates_see_the_first_event(metrics: WorkerMetrics) -> None:
    assert sample(metrics, "plate_ocr_retries_total", device="cuda:1") == 0
    assert sample(metrics, "plate_ocr_recovered_jobs_total", device="cuda:1") == 0
    ok = {"device": "cuda:1", "status": "ok", "error_code": ""}
    assert sample(metrics, "plate_ocr_readings_total", **ok) == 0
    assert sample(metrics, "plate_ocr_model_call_seconds_count", device="cuda:1") == 0


def test_published_readings_are_counted_by_status_and_error_code(
    metrics: WorkerMetrics, make_reading: Callable[..., PlateReading]
) -> None:
    timings = Timings(queue_wait_ms=250.0, decode_ms=1.0, infer_ms=2.0, total_ms=500.0)
    bomb = ReadingError(code=ErrorCode.IMAGE_TOO_MANY_PIXELS, message="too many")
    metrics.published(
        [
            make_reading("a", timings=timings),
            make_reading("b", timings=timings),
            make_reading("c", status="error", error=bomb, timings=timings),
        ]
    )
    ok = {"device": "cuda:1", "status": "ok", "error_code": ""}
    assert sample(metrics, "plate_ocr_readings_total", **ok) == 2
    code = {"device": "cuda:1", "status": "error", "error_code": "image_too_many_pixels"}
    assert sample(metrics, "plate_ocr_readings_total", **code) == 1
    assert sample(metrics, "plate_ocr_queue_wait_seconds_sum", device="cuda:1") == 0.75
    assert sample(metrics, "plate_ocr_end_to_end_latency_seconds_sum", device="cuda:1") == 1.5
    le = {"device": "cuda:1", "le": "0.25"}
    assert sample(metrics, "plate_ocr_queue_wait_seconds_bucket", **le) == 3


def test_jobs_in_flight_are_settled_even_when_publishing_fails(metrics: WorkerMetrics) -> None:
    metrics.started(5)
    assert sample(metrics, "plate_ocr_in_flight_jobs", device="cuda:1") == 5
    with pytest.raises(RuntimeError), metrics.completing(5):
        raise RuntimeError("redis went away")
    assert sample(metrics, "plate_ocr_in_flight_jobs", device="cuda:1") == 0


def test_recovered_jobs_are_read_from_the_sweep_at_scrape_time(metrics: WorkerMetrics) -> None:
    total = [0]
    metrics.count_recovered(lambda: total[0])
    total[0] = 7
    assert sample(metrics, "plate_ocr_recovered_jobs_total", device="cuda:1") == 7


def test_the_loop_counts_as_stuck_when_either_side_stops_going_round() -> None:
    clock = Clock()
    m = WorkerMetrics(clock=clock)
    assert not m.loop_started
    m.beat()
    assert m.loop_started
    clock.now_s += 3
    assert m.seconds_since_progress() == 3
    m.beat()
    # The taking side keeps polling an empty queue while one batch is stuck in the model.
    with m.completing(1):
        clock.now_s += 10
        m.beat()
        assert m.seconds_since_progress() == 10
    assert m.seconds_since_progress() == 0
