"""Marks every test of this folder ``adversarial``, so ``pytest -m adversarial`` runs just them."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/adversarial/" in str(item.fspath):
            item.add_marker(pytest.mark.adversarial)
