"""A minimal numpy rasteriser for the classic-control families' ``rgb_array`` frames.

Gymnasium draws Pendulum and CartPole with pygame, which is not a dependency of
this project; these frames need only thick segments, disks and boxes.
"""

from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]
Point = tuple[float, float]


class Canvas:
    """A white ``height x width`` RGB image over the world square ``[-extent, extent]^2``.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        extent: half-width of the world window (world units); ``y`` points up.
        center: world point at the image centre.
    """

    def __init__(self, width: int, height: int, extent: float, center: Point = (0.0, 0.0)) -> None:
        self.image = np.full((height, width, 3), 255, dtype=np.uint8)
        scale = min(width, height) / (2 * extent)
        cols = (np.arange(width) + 0.5 - width / 2) / scale + center[0]
        rows = (height / 2 - np.arange(height) - 0.5) / scale + center[1]
        self._x, self._y = np.meshgrid(cols, rows)

    def segment(self, a: Point, b: Point, width: float, color: Color) -> None:
        """A segment from ``a`` to ``b`` of thickness ``width`` (round caps)."""
        ax, ay = a
        dx, dy = b[0] - ax, b[1] - ay
        length2 = dx * dx + dy * dy
        t = np.clip(((self._x - ax) * dx + (self._y - ay) * dy) / max(length2, 1e-12), 0.0, 1.0)
        dist2 = (self._x - ax - t * dx) ** 2 + (self._y - ay - t * dy) ** 2
        self.image[dist2 <= (width / 2) ** 2] = color

    def disk(self, c: Point, radius: float, color: Color) -> None:
        self.image[(self._x - c[0]) ** 2 + (self._y - c[1]) ** 2 <= radius**2] = color

    def box(self, lo: Point, hi: Point, color: Color) -> None:
        """An axis-aligned filled rectangle with corners ``lo`` and ``hi``."""
        mask = (self._x >= lo[0]) & (self._x <= hi[0]) & (self._y >= lo[1]) & (self._y <= hi[1])
        self.image[mask] = color
