"""Which training samples calibrate the quantization ranges: the same draw for every backend and for prune's
before/after measurement."""
from __future__ import annotations

import numpy as np


def representative_indices(labels: np.ndarray, samples: int, stratified: bool, seed: int) -> np.ndarray:
    """Which training samples calibrate the ranges; stratified takes classes in turn so each is present."""
    rng = np.random.default_rng(seed)
    if not stratified:
        return np.sort(rng.permutation(len(labels))[:samples])
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    chosen, depth = [], 0
    while len(chosen) < samples and depth < max(len(p) for p in per_class):
        chosen += [int(p[depth]) for p in per_class if depth < len(p)][:samples - len(chosen)]
        depth += 1
    return np.sort(np.array(chosen))
