"""Procedural abdominal anatomy: Tissue maps (Z, H, W) drawn from smooth random fields, and the
cohort shift that makes the MRI cohort's anatomy and scans differ from the CT cohort's.

Geometry is defined in coordinates normalised to the field of view (so it scales with the image) and
per fraction of the stack along z (index 0 = most inferior slice). Every draw comes from the
generator passed in, in a fixed order, so the same seed gives the same patient.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = ["CohortShift", "Tissue", "draw_anatomy", "smooth_texture"]


class Tissue(IntEnum):
    """Finer than the labels: intensities are rendered per tissue, labels are derived from it."""

    AIR = 0  # outside the body and bowel gas
    FAT = 1  # subcutaneous
    VISCERAL_FAT = 2
    MUSCLE = 3
    BOWEL = 4
    LIVER = 5
    LIVER_VESSEL = 6
    SPLEEN = 7
    KIDNEY = 8
    BONE = 9
    AORTA = 10
    CSF = 11  # spinal canal: near water on CT, the brightest thing on T2
    LESION = 12  # focal liver lesion (cyst/metastasis-like): hypodense on CT, T2-bright; labelled liver


@dataclass(frozen=True)
class CohortShift:
    """How one MRI patient's anatomy and scan differ from the CT cohort's, as real cohorts do: the
    stack covers a more superior range, a larger field of view, the body sits off-centre, a larger
    liver, and focal lesions in some patients. All zero/one = the CT cohort's distribution."""

    z_offset: float = 0.0  # added to the normalised slice position (0..1, inferior -> superior)
    zoom: float = 1.0  # field of view relative to the CT cohort's (> 1: anatomy looks smaller)
    centre: tuple[float, float] = (0.0, 0.0)  # body centre offset (u, v), in half-FOV units
    liver_scale: float = 1.0
    lesions: int = 0
    lesion_seed: int = 0


def draw_anatomy(rng: np.random.Generator, size: int, slices: int, shift: CohortShift = CohortShift()) -> np.ndarray:
    """A Tissue map (Z, H, W): z from inferior to superior, rows anterior->posterior,
    columns patient's right -> left (radiological display)."""
    t = ((np.arange(slices) + 0.5) / slices)[:, None, None] + shift.z_offset
    c = ((np.arange(size) + 0.5) / size * 2 - 1) * shift.zoom
    v, u = c[None, :, None] - shift.centre[1], c[None, None, :] - shift.centre[0]

    # Body frame: x towards the patient's left, y posterior, origin at the body centre.
    uc, vc, phi = rng.uniform(-.05, .05), rng.uniform(-.04, .06), rng.uniform(-.08, .08)
    x = np.cos(phi) * (u - uc) + np.sin(phi) * (v - vc)
    y = -np.sin(phi) * (u - uc) + np.cos(phi) * (v - vc)
    a0, b0 = rng.uniform(.64, .86), rng.uniform(.46, .62)
    a = a0 * (1 + .05 * _waves(rng, (t,), 2, .7))  # the outline drifts smoothly along z
    b = b0 * (1 + .05 * _waves(rng, (t,), 2, .7))
    theta = np.arctan2(y, x)
    rho = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    edge = 1 + sum(rng.uniform(0, .025) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
                   for k in (2, 3, 4))
    # Subcutaneous fat is thicker anteriorly than over the back, as in real patients.
    f0 = rng.uniform(.05, .22)
    wall_in = edge - f0 * (1 - .35 * np.sin(theta + rng.uniform(-.3, .3)))
    wall_w = rng.uniform(.06, .1)
    cavity = rho < wall_in - wall_w

    tissue = np.zeros((slices, size, size), np.uint8)
    tissue[rho < edge] = Tissue.FAT
    tissue[rho < wall_in] = Tissue.MUSCLE
    # Bowel loops mixed with visceral fat, plus a little gas.
    coords = (t * .7, v, u)
    viscera = _waves(rng, coords, 8, 2.5) > rng.uniform(-.6, .5)
    tissue[cavity] = np.where(viscera, Tissue.VISCERAL_FAT, Tissue.BOWEL)[cavity]
    gas = cavity & ~viscera & (_waves(rng, coords, 6, 3.5) > 1.5)
    tissue[gas] = Tissue.AIR

    r_vb = rng.uniform(.075, .095)
    y_s = b0 * (1 - .65 * f0) - r_vb - rng.uniform(.17, .22)  # vertebral body centre
    grid = (x, y, t)

    _paint_liver(rng, tissue, grid, cavity, a0 * shift.liver_scale, b0 * shift.liver_scale)
    if shift.lesions:  # own generator: the CT cohort's draws stay exactly as they were
        _paint_lesions(np.random.default_rng(shift.lesion_seed), tissue, grid, shift.lesions)
    spleen = _ellipsoid(grid, _deform(rng, grid, .03), a0 * rng.uniform(.45, .6),
                        b0 * rng.uniform(.05, .35), rng.uniform(.65, .9), rng.uniform(.07, .11),
                        rng.uniform(.14, .2), rng.uniform(.18, .32), -rng.uniform(.3, .8))
    tissue[cavity & spleen] = Tissue.SPLEEN
    t_right = rng.uniform(.22, .4)  # the right kidney sits lower, pushed down by the liver
    for side, t0 in ((-1, t_right), (1, t_right + rng.uniform(.03, .12))):
        kidney = _ellipsoid(grid, (0, 0, 0), side * rng.uniform(.25, .33),
                            y_s + rng.uniform(-.03, .03), t0, rng.uniform(.075, .095),
                            rng.uniform(.11, .14), rng.uniform(.2, .3), side * rng.uniform(.3, .7))
        tissue[(rho < wall_in) & kidney] = Tissue.KIDNEY

    _paint_spine_and_muscles(rng, tissue, (x, y, t), rho, wall_in, wall_w, theta, r_vb, y_s)
    return tissue


