"""plate-ocr-stream: the shared, light core (settings, Redis names, results stream, CLI).

Both the producer (on an edge box, without the model stack) and the worker import from here, so
nothing in this package may import torch, ultralytics or OpenCV at module level. The model
tooling (synthetic data, training, evaluation) lives in the top-level `training` package, which
only the CLI's synth/train/eval commands import, lazily.
"""

__all__: list[str] = []
