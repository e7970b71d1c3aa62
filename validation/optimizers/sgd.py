"""SGD on real samples: theta <- theta - lr (1/B) sum_b x_b (<x_b, theta> - y_b)."""
from __future__ import annotations

from . import Simulation


class SGDSimulation(Simulation):
    def update(self, theta, state, key, lr, sample, opt):
        x, y = sample(key, opt.batch)
        grad = x.T @ (x @ theta - y) / opt.batch  # averaged minibatch gradient
        return theta - lr * grad, state
