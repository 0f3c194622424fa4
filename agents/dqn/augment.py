"""Image augmentation inside the Q-learning update: DrQ's random shifts (Kostrikov et al. 2020).

``random_shift`` pads each image of a batch by ``pad`` pixels, repeating the edge pixels, and crops
it back to its size at a random offset drawn independently per image: a shift of -pad..pad pixels
in each direction, the same for every frame of one stack. It never builds the padded batch:
replicate padding followed by a crop at offset (oy, ox) is the gather

    out[b, c, i, j] = x[b, c, clamp(i + oy_b - pad, 0, H - 1), clamp(j + ox_b - pad, 0, W - 1)]

done as one ``torch.gather`` over each image's flattened pixels, with one (B, H * W) index shared
by its channels, on the batch's own device, any dtype, no Python loop over the batch (a third of
the time of a gather of rows then one of columns, whose indices span every channel).

``intensity_jitter`` is the second half of Dopamine's DrQ augmentation
(``labs/atari_100k/atari_100k_rainbow_agent.py``, ``_intensity_aug``, after Schwarzer et al.
2021): each image scaled by ``1 + scale * clip(n, -2, 2)`` with ``n ~ N(0, 1)`` per image.

How these match the code behind the published DrQ(epsilon) scores (Dopamine ``labs/atari_100k``):
- padding: edge/replicate in both (Kostrikov et al.'s PyTorch code uses ``ReplicationPad2d``;
  Dopamine's ``jnp.pad(..., 'edge')``), never zeros;
- observation and next observation: each augmented with its own random draw (Dopamine splits
  ``rng1``/``rng2``), so their shifts are independent;
- offsets: 0..2 * pad inclusive here (9 crops of a 92x92 pad, as ``kornia.RandomCrop`` in
  Kostrikov et al.'s code); Dopamine draws ``randint(0, 2 * pad)`` with an exclusive upper bound,
  so its shifts are -4..+3, and its first release (July 2021) drew one offset for the whole batch;
- intensity: Dopamine applies it to the [0, 1] image after the crop; so does ``augment_batch``.
"""

from __future__ import annotations

import torch


def shift_images(images: torch.Tensor, offsets: torch.Tensor, pad: int) -> torch.Tensor:
    """Each image of ``images`` (B, C, H, W) cropped at ``offsets[b] = (oy, ox)`` (each in
    0..2 * pad) from its replicate-padded copy: the content moves by (pad - oy, pad - ox) pixels
    (down, right) and the border rows/columns are repeated. Same shape, dtype and device."""
    if images.ndim != 4:
        raise ValueError(f"random shift takes (B, C, H, W) images, got shape {tuple(images.shape)}")
    b, c, h, w = images.shape
    offsets = offsets.to(images.device, torch.long)
    rows = (torch.arange(h, device=images.device) + (offsets[:, :1] - pad)).clamp_(0, h - 1)
    cols = (torch.arange(w, device=images.device) + (offsets[:, 1:] - pad)).clamp_(0, w - 1)
    pixels = (rows[:, :, None] * w + cols[:, None, :]).reshape(b, 1, h * w)  # (B, 1, H * W)
    flat = images.reshape(b, c, h * w).gather(2, pixels.expand(b, c, h * w))
    return flat.reshape(b, c, h, w)


def random_offsets(
    batch: int, pad: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(batch, 2) crop offsets, uniform in 0..2 * pad, independent per image and axis."""
    gen_device = generator.device if generator is not None else device
    offsets = torch.randint(0, 2 * pad + 1, (batch, 2), device=gen_device, generator=generator)
    return offsets.to(device)


def random_shift(
    images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DrQ's random shift: pad ``pad`` pixels (edges repeated), random crop back to H x W, an
    independent offset per image. Same shape, dtype and device as ``images``."""
    if pad == 0:
        return images
    return shift_images(images, random_offsets(images.shape[0], pad, images.device, generator), pad)


def intensity_jitter(
    images: torch.Tensor, scale: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``images`` (uint8 pixels are first scaled to [0, 1]) times ``1 + scale * clip(n, -2, 2)``,
    one standard normal ``n`` per image; a float tensor."""
    gen_device = generator.device if generator is not None else images.device
    shape = (images.shape[0],) + (1,) * (images.ndim - 1)
    n = torch.randn(shape, device=gen_device, generator=generator)
    factor = 1.0 + scale * n.clamp(-2.0, 2.0).to(images.device)
    if images.dtype == torch.uint8:  # a new float tensor: scaled in place, the same numbers
        return images.float().mul_(1.0 / 255.0).mul_(factor)
    return images.float() * factor  # may be ``images`` itself, which stays as it was


def augment_batch(
    images: torch.Tensor, pad: int, intensity: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random shift, then (when ``intensity`` > 0) intensity jitter: Dopamine's
    ``drq_image_augmentation`` with the shift range of Kostrikov et al."""
    out = random_shift(images, pad, generator)
    return intensity_jitter(out, intensity, generator) if intensity > 0 else out
