"""Each optimizer's theory: its state, exact step, block form and threshold, and its analysis namespace
(``hd.clipped_sgd``, ``hd.signsgd``, ``hd.la_diloco``; SGD's in ``theories.sgd``)."""
