"""Train the digits demo from a config file, with a command line for free.

    python examples/train.py --profile dev training.learning_rate=1e-2
    python examples/train.py --help            # every field, its type, default and meaning
    python examples/train.py --print-config    # the resolved config, then exit
"""

from pathlib import Path

import runpoint as rp
from runpoint.demo import train

cfg = rp.config.from_argv(Path(__file__).parent / "configs" / "base.yaml")
run = train(cfg)
print(f"run {run.id} ({run.name}): best val/acc {run.summary['best/val_acc']:.3f}, config hash {rp.config.config_hash(cfg)[:12]}")
