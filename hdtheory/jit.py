"""Numba options shared by the stepping kernels.

``KERNEL``: cached compilation, the numpy error model (a division by zero gives inf or nan instead of raising;
Python's per-division check blocks vectorization, and every kernel guards its own divisions, the driver reading
non-finite values as a divergence) and the floating-point freedoms of ``FAST_MATH``.
"""
from __future__ import annotations

#: reassociation, contraction, signed zeros and reciprocals: reductions and polynomial loops vectorize; no NaN/inf
#: assumptions (the divergence checks read them). Curves move by ~1e-15 relative against strict IEEE order.
FAST_MATH = frozenset({"reassoc", "contract", "nsz", "arcp"})

KERNEL = {"cache": True, "fastmath": set(FAST_MATH), "error_model": "numpy"}

#: elementwise kernels that evaluate a polynomial in a fixed order (``special.expm1_vec``): the same options less
#: reassociation, which would cost the polynomial its accuracy (a map over modes needs none to vectorize)
MAP_KERNEL = {"cache": True, "fastmath": set(FAST_MATH - {"reassoc"}), "error_model": "numpy"}
