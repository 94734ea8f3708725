"""Training tools: the synthetic USA plate generator, the YOLO11n training wrapper, evaluation.

These modules belong to the model stack (OpenCV, ultralytics); the light core never imports them.
"""

__all__: list[str] = []
