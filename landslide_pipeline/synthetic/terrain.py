"""The ground of a synthetic survey: gently rolling natural terrain and the benched pit cut into it.

The pit walls are concentric benches set by the signed distance to the rim (``Pit.sd``); a
``RayTable`` finds where a given rim distance lies in any direction from the pit centre, so that
the haul road and the landslides can be traced along the walls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from landslide_pipeline.synthetic.grid import Grid, noise


def natural_terrain(grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gently rolling ground: (full surface, its low-frequency part used for graded surfaces)."""
    base = rng.uniform(300.0, 1500.0)
    tilt, azimuth = rng.uniform(0.005, 0.02), rng.uniform(0, 2 * np.pi)
    plane = tilt * (np.cos(azimuth) * grid.x + np.sin(azimuth) * grid.y)
    low = base + plane + 4.0 * noise(rng, grid.shape, grid.px(120)) + 1.2 * noise(rng, grid.shape, grid.px(35))
    detail = 0.2 * noise(rng, grid.shape, grid.px(6))
    return (low + detail).astype(np.float32), low.astype(np.float32)


@dataclass(frozen=True)
class Pit:
    """Pit geometry: centre, rim shape and bench design; ``sd`` is the inward distance to the rim."""

    centre: tuple[float, float]
    sd: np.ndarray
    bench_height: float
    face_run: float
    bench_run: float
    n_benches: int

    @property
    def depth(self) -> float:
        return self.n_benches * self.bench_height

    @property
    def floor_start(self) -> float:
        """Inward distance from the rim at which the last bench face meets the floor."""
        return (self.n_benches - 1) * self.bench_run + self.face_run


def design_pit(grid: Grid, rng: np.random.Generator) -> Pit:
    """Chooses the rim outline and bench design; the rim is a smooth, mildly irregular loop."""
    cx, cy = grid.extent * (0.5 + rng.uniform(-0.03, 0.03, size=2))
    r0 = 0.37 * grid.extent
    amps = [rng.uniform(0.05, 0.10), rng.uniform(0.0, 0.04), rng.uniform(0.0, 0.025)]
    phases = rng.uniform(0, 2 * np.pi, size=3)
    theta = np.arctan2(grid.y - cy, grid.x - cx)
    rim = r0 * (1 + sum(a * np.cos((i + 2) * theta - ph) for i, (a, ph) in enumerate(zip(amps, phases))))
    inside = np.hypot(grid.x - cx, grid.y - cy) < rim
    sd = (ndimage.distance_transform_edt(inside, sampling=grid.p)
          - ndimage.distance_transform_edt(~inside, sampling=grid.p)).astype(np.float32)
    height = rng.uniform(8.5, 11.5) * grid.k
    face_run = height / math.tan(math.radians(rng.uniform(60.0, 70.0)))
    available = 0.72 * r0 * (1 - sum(amps))
    n_benches = int(np.clip(round(available / (face_run + rng.uniform(5.0, 7.5) * grid.k)), 2, 8))
    berm = float(np.clip(available / n_benches - face_run, 3.0 * grid.k, 8.0 * grid.k))
    return Pit(centre=(float(cx), float(cy)), sd=sd, bench_height=float(height), face_run=float(face_run),
                bench_run=float(face_run + berm), n_benches=n_benches)


def _bench_depth(pit: Pit, d: np.ndarray) -> np.ndarray:
    """Depth below the rim of the benched wall at inward distance ``d`` (negative: rises outside)."""
    k = np.floor(d / pit.bench_run)
    phase = d - k * pit.bench_run
    depth = pit.bench_height * (k + np.clip(phase / pit.face_run, 0.0, 1.0))
    steep = pit.bench_height / pit.face_run
    depth = np.where(d < 0, d * steep, depth)
    return np.minimum(depth, pit.depth)


def pit_surface(grid: Grid, pit: Pit, z_natural: np.ndarray, z_rim: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Cuts the benched pit into the natural terrain; the floor dishes gently towards its middle."""
    # Blasted crests are never perfectly regular: wobble the distance that sets the benches.
    d = pit.sd + 0.35 * grid.k * noise(rng, grid.shape, grid.px(7))
    depth = _bench_depth(pit, d)
    into_floor = np.clip((pit.sd - pit.floor_start) / (10.0 * grid.k), 0.0, 1.0)
    floor_relief = rng.uniform(1.5, 3.0) * grid.k * into_floor + 0.4 * noise(rng, grid.shape, grid.px(6)) * into_floor
    return np.minimum(z_natural, z_rim - depth - floor_relief).astype(np.float32)


@dataclass(frozen=True)
class RayTable:
    """Radius along rays from the pit centre at which the rim distance reaches given values."""

    rho: np.ndarray  # (n_angles, n_distances)
    d0: float
    dd: float
    centre: tuple[float, float]

    def radius(self, theta: float, d: float) -> float:
        """Radius (m) in direction ``theta`` at which the rim distance is ``d``, interpolated."""
        n = self.rho.shape[0]
        fi = (theta % (2 * np.pi)) / (2 * np.pi) * n
        fj = float(np.clip((d - self.d0) / self.dd, 0, self.rho.shape[1] - 1.001))
        i0, j0 = int(fi) % n, int(fj)
        ti, tj = fi - math.floor(fi), fj - j0
        i1 = (i0 + 1) % n
        top = self.rho[i0, j0] * (1 - tj) + self.rho[i0, j0 + 1] * tj
        bottom = self.rho[i1, j0] * (1 - tj) + self.rho[i1, j0 + 1] * tj
        return float(top * (1 - ti) + bottom * ti)

    def points(self, theta: float, depths: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        """Pixel rows and columns (clipped to the scene) of the given rim distances along a ray."""
        radii = np.array([self.radius(theta, d) for d in depths])
        rows = np.clip(np.floor(grid.px(self.centre[1] + radii * math.sin(theta))), 0, grid.n - 1).astype(int)
        cols = np.clip(np.floor(grid.px(self.centre[0] + radii * math.cos(theta))), 0, grid.n - 1).astype(int)
        return rows, cols


def ray_table(grid: Grid, pit: Pit, margin: float) -> RayTable:
    """Tabulates, per direction, where each rim distance lies, to trace paths along the walls."""
    thetas = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    rho = np.arange(0.0, 0.75 * grid.extent, grid.p / 2)
    cx, cy = pit.centre
    rows = grid.px(cy + rho[None, :] * np.sin(thetas)[:, None]) - 0.5
    cols = grid.px(cx + rho[None, :] * np.cos(thetas)[:, None]) - 0.5
    profile = ndimage.map_coordinates(pit.sd, [rows, cols], order=1, mode="nearest")
    # Running maximum from the outside in makes each ray's distance monotonic for interpolation.
    inward = np.maximum.accumulate(profile[:, ::-1], axis=1) + 1e-6 * np.arange(rho.size)
    d_values = np.arange(-margin, pit.floor_start + margin, grid.p / 2)
    table = np.stack([np.interp(d_values, row, rho[::-1]) for row in inward])
    return RayTable(rho=table, d0=float(d_values[0]), dd=float(grid.p / 2), centre=pit.centre)
