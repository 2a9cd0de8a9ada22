"""Orthanc entry for orthanc-series-thumbnail used alone: point `PythonScript` at this file.

To run it beside the other plugins, generate one entry with `orthanc-plugins-compose` instead:
Orthanc accepts a single script and a single change callback per process.
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

from orthanc_series_thumbnail.plugin import create  # noqa: E402

_plugin = create(orthanc, json.loads(orthanc.GetConfiguration()))
orthanc.RegisterOnChangeCallback(_plugin.on_change)
