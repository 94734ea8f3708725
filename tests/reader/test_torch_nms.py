"""reader.torch_nms.batched_nms against ultralytics' per-image NMS, on random heads."""

import pytest
import torch
from ultralytics.utils.nms import non_max_suppression

from reader.torch_nms import batched_nms


def _head(n: int, anchors: int, *, seed: int, classes: int = 36) -> torch.Tensor:
    """Like a detector's head: around each of 8 characters per crop, 40 anchors predict
    jittered copies of its box, most confident for its class; the rest is low noise."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand((n, 2, anchors), generator=g) * torch.tensor([256.0, 128.0])[None, :, None]
    wh = torch.rand((n, 2, anchors), generator=g) * 40 + 2
    scores = torch.rand((n, classes, anchors), generator=g) ** 8 * 0.3
    for i in range(n):
        for k in range(8):
            at = slice(k * 40, (k + 1) * 40)
            centre = torch.tensor([20.0 + 28 * k, 64.0])[:, None]
            xy[i, :, at] = centre + torch.randn((2, 40), generator=g) * 1.5
            wh[i, :, at] = torch.tensor([22.0, 48.0])[:, None] + torch.randn((2, 40), generator=g)
            label = int(torch.randint(classes, (1,), generator=g))
            scores[i, label, at] = 0.3 + 0.69 * torch.rand(40, generator=g)
    return torch.cat((xy, wh, scores), 1)


@pytest.mark.parametrize(
    ("seed", "confidence", "max_det"), [(0, 0.25, 300), (1, 0.05, 300), (2, 0.5, 7)]
)
def test_batched_nms_keeps_what_ultralytics_keeps_image_by_image(
    seed: int, confidence: float, max_det: int
) -> None:
    head = _head(6, 672, seed=seed)
    head[3, 4:] = 0.0  # a crop with no box at all
    want_rows, want_idx = non_max_suppression(
        head, confidence, 0.7, max_det=max_det, return_idxs=True
    )
    got_rows, got_idx = batched_nms(head, confidence, 0.7, max_det=max_det)
    assert len(got_rows) == len(got_idx) == 6
    kept = sum(len(r) for r in want_rows)
    assert 0 < kept < int((head[:, 4:].amax(1) > confidence).sum())  # NMS had work to do
    for want, got in zip(want_rows, got_rows, strict=True):
        assert got.dtype == torch.float32 and torch.equal(got, want)
    for want, got in zip(want_idx, got_idx, strict=True):
        assert torch.equal(got, want.view(-1).long())


def test_half_precision_heads_give_ultralytics_rows_too() -> None:
    head = _head(3, 672, seed=4).half()
    want_rows, want_idx = non_max_suppression(head, 0.25, 0.7, max_det=300, return_idxs=True)
    got_rows, got_idx = batched_nms(head, 0.25, 0.7, max_det=300)
    for want, got in zip(want_rows, got_rows, strict=True):
        assert torch.equal(got, want.float())
    for want, got in zip(want_idx, got_idx, strict=True):
        assert torch.equal(got, want.view(-1).long())
