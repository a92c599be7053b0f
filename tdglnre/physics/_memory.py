"""Memory placement and aliasing of the CPU sweeps (private; docs/physics.md, "Performance notes (CPU kernels)").

Two things cost the CPU kernels speed without changing a single result.

**No-alias compilation.** numba cannot tell LLVM that the arrays a sweep
writes never overlap those it reads, so LLVM guards each vectorised row with
run-time overlap checks, and where a loop touches many arrays (the screened
site loop writes six and reads eleven) it gives up and runs the loop scalar.
:func:`njit_noalias` compiles a function with numba's ``noalias`` flag (the one
its parallel ufuncs use): every array argument is declared not to overlap
any other. The sweeps decorated with it must only ever be called with
distinct arrays; their callers allocate them so, and :func:`check_distinct`
refuses an ``out`` that overlaps the input where a user can pass one.

**4K aliasing.** A CPU core predicts whether a load depends on an earlier
store from the low 12 bits of their addresses. When the arrays a sweep writes
sit at the same offset within a 4096-byte page as the arrays it reads (NumPy
and numba give large arrays page-aligned addresses, and an (N, N) float64
component is a whole number of pages for N ≥ 32), each vector load of a
neighbour looks as if it overlapped the store just made and waits for it.
:func:`staggered` returns an array whose address lies a chosen number of
bytes past another's modulo the page. The offsets below keep every pair of
the step's arrays (the state, the next state, the link factors, the fluxes)
at least 256 bytes from congruent, also one lattice row apart (row lengths
of 128 to 4096 bytes and more). Only addresses change: the arithmetic, and
so every result, is bitwise the same.
"""

from __future__ import annotations

import logging

import numpy as np
from numba import njit

from ..errors import ConfigError

log = logging.getLogger(__name__)

#: Bytes of the page whose low address bits the CPU compares.
PAGE = 4096
#: Offsets (bytes, modulo :data:`PAGE`) from the state of: the next state, the link factors, the plaquette fluxes.
SHIFT_NEXT, SHIFT_LINKS, SHIFT_FLUX = 768, 1536, 2304


@njit(cache=True, nogil=True)
def staggered(n, ref, shift):
    """A new 1-D array of n values of ``ref``'s dtype starting ``shift`` bytes past ``ref``'s address, modulo the page.

    ``shift`` must be a multiple of the item size. The array is a view into a
    buffer :data:`PAGE` bytes longer than needed (freed with the view).
    """
    item = ref.itemsize
    buf = np.empty(n + PAGE // item, dtype=ref.dtype)
    k = ((ref.ctypes.data + shift - buf.ctypes.data) % PAGE) // item
    return buf[k:k + n]


def _noalias_pipeline():
    """numba's nopython pipeline with a first pass that sets the ``noalias`` flag, or None where numba lacks them.

    The pipeline classes are numba's documented way to customise compilation
    (``numba.core.compiler``); the flag is the one numba's parallel ufuncs set.
    A numba without either still compiles the sweeps, without the declaration
    (slower, the same results).
    """
    try:
        from numba.core.compiler import CompilerBase, DefaultPassBuilder, Flags
        from numba.core.compiler_machinery import FunctionPass, register_pass
        from numba.core.untyped_passes import TranslateByteCode
    except ImportError as exc:  # pragma: no cover - depends on the numba release
        log.warning("numba's compiler pipeline API is missing (%s): the CPU sweeps compile without noalias", exc)
        return None
    if not hasattr(Flags, "noalias"):  # pragma: no cover
        log.warning("numba's Flags have no noalias option: the CPU sweeps compile without it")
        return None

    @register_pass(mutates_CFG=False, analysis_only=True)
    class DeclareNoAlias(FunctionPass):
        """Sets the compilation's ``noalias`` flag: pointer arguments (array data) get LLVM's ``noalias``."""

        _name = "tdglnre_declare_noalias"

        def __init__(self):
            FunctionPass.__init__(self)

        def run_pass(self, state):
            state.flags.noalias = True
            return False

    class NoAliasCompiler(CompilerBase):
        """numba's nopython pipeline with :class:`DeclareNoAlias` first."""

        def define_pipelines(self):
            pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
            pm.add_pass_after(DeclareNoAlias, TranslateByteCode)
            pm.finalize()
            return [pm]

    return NoAliasCompiler


#: The compiler class of :func:`njit_noalias` (None: this numba cannot declare it; plain ``njit``).
NOALIAS_PIPELINE = _noalias_pipeline()


def njit_noalias(**options):
    """``numba.njit(**options)`` whose array arguments are declared pairwise non-overlapping (see the module)."""
    if NOALIAS_PIPELINE is None:  # pragma: no cover - depends on the numba release
        return njit(**options)
    return njit(pipeline_class=NOALIAS_PIPELINE, **options)


def check_distinct(out: np.ndarray, arg: np.ndarray) -> None:
    """A ConfigError when ``out`` overlaps ``arg``: the sweeps write every site while reading its neighbours."""
    if np.shares_memory(out, arg):
        raise ConfigError("out must not overlap the input state (the update reads neighbours it would "
                          "overwrite); pass a separate array")
