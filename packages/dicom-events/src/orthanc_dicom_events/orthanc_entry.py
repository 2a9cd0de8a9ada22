# DO NOT EDIT: generated from tools/plugin-kit/orthanc_entry.py.template. Regenerate with:
#   python tools/plugin-kit/generate.py
"""Orthanc entry for orthanc-dicom-events used alone: point `PythonScript` (plugin 4.0) or
`Python.Path` (plugin 4.1 and later) at this file.

To run it beside the other plugins, generate one entry with `orthanc-plugins-compose` instead:
Orthanc accepts a single script, a single change callback and a single stored-instance callback
per process.
"""

import json
import os
import site
import sys

# Orthanc puts this file's folder first on sys.path; the package's parent (site-packages, or src/
# for an editable install) is what must be importable instead.
_here = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0]) == _here:
    sys.path.pop(0)
site.addsitedir(os.path.dirname(_here))

import orthanc  # noqa: E402

from orthanc_dicom_events.plugin import create  # noqa: E402

_plugin = create(orthanc, json.loads(orthanc.GetConfiguration()))
if _plugin.on_change is not None:
    orthanc.RegisterOnChangeCallback(_plugin.on_change)
if _plugin.on_stored_instance is not None:
    orthanc.RegisterOnStoredInstanceCallback(_plugin.on_stored_instance)
