"""BOLD (Nguyen et al., NeurIPS 2024, arXiv 2405.16339): Boolean neurons trained by Boolean
variation, their weights on binary devices of a crossbar.

:mod:`.layers` holds the Boolean layer (an XNOR-popcount read of its crossbar, a threshold
activation and the surrogate its backward uses), :mod:`.optimizer` the flip rule,
:mod:`.model` the network and the loop's view of it. The rule is ``bsl.rules.bold``.
"""
