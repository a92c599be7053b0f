"""Reading image observations: files to float arrays, the central crop and the resampling to a lattice.

:func:`load_image` reads PNG/TIFF (Pillow), ``.npy``/``.npz`` and HDF5
images into (H, W, C) float64 arrays, refusing with one line what is empty,
truncated, not a NumPy file, complex or too large to read safely;
:func:`crop_resample` maps the model's field of view onto its lattice. The
model-facing step (channel matching) is
:func:`tdglnre.workflows.observations.image_to_input`
(docs/observations.md, "Experimental images").
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import as_path
from ..errors import ConfigError

__all__ = ["IMAGE_SUFFIXES", "as_image", "channel_names", "crop_resample", "load_hdf5_array", "load_image",
           "load_numpy", "physical_values", "real_array", "value_map"]

def channel_names(channels: Any) -> list[str]:
    """Channel names from ``"rho1,curlJ"`` or a sequence of strings; empty or repeated names are refused."""
    if isinstance(channels, str):
        names = [c.strip() for c in channels.split(",")]
    elif isinstance(channels, (list, tuple)) and all(isinstance(c, str) for c in channels):
        names = [c.strip() for c in channels]
    else:
        raise ConfigError(f"`channels` must be names like 'rho1,curlJ' or a list of strings, got {channels!r}")
    if not names or any(not c for c in names):
        raise ConfigError(f"`channels` has an empty name: {channels!r}")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ConfigError(f"`channels` names {', '.join(dup)} more than once ({', '.join(names)}); each of the "
                          "image's channels needs its own name")
    return names


def as_image(img: Any) -> np.ndarray:
    """An image argument as a float64 (H, W, C) array (2-D: one channel); refuses what it cannot be."""
    if not isinstance(img, np.ndarray):
        raise ConfigError(f"`img` must be a NumPy array (H, W) or (H, W, C), got {type(img).__name__}; "
                          "read files with load_image")
    if np.iscomplexobj(img):
        raise ConfigError(f"`img` holds complex numbers ({img.dtype}); give the real channels instead")
    if img.dtype.kind not in "biuf":
        raise ConfigError(f"`img` holds {img.dtype} values, not numbers")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or 0 in img.shape:
        raise ConfigError(f"`img` must be a non-empty (H, W) or (H, W, C) array, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise ConfigError("`img` contains NaN/Inf pixels")
    return img



def load_numpy(path: Path, what: str) -> Any:
    """``np.load`` without pickles; an empty, truncated or foreign file is refused with one line naming ``what``."""
    if path.stat().st_size == 0:
        raise ConfigError(f"{what} {path} is empty (0 bytes)")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if path.suffix.lower() == ".npz":
        if not magic.startswith(b"PK"):
            raise ConfigError(f"{what} {path} is not a NumPy .npz archive")
    elif magic != b"\x93NUMPY":
        raise ConfigError(f"{what} {path} is not a NumPy .npy file")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ConfigError(f"{what} {path} holds Python objects (a pickle), not a numeric array") from None
        raise ConfigError(f"{what} {path} is not a readable NumPy file: {exc}") from None
    except (EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{what} {path} is not a readable NumPy file (truncated?): {exc}") from None


def load_hdf5_array(path: Path, what: str, ndims: tuple[int, ...]) -> np.ndarray:
    """The dataset ``x`` of an HDF5 file, or its only dataset of ``ndims`` dimensions."""
    import h5py

    shapes = " or ".join(f"{d}-D" for d in ndims)
    try:
        with h5py.File(path, "r") as f:
            cands = [k for k in f if isinstance(f[k], h5py.Dataset) and f[k].ndim in ndims]
            if "x" in f and isinstance(f["x"], h5py.Dataset) and f["x"].ndim in ndims:
                cands = ["x"]
            if len(cands) != 1:
                raise ConfigError(f"{what} {path}: expected exactly one {shapes} dataset (or one named x), "
                                  f"found {cands or 'none'}")
            return f[cands[0]][()]
    except OSError as e:
        raise ConfigError(f"{what} {path} is neither .npy nor a readable HDF5 file: {e}") from None


def real_array(a: Any, path: Path, what: str) -> np.ndarray:
    """``a`` as a real numeric array: complex, boolean-free objects and strings are refused."""
    a = np.asarray(a)
    if np.iscomplexobj(a):
        raise ConfigError(f"{what} {path} holds complex numbers ({a.dtype}); give the real channels "
                          "(e.g. |psi|^2) instead")
    if a.dtype.kind not in "biuf":
        raise ConfigError(f"{what} {path} holds {a.dtype} values, not numbers")
    return a



#: File suffixes read as images (channels last) rather than ensemble-layout arrays.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npz")


def value_map(value_range: Any = None, value_scale: Any = None) -> dict[str, list[float]]:
    """The checked detector-to-physical mapping as a record ``{"value_range": [lo, hi]}`` or ``{"value_scale": [a, b]}``.

    ``value_range`` (lo, hi): the file's full integer range (0…255 for 8 bits,
    0…65535 for 16 bits, the dtype's limits in general) maps linearly onto
    [lo, hi]; lo ≠ hi, both finite. ``value_scale`` (a, b): x ↦ a·x + b, a ≠ 0,
    both finite. At most one of them; neither gives ``{}``.
    """
    if value_range is not None and value_scale is not None:
        raise ConfigError("give `value_range` (integer images) or `value_scale` (x -> a*x + b), not both")
    out: dict[str, list[float]] = {}
    for name, pair in (("value_range", value_range), ("value_scale", value_scale)):
        if pair is None:
            continue
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
            raise ConfigError(f"`{name}` must be two numbers ({'lo,hi' if name == 'value_range' else 'a,b'}), "
                              f"got {pair!r}")
        from .._validate import as_float

        lo, hi = (as_float(f"`{name}`", v) for v in pair)
        if name == "value_range" and lo == hi:
            raise ConfigError(f"`value_range` needs lo != hi, got {lo:g},{hi:g}")
        if name == "value_scale" and lo == 0:
            raise ConfigError("`value_scale` a,b needs a != 0 (x -> a*x + b would erase the image)")
        out[name] = [lo, hi]
    return out


def physical_values(a: np.ndarray, what: str, mapping: dict[str, list[float]]) -> np.ndarray:
    """The float64 image in the simulation's units from the file's values ``a`` (:func:`value_map`'s ``mapping``).

    Integer pixels are detector counts: without a mapping they are refused with
    one line naming the options (a network would read counts as densities).
    ``value_range`` is for integer images only.
    """
    integer = a.dtype.kind in "biu"
    if "value_range" in mapping:
        if not integer:
            raise ConfigError(f"{what} holds {a.dtype} values: `value_range` maps an integer image's full range; "
                              "give `value_scale` a,b (x -> a*x + b) for values in instrument units")
        lo, hi = mapping["value_range"]
        imin, imax = (0, 1) if a.dtype.kind == "b" else (int(np.iinfo(a.dtype).min), int(np.iinfo(a.dtype).max))
        return lo + (a.astype(np.float64) - imin) * ((hi - lo) / (imax - imin))
    if "value_scale" in mapping:
        scale, shift = mapping["value_scale"]
        return scale * a.astype(np.float64) + shift
    if integer:
        bits = "1" if a.dtype.kind == "b" else str(8 * a.dtype.itemsize)
        raise ConfigError(f"{what} holds {bits}-bit integer counts, not values in the simulation's units; give "
                          "`value_range` lo,hi (the file's full integer range mapped linearly onto lo..hi) or "
                          "`value_scale` a,b (x -> a*x + b)")
    return a.astype(np.float64)


def load_image(path: str | Path, mapping: dict[str, list[float]] | None = None) -> np.ndarray:
    """An image file as a float64 array (H, W, C), row i ↔ y, column j ↔ x.

    PNG and TIFF through Pillow: greyscale (``L``, ``I;16``, ``I``) and
    float32 TIFF (mode ``F``) give one channel, ``RGB`` three (``RGBA``: the
    alpha channel is dropped). Values are converted by ``mapping``
    (:func:`value_map`, :func:`physical_values`): integer pixels are
    detector counts and need one. ``.npy``/``.npz``/``.h5``: a 2-D
    (H, W) or 3-D (H, W, C) array (the ``.npz``/``.h5`` key ``x``, or the only
    array in the file). Row 0 is the first row of the file: y grows downwards
    in the file as i does in the simulation (docs/physics.md, "Lattice").
    """
    path = as_path("`observation`", path)
    if not path.is_file():
        raise ConfigError(f"`observation` file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".png", ".tif", ".tiff"):
        from PIL import Image

        try:
            with Image.open(path) as im:
                if im.mode == "RGBA":
                    im = im.convert("RGB")
                elif im.mode in ("P", "LA", "1"):
                    im = im.convert("L")
                a = np.asarray(im)
        except Image.DecompressionBombError as exc:
            raise ConfigError(f"`observation` {path} is too large to read safely ({exc}); crop or bin it first, "
                              "or save it as .npy") from None
        except (OSError, ValueError, SyntaxError) as exc:  # Pillow reports corrupt files with any of these
            raise ConfigError(f"`observation` {path} is not a readable image: {exc}") from None
    elif suffix == ".npz":
        with load_numpy(path, "`observation`") as z:
            keys = ["x"] if "x" in z.files else list(z.files)
            if len(keys) != 1:
                raise ConfigError(f"`observation` {path}: expected one array (or one named x), found {keys}")
            try:
                a = z[keys[0]]
            except ValueError:
                raise ConfigError(f"`observation` {path}: array {keys[0]} holds Python objects, not numbers") from None
    elif suffix == ".npy":
        a = load_numpy(path, "`observation`")
    else:
        a = load_hdf5_array(path, "`observation`", (2, 3))
    a = physical_values(real_array(a, path, "`observation`"), f"`observation` {path}", mapping or {})
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ConfigError(f"`observation` {path}: an image must be (H, W) or (H, W, C), got shape {a.shape}")
    if 0 in a.shape:
        raise ConfigError(f"`observation` {path} is empty: shape {a.shape}")
    if not np.isfinite(a).all():
        raise ConfigError(f"`observation` {path} contains NaN/Inf pixels")
    return a


def crop_resample(img: np.ndarray, pixel_size: float, M: int, L: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Central L×L crop of ``img`` (H, W, C) with square pixels of ``pixel_size``, resampled to M×M."""
    from scipy import ndimage

    H, W = img.shape[:2]
    n_c = int(round(L / pixel_size))  # pixels across the field of view
    if n_c < 1:
        raise ConfigError(f"`pixel_size` {pixel_size:g} coherence lengths is larger than the model's whole field of "
                          f"view {L:g} x {L:g}: fewer than one pixel would cover it (the pixel size is in coherence "
                          "lengths, the simulation's length unit)")
    if n_c > min(H, W):
        raise ConfigError(f"`observation` covers {H * pixel_size:g} x {W * pixel_size:g} coherence lengths "
                          f"(`pixel_size` {pixel_size:g}), less than the model's field of view {L:g} x {L:g}")
    r0, c0 = (H - n_c) // 2, (W - n_c) // 2
    crop = img[r0:r0 + n_c, c0:c0 + n_c]
    if n_c == M:
        out, how = crop, "none"
    elif n_c % M == 0:  # integer factor: area average, as bin() does
        f = n_c // M
        out, how = crop.reshape(M, f, M, f, -1).mean(axis=(1, 3)), f"block mean {f}x{f}"
    else:  # pixel areas aligned (grid_mode): edges of the crop map onto edges of the lattice
        out = np.stack([ndimage.zoom(crop[..., c], M / n_c, order=1, mode="nearest", grid_mode=True)
                        for c in range(crop.shape[-1])], axis=-1)
        how = f"linear interpolation x{M / n_c:.4g}"
    if out.shape[:2] != (M, M):
        raise ConfigError(f"`observation`: resampling {n_c}x{n_c} pixels gave {out.shape[:2]}, not {M}x{M}")
    rec = {"image_shape": [int(H), int(W), int(img.shape[2])], "pixel_size": float(pixel_size),
           "crop": [int(r0), int(c0), int(n_c)], "field_of_view": float(n_c * pixel_size), "resampling": how}
    return out, rec
