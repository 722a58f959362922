"""The segmentation task itself: what is minimised (losses), what is measured (metrics), how results look (pictures).

Everything here works on arrays and Keras tensors under any backend and knows nothing
of configs beyond the `loss` group's arguments. May import `ssnets.common`, Keras,
NumPy and scikit-image; no other part of ssnets.
"""
