"""`import runpoint` must stay cheap and side-effect free (DESIGN: under 150 ms, no torch)."""

import json
import subprocess
import sys

PROBE = """
import json, logging, signal, sys
before_handlers = list(logging.getLogger().handlers)
sigterm_before = signal.getsignal(signal.SIGTERM)
hook_before = sys.excepthook
import runpoint
print(json.dumps({
    "heavy": sorted(m for m in ("torch", "numpy", "pandas", "fastapi", "matplotlib", "pydantic", "yaml", "sqlite3") if m in sys.modules),
    "root_handlers_changed": list(logging.getLogger().handlers) != before_handlers,
    "runpoint_handlers": len(logging.getLogger("runpoint").handlers),
    "sigterm_changed": signal.getsignal(signal.SIGTERM) is not sigterm_before,
    "excepthook_changed": sys.excepthook is not hook_before,
}))
"""


def test_import_pulls_in_nothing_heavy_and_changes_nothing() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    report = json.loads(out)
    assert report == {
        "heavy": [],
        "root_handlers_changed": False,
        "runpoint_handlers": 0,
        "sigterm_changed": False,
        "excepthook_changed": False,
    }
