"""``runpoint demo``: a small MLP on scikit-learn's digits, trained with every runpoint feature.

Example::

    from runpoint.demo import train
    run = train(root="runpoint", epochs=2)
"""

from .digits import DEFAULT_CONFIG, checked_demo_config, demo_config, train

__all__ = ["DEFAULT_CONFIG", "checked_demo_config", "demo_config", "train"]
