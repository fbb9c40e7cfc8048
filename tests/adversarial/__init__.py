"""The standing adversarial suite: hostile files, crashes, links, full disks and fuzzing.

Every test here is marked ``adversarial`` (see conftest.py) and runs in the default test run
unless it is also marked ``slow``.
"""
