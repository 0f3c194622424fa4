"""The lecture's image kernels and true discrete convolution.

The lecture defines ``(x * k)_ij = sum_pq x_{i+p, j+q} k_{r-p, r-q}``: the kernel is flipped, which
is what distinguishes convolution from the cross-correlation ``torch.nn.functional.conv2d``
computes. Its worked example, x = [[0,80,40],[20,40,0],[0,0,40]] and k = [[0,0.25],[0.5,1]],
gives [[45,110],[40,40]].

Kernels (the lecture's "What can kernels do?" slide): a 3x3 box blur inside a 5x5 frame
(normalised by 9 so brightness is kept), the 3x3 Laplacian edge detector, and a 5x5 sharpen.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

BLUR = np.pad(np.ones((3, 3)), 1) / 9.0
EDGE = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
SHARPEN = np.pad(np.array([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]]), 1)
KERNELS = {"blur": BLUR, "edge": EDGE, "sharpen": SHARPEN}


def convolve2d(
    image: np.ndarray | torch.Tensor, kernel: np.ndarray | torch.Tensor, padding: str = "valid"
) -> np.ndarray:
    """True 2-D convolution of a single-channel image (H, W) with a kernel (kh, kw).

    ``padding="valid"`` keeps only positions where the kernel fits (output H-kh+1 x W-kw+1);
    ``"same"`` zero-pads so the output has the input's size (odd kernels only).
    """
    x = torch.as_tensor(np.asarray(image, dtype=np.float64))
    k = torch.as_tensor(np.asarray(kernel, dtype=np.float64))
    if x.ndim != 2 or k.ndim != 2:
        raise ValueError(f"convolve2d takes 2-D image and kernel, got {x.ndim}-D and {k.ndim}-D")
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    if padding == "same" and (k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0):
        raise ValueError(f"'same' padding needs an odd kernel, got shape {tuple(k.shape)}")
    if padding == "valid" and (k.shape[0] > x.shape[0] or k.shape[1] > x.shape[1]):
        raise ValueError(f"kernel {tuple(k.shape)} is larger than the image {tuple(x.shape)}")
    pad = (k.shape[1] // 2, k.shape[1] // 2, k.shape[0] // 2, k.shape[0] // 2)
    x4 = x[None, None]
    if padding == "same":
        x4 = F.pad(x4, pad)
    flipped = torch.flip(k, dims=(0, 1))  # convolution = cross-correlation with a flipped kernel
    return F.conv2d(x4, flipped[None, None])[0, 0].numpy()


def apply_kernel(image: np.ndarray, name: str) -> np.ndarray:
    """Filter a grayscale (H, W) or colour (H, W, C) uint8 image with a named lecture kernel.

    Output has the input's shape and dtype uint8, values clipped to [0, 255].
    """
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; accepted: {', '.join(KERNELS)}")
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"apply_kernel takes an (H, W) or (H, W, C) image, got shape {img.shape}")
    channels = img[..., None] if img.ndim == 2 else img
    out = np.stack(
        [
            convolve2d(channels[..., c], KERNELS[name], padding="same")
            for c in range(channels.shape[-1])
        ],
        axis=-1,
    )
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out[..., 0] if img.ndim == 2 else out
