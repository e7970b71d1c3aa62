"""Record grids."""

import numpy as np
import pytest

import hdtheory as hd


def test_step_grid():
    g = hd.step_grid(10**6)
    assert g[0] == 0 and g[-1] == 10**6 and np.all(np.diff(g) > 0)
    assert set(range(21)) <= set(g.tolist())
    assert hd.step_grid(1).tolist() == [0, 1]
    with pytest.raises(ValueError):
        hd.step_grid(0)
