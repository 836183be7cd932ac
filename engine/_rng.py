"""Counter-based uniforms: ``u(seed, step, salt, index)`` in [0, 1), identical in scalar and
vectorized form, so a session and the batch simulator draw exactly the same numbers without
carrying a generator in the serializable state.

The mixing function is SplitMix64 (Steele, Lea & Flood 2014), applied to the key chain
``seed → step → (salt, index)``; the top 53 bits become the double.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_SCALE = 2.0**-53

#: Salts of the independent random streams.
SALT_RANDOMESQUE = 1
SALT_SYMPSON_HETTER = 2
SALT_PRETEST = 3
SALT_SESSION = 4
SALT_PROGRESSIVE = 5


def _mix(x: int) -> int:
    z = (x + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def uniform(seed: int, step: int, salt: int, index: int = 0) -> float:
    """One uniform draw in [0, 1) for the key ``(seed, step, salt, index)``."""
    h = _mix(_mix(_mix(seed & _MASK) ^ (step & _MASK)) ^ (((salt << 32) | index) & _MASK))
    return (h >> 11) * _SCALE


def _mix_np(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    z = x + np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


def uniform_array(seed: NDArray, step: NDArray, salt: int, index: NDArray | int = 0
                  ) -> NDArray[np.float64]:
    """Vectorized `uniform`; ``seed``, ``step`` and ``index`` broadcast together."""
    s = np.asarray(seed, dtype=np.uint64)
    t = np.asarray(step, dtype=np.uint64)
    key = (np.uint64(salt) << np.uint64(32)) | np.asarray(index, dtype=np.uint64)
    h = _mix_np(_mix_np(_mix_np(s) ^ t) ^ key)
    return (h >> np.uint64(11)).astype(np.float64) * _SCALE


def derive_seed(master: int, index: int) -> int:
    """The session seed of simulee ``index`` in a study seeded with ``master`` (64-bit)."""
    return _mix(_mix(master & _MASK) ^ ((SALT_SESSION << 32 | index) & _MASK))
