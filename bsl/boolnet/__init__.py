"""BoolNet (Guo et al. 2021, arXiv 2106.06991): binary networks with no 32-bit feature maps or
shortcuts, and the Bi-Real-style baseline of the same size, trained with latent weights and a
straight-through estimator, deployable onto binary crossbars.

:mod:`.binarize` holds the binary pieces (sign with its straight-through gradient, multi-slice
binarization, Boolean shortcuts, binary convolution and linear layers with their folded
comparator thresholds), :mod:`.model` the two networks, :mod:`.adapter` the loop's view,
:mod:`.deploy` the crossbar deployment. The rules are in ``bsl.rules.boolnet``.
"""
