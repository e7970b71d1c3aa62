"""Unit tests of the validation package (simulate, compare, empirical thresholds)."""
