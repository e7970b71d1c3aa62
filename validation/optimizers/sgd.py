"""SGD on real samples: theta <- theta - lr (1/B) sum_b x_b (<x_b, theta> - y_b)."""
from __future__ import annotations

from . import Simulation, minibatch_gradient


class SGDSimulation(Simulation):
    def update(self, theta, state, key, lr, sample, opt):
        x, y = sample(key, opt.batch)
        return theta - lr * minibatch_gradient(theta, x, y), state
