"""Orthanc PythonScript answering GET /orthanc-fake/probe with a description of the real module.

It needs nothing but the standard library: drift.py is loaded from this file's folder.
"""

import importlib.util
import json
import os
from typing import Any

import orthanc  # only exists inside Orthanc

_DRIFT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "drift.py")
_spec = importlib.util.spec_from_file_location("orthanc_fake_drift", _DRIFT_PATH)
assert _spec is not None and _spec.loader is not None
_drift = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_drift)

_DESCRIPTION = json.dumps(_drift.describe(orthanc), indent=1, sort_keys=True)


def _answer_probe(output: Any, uri: str, **request: Any) -> None:
    output.AnswerBuffer(_DESCRIPTION, "application/json")


orthanc.RegisterRestCallback("/orthanc-fake/probe", _answer_probe)
