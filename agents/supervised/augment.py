"""Image augmentation for the supervised baselines (numpy), as the lecture lists it: shifts (pad
with zeros, crop back), intensity changes, and flips only where a dataset says a flip keeps its
labels (never for digits or Atari frames).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FLIPS = ("horizontal", "vertical")


def shift_images(x: np.ndarray, dy: int | Sequence[int], dx: int | Sequence[int]) -> np.ndarray:
    """Move image i down by ``dy[i]`` and right by ``dx[i]`` pixels, filling with zeros.

    Equivalent to padding with zeros and cropping back to size; pixels pushed past the border
    are lost. ``x`` is (N, C, H, W); a single int shifts every image by the same amount.
    """
    n, _, h, w = x.shape
    dy_arr = np.broadcast_to(np.asarray(dy, dtype=np.int64), (n,))
    dx_arr = np.broadcast_to(np.asarray(dx, dtype=np.int64), (n,))
    pad = int(max(np.abs(dy_arr).max(initial=0), np.abs(dx_arr).max(initial=0)))
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    rows = (pad - dy_arr)[:, None] + np.arange(h)  # (N, H): source row of each output row
    cols = (pad - dx_arr)[:, None] + np.arange(w)
    batch = np.arange(n)[:, None, None, None]
    channels = np.arange(x.shape[1])[None, :, None, None]
    return padded[batch, channels, rows[:, None, :, None], cols[:, None, None, :]]


def augment_images(
    x: np.ndarray,
    rng: np.random.Generator,
    max_shift_pixels: int = 1,
    intensity_jitter: float = 0.1,
    flips: Sequence[str] = (),
) -> np.ndarray:
    """A randomly augmented copy of a float image batch (N, C, H, W) in [0, 1].

    Each image is shifted by up to ``max_shift_pixels`` in each direction (zero padding), each
    channel's intensity scaled by a factor in [1 - jitter, 1 + jitter] and clipped to [0, 1],
    and each flip in ``flips`` (only those that keep the label) applied with probability 1/2.
    """
    if x.ndim != 4:
        raise ValueError(f"augmentation takes (N, C, H, W) images, got shape {x.shape}")
    if max_shift_pixels < 0 or not 0.0 <= intensity_jitter < 1.0:
        raise ValueError(
            f"need max_shift_pixels >= 0 and intensity_jitter in [0, 1), "
            f"got {max_shift_pixels} and {intensity_jitter}"
        )
    n = len(x)
    out = x
    if max_shift_pixels > 0:
        dy, dx = rng.integers(-max_shift_pixels, max_shift_pixels + 1, size=(2, n))
        out = shift_images(out, dy, dx)
    for flip in flips:
        if flip not in FLIPS:
            raise ValueError(f"unknown flip {flip!r}; accepted: {', '.join(FLIPS)}")
        axis = 3 if flip == "horizontal" else 2
        chosen = rng.random(n) < 0.5
        out = np.where(chosen[:, None, None, None], np.flip(out, axis=axis), out)
    if intensity_jitter > 0:
        factor = rng.uniform(1 - intensity_jitter, 1 + intensity_jitter, size=(n, x.shape[1], 1, 1))
        out = np.clip(out * factor.astype(out.dtype), 0.0, 1.0)
    return np.ascontiguousarray(out, dtype=x.dtype)