def _paint_spine_and_muscles(rng: np.random.Generator, tissue: np.ndarray, grid: tuple, rho: np.ndarray,
                             wall_in: np.ndarray, wall_w: float, theta: np.ndarray, r_vb: float, y_s: float) -> None:
    """Psoas, paraspinal muscles, aorta, vertebra with its canal, and the ribs."""
    x, y, t = grid
    # Psoas appears and thickens towards the pelvis; paraspinal muscles flank the neural arch.
    r_ps = np.clip(.07 * (.6 - t) / .6, 0, None)
    for side in (-1, 1):
        psoas = (x - side * (r_vb + .05)) ** 2 + (y - y_s - .01) ** 2 < r_ps ** 2
        para = ((x - side * .11) / .085) ** 2 + ((y - y_s - r_vb - .05) / .075) ** 2 < 1
        tissue[(rho < wall_in) & (psoas | para)] = Tissue.MUSCLE
    r_ao = rng.uniform(.028, .04)
    aorta = (x - rng.uniform(0, .04)) ** 2 + (y - (y_s - r_vb - r_ao - .01)) ** 2 < r_ao ** 2
    tissue[np.broadcast_to(aorta, tissue.shape)] = Tissue.AORTA

    r_arch = np.hypot(x, y - (y_s + r_vb + .05))
    bone = ((x ** 2 + (y - y_s) ** 2 < r_vb ** 2) | (r_arch < .055)
            | ((x / .02) ** 2 + ((y - y_s - r_vb - .12) / .05) ** 2 < 1))
    tissue[np.broadcast_to(bone, tissue.shape)] = Tissue.BONE
    tissue[np.broadcast_to(r_arch < .03, tissue.shape)] = Tissue.CSF
    # Rib cross-sections in the upper abdomen, sloping (rotating) along z; none anteriorly.
    ribs = ((rho > wall_in - wall_w) & (rho < wall_in) & (t > .35) & (np.sin(theta) > -.5)
            & (np.cos(rng.integers(7, 10) * theta + rng.uniform(0, 2 * np.pi) + 4 * t) > .8))
    tissue[ribs] = Tissue.BONE


