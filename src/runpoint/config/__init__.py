"""Configuration: turning configs into plain data, params and hashes, and masking secrets."""

from ._normalize import config_hash, flatten, to_plain
from ._secrets import MASK, is_secret_key, mask_secrets

__all__ = ["MASK", "config_hash", "flatten", "is_secret_key", "mask_secrets", "to_plain"]
