"""Native tests of the Python guest SDK (`apiary_sdk`), run under plain CPython 3.11+.

From the repository root (stdlib `unittest` only, nothing to install)::

    python3 -m unittest discover -s guest-sdk/python/tests -t guest-sdk/python

The SDK imports the bindings componentize-py generates; here they come from `stubs/` (the
generator's own output, see `stubs/README.md`), put on `sys.path` before anything imports
`apiary_sdk`, and the host's side of them is faked by `support.FakeHost`.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
STUBS = os.path.join(_HERE, "stubs")
"""The directory holding the stub `wit_world` and `componentize_py_types`."""
SDK = os.path.dirname(_HERE)
"""The directory holding `apiary_sdk/`."""
REPO = os.path.dirname(os.path.dirname(SDK))
"""The repository root (holding `wit/` and `tests/vectors/`)."""

for _path in (SDK, STUBS):
    if _path not in sys.path:
        sys.path.insert(0, _path)
