"""Downstream apps of the results stream: they import plate_ocr's settings, stream, constants and
connection and the schemas, never the reading engine (no torch, OpenCV or ONNX Runtime)."""
