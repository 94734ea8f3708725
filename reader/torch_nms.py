"""`batched_nms`: ultralytics' NMS for a whole batch in one call, for the detector on a GPU.

ultralytics' `non_max_suppression` loops over the images of a batch in Python: per crop a
handful of small kernels and one NMS call, each waited for, so a batch of 512 crops (2 048
views) is thousands of tiny GPU calls whose launch cost outweighs the network. This is the same
computation (best class per box, class-aware NMS, `max_det` per image) with every crop's boxes
in one torchvision NMS call: each box is moved by its class, as ultralytics does, in float32,
then by its image, in float64, so that no two crops' boxes ever overlap. The IoUs are then
computed in float64 where ultralytics computes them in float32: they differ by about 1e-7, so
only two boxes whose overlap lies that close to the threshold could be judged differently.
tests/reader/test_torch_nms.py holds it to ultralytics' output, row for row, on random heads.
Used on CUDA (reader.torch_detector); on the CPU, where the loop costs little, ultralytics'
own runs.
"""

import torch
import torchvision

__all__ = ["batched_nms"]

_CLASS_OFFSET = 7680  # ultralytics' max_wh: boxes of different classes never overlap
# Past every class's moved boxes (35 x 7 680 + the input's width); a power of two.
_IMAGE_OFFSET = float(2**19)


def batched_nms(
    head: torch.Tensor, confidence: float, iou: float, *, max_det: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(rows, anchor indices) per image, as `non_max_suppression(head, confidence, iou,
    max_det=max_det, return_idxs=True)` gives them: rows are (x1, y1, x2, y2, score, class)
    in float32, most confident first. `head` is the raw (N, 4 + classes, anchors) output."""
    n = head.shape[0]
    best, classes = head[:, 4:].max(1)  # (N, anchors)
    image, anchor = torch.nonzero(best > confidence, as_tuple=True)
    xywh = head[image, :4, anchor]  # (K, 4), in the head's own dtype, as ultralytics keeps it
    half = xywh[:, 2:] / 2
    box = torch.cat((xywh[:, :2] - half, xywh[:, :2] + half), 1).float()
    label = classes[image, anchor].float()
    score = best[image, anchor].float()
    moved = box + label[:, None] * _CLASS_OFFSET  # float32, exactly ultralytics' values
    apart = moved.double() + image.double()[:, None] * _IMAGE_OFFSET
    keep = torchvision.ops.nms(apart, score.double(), iou)  # most confident first
    # Per image, in that order, the first max_det.
    kept_image = image[keep]
    order = torch.sort(kept_image, stable=True).indices
    keep, kept_image = keep[order], kept_image[order]
    counts = torch.bincount(kept_image, minlength=n)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(keep), device=keep.device) - starts[kept_image]
    within = rank < max_det
    keep, counts = keep[within], counts.clamp(max=max_det)
    rows = torch.cat((box[keep], score[keep, None], label[keep, None]), 1)
    sizes: list[int] = counts.tolist()  # the one wait for the device
    return list(torch.split(rows, sizes)), list(torch.split(anchor[keep], sizes))
