"""plate-ocr-stream: the shared, light core (settings, Redis names, results stream, CLI).

Both the producer (on an edge box, without the model stack) and the worker import from here, so
nothing in this package may import torch, ultralytics or OpenCV at module level, except
`plate_ocr.training`, which only the training commands import (lazily, from the CLI).
"""

__all__: list[str] = []