def _paint_liver(rng: np.random.Generator, tissue: np.ndarray, grid: tuple, cavity: np.ndarray,
                 a0: float, b0: float) -> None:
    """Union of a right lobe, a left lobe crossing the midline and 1-2 random lobules, warped by a
    smooth random field; most of its mass is superior, so it shrinks towards the bottom."""
    warp = _deform(rng, grid, rng.uniform(.03, .07))
    cx, cy, ct = -a0 * rng.uniform(.3, .45), rng.uniform(-.12, .08), rng.uniform(.6, .85)
    ax, ay = a0 * rng.uniform(.38, .55), b0 * rng.uniform(.6, .85)
    liver = _ellipsoid(grid, warp, cx, cy, ct, ax, ay, rng.uniform(.45, .75), rng.uniform(-.3, .3))
    liver |= _ellipsoid(grid, warp, a0 * rng.uniform(-.05, .2), -b0 * rng.uniform(.3, .55),
                        ct + rng.uniform(0, .15), a0 * rng.uniform(.2, .45),
                        b0 * rng.uniform(.15, .3), rng.uniform(.2, .4), rng.uniform(-.3, .3))
    for _ in range(rng.integers(1, 3)):
        liver |= _ellipsoid(grid, warp, cx + rng.normal(0, .1), cy + rng.normal(0, .1),
                            ct - rng.uniform(.1, .4), rng.uniform(.12, .25), rng.uniform(.12, .25),
                            rng.uniform(.15, .3), rng.uniform(-1, 1))
    liver &= cavity
    tissue[liver] = Tissue.LIVER
    x, y, t = grid
    for _ in range(rng.integers(2, 5)):  # vessels meandering through the liver along z
        px = cx + rng.uniform(-.35, .35) * ax + .04 * np.sin(6 * t + rng.uniform(0, 6))
        py = cy + rng.uniform(-.35, .35) * ay + .04 * np.cos(6 * t + rng.uniform(0, 6))
        vessel = (x - px) ** 2 + (y - py) ** 2 < rng.uniform(.02, .03) ** 2
        tissue[liver & vessel] = Tissue.LIVER_VESSEL


def _paint_lesions(rng: np.random.Generator, tissue: np.ndarray, grid: tuple, count: int) -> None:
    """Round lesions centred inside the liver (part of the liver label, as in CHAOS masks)."""
    liver = np.argwhere(tissue == Tissue.LIVER)
    x, y, t = (np.broadcast_to(g, tissue.shape) for g in grid)
    for _ in range(count if len(liver) else 0):
        z, r, c = liver[rng.integers(len(liver))]
        radius = rng.uniform(.04, .09)
        d2 = (x - x[z, r, c]) ** 2 + (y - y[z, r, c]) ** 2 + ((t - t[z, r, c]) * .5) ** 2
        tissue[(d2 < radius ** 2) & (tissue == Tissue.LIVER)] = Tissue.LESION


def _ellipsoid(grid: tuple, warp: tuple, cx: float, cy: float, ct: float, ax: float, ay: float,
               at: float, angle: float = 0.0) -> np.ndarray:
    """Inside of an ellipsoid rotated in-plane by `angle`, evaluated on warped coordinates."""
    dx, dy, dt = (g + w - c for g, w, c in zip(grid, warp, (cx, cy, ct)))
    xr = np.cos(angle) * dx + np.sin(angle) * dy
    yr = -np.sin(angle) * dx + np.cos(angle) * dy
    return (xr / ax) ** 2 + (yr / ay) ** 2 + (dt / at) ** 2 < 1


def _deform(rng: np.random.Generator, grid: tuple, amplitude: float) -> tuple:
    x, y, t = grid
    coords = (t * .7, y, x)
    return tuple(amplitude * _waves(rng, coords, 4, 1.2) for _ in range(3))


def _waves(rng: np.random.Generator, coords: tuple, n: int, freq: float) -> np.ndarray:
    """Sum of n random plane waves (up to `freq` cycles per unit): a cheap, smooth, exactly
    reproducible random field with roughly unit variance on any grid."""
    out = np.zeros(np.broadcast_shapes(*(np.shape(c) for c in coords)))
    for _ in range(n):
        k = rng.uniform(-freq, freq, len(coords))
        phase = rng.uniform(0, 2 * np.pi)
        out = out + np.cos(2 * np.pi * sum(ki * ci for ki, ci in zip(k, coords)) + phase)
    return out * np.sqrt(2.0 / n)


def smooth_texture(rng: np.random.Generator, shape: tuple[int, ...], freq: float) -> np.ndarray:
    z, h, w = shape
    coords = (np.linspace(0, .7, z)[:, None, None], np.linspace(-1, 1, h)[None, :, None],
              np.linspace(-1, 1, w)[None, None, :])
    return np.broadcast_to(_waves(rng, coords, 12, freq), shape)
