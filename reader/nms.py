"""The YOLO head to `Detections` in numpy: candidate filter, per-class NMS, letterbox undo.

A numpy copy of what ultralytics does after the network (`non_max_suppression` with its
predict defaults, then `scale_boxes`), so the ONNX Runtime path reads the same boxes as the
torch path without importing either: best class per anchor above the threshold (strictly),
greedy NMS within each class (a box is dropped when its IoU with a kept, higher-scoring box of
its class is above `iou`), at most `max_det` boxes, most confident first. Arithmetic stays in
float32 where ultralytics' is, so boxes agree to float rounding.
"""

from typing import Final

import numpy as np
import numpy.typing as npt

from reader.detections import Detections

__all__ = ["detections_from_head", "nms", "scale_boxes"]

_MAX_NMS: Final = 30_000  # ultralytics: candidates past this many are cut, lowest scores first

FloatArray = npt.NDArray[np.floating]


def detections_from_head(
    head: npt.NDArray[np.float32],
    *,
    input_hw: tuple[int, int],
    shapes: tuple[tuple[int, int], ...],
    confidence: float,
    iou: float,
    max_det: int,
) -> list[Detections]:
    """One `Detections` per image of the raw head (N, 4 + classes, anchors): xywh in input
    pixels, then every class's sigmoid score. Boxes come back in each crop's own pixels."""
    if head.ndim != 3 or head.shape[0] != len(shapes) or head.shape[1] <= 4:
        raise ValueError(f"head {head.shape} is not (N={len(shapes)}, 4 + classes, anchors)")
    found = []
    for per_image, shape in zip(head, shapes, strict=True):
        x = per_image.T  # (anchors, 4 + classes)
        scores_all = x[:, 4:]
        best = scores_all.max(axis=1)
        candidates = np.flatnonzero(best > confidence)
        if len(candidates) > _MAX_NMS:
            candidates = candidates[np.argsort(-best[candidates], kind="stable")[:_MAX_NMS]]
        xywh = x[candidates, :4]
        half = xywh[:, 2:4] / 2
        boxes = np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)
        classes = scores_all[candidates].argmax(axis=1)
        scores = best[candidates]
        kept = nms(boxes, scores, classes, iou=iou)[:max_det]
        found.append(
            Detections(
                xyxy=scale_boxes(input_hw, boxes[kept], shape),
                scores=scores[kept].astype(np.float64),
                classes=classes[kept].astype(np.intp),
                class_scores=scores_all[candidates[kept]].astype(np.float64),
            )
        )
    return found


def nms(
    boxes: FloatArray, scores: FloatArray, classes: npt.NDArray[np.integer], *, iou: float
) -> npt.NDArray[np.intp]:
    """Indices kept by greedy per-class NMS, highest score first (torchvision's rule)."""
    order = np.argsort(-scores, kind="stable")
    b = boxes[order].astype(np.float32)
    c = classes[order]
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    top_left = np.maximum(b[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    overlap = inter / (areas[:, None] + areas[None, :] - inter)
    # Boxes of different classes never suppress each other (ultralytics offsets them apart).
    overlap[c[:, None] != c[None, :]] = 0
    suppressed = np.zeros(len(b), dtype=bool)
    kept = []
    for i in range(len(b)):
        if not suppressed[i]:
            kept.append(i)
            suppressed |= overlap[i] > iou
    return order[np.asarray(kept, dtype=np.intp)]


def scale_boxes(
    input_hw: tuple[int, int], boxes: FloatArray, crop_hw: tuple[int, int]
) -> npt.NDArray[np.float64]:
    """xyxy boxes on the letterboxed input -> crop pixels, clipped to the crop (ultralytics'
    `scale_boxes` for the engine's letterbox: per-axis gain of the rounded resize, centred pad).
    """
    height, width = input_hw
    h0, w0 = crop_hw
    gain = min(height / h0, width / w0)
    new_h, new_w = max(round(h0 * gain), 1), max(round(w0 * gain), 1)
    pad_x, pad_y = round((width - new_w) / 2 - 0.1), round((height - new_h) / 2 - 0.1)
    out = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    out[:, [0, 2]] = (out[:, [0, 2]] - pad_x) / np.float32(new_w / w0)
    out[:, [1, 3]] = (out[:, [1, 3]] - pad_y) / np.float32(new_h / h0)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w0)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h0)
    return out.astype(np.float64)
