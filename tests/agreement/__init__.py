"""Theory vs simulation: each optimizer's predicted risk against real JAX runs."""
