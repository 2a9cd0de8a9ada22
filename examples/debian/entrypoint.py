"""Start Orthanc from Debian's packages, configured by the environment variables the
orthancteam/orthanc image reads, so one compose file serves both kinds of image.

- ORTHANC_JSON: a JSON object merged into the configuration;
- ORTHANC__A__B=value: the key A.B, each word turned from UPPER_SNAKE into PascalCase
  (ORTHANC__STABLE_AGE is StableAge); the value is parsed as JSON when it parses, else a string;
- PYTHON_PLUGIN_ENABLED=true: load Debian's libOrthancPython.so;
- VERBOSE_ENABLED=true / TRACE_ENABLED=true: Orthanc's --verbose / --trace.

Variables apply in the order of the environment, a later one winning, as in the orthancteam
image; defaults fill what none set. Debian's own /etc/orthanc/*.json are not read: they load every
installed plugin and a sample Python script. The configuration is written to the path given as
the only argument (the image's CMD: /tmp/orthanc.json), then Orthanc replaces this process.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

ORTHANC = "/usr/sbin/Orthanc"
PYTHON_PLUGIN_GLOB = "/usr/share/orthanc/plugins*/libOrthancPython.so"
# The orthancteam image's defaults for the keys it sets itself.
DEFAULTS: dict[str, Any] = {
    "StorageDirectory": "/var/lib/orthanc/db",
    "RemoteAccessAllowed": True,
    "AuthenticationEnabled": True,
    "HttpsCACertificates": "/etc/ssl/certs/ca-certificates.crt",
}


def pascal_case(word: str) -> str:
    """DICOM_EVENTS -> DicomEvents."""
    return "".join(part[:1] + part[1:].lower() for part in word.split("_"))


def key_path(variable: str) -> list[str]:
    """ORTHANC__DICOM_EVENTS__BROKER -> ["DicomEvents", "Broker"]."""
    return [pascal_case(word) for word in variable.removeprefix("ORTHANC__").split("__")]


def parsed(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def merge(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    """Merge `source` into `target`: objects merge key by key, anything else replaces."""
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def configuration(environ: Mapping[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for variable, value in environ.items():
        if variable == "ORTHANC_JSON":
            merge(config, json.loads(value))
        elif variable.startswith("ORTHANC__"):
            *parents, last = key_path(variable)
            node: dict[str, Any] = {last: parsed(value)}
            for key in reversed(parents):
                node = {key: node}
            merge(config, node)
    for key, value in DEFAULTS.items():
        config.setdefault(key, value)
    python_wanted = environ.get("PYTHON_PLUGIN_ENABLED", "false") != "false"
    if python_wanted or "PythonScript" in config:
        plugins = sorted(glob.glob(PYTHON_PLUGIN_GLOB))
        if not plugins:
            raise SystemExit(f"PYTHON_PLUGIN_ENABLED, but no {PYTHON_PLUGIN_GLOB}")
        config["Plugins"] = [*config.get("Plugins", []), plugins[0]]
    return config


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(f"usage: {argv[0]} CONFIGURATION_FILE (the image's CMD names one)")
    path = argv[1]
    config = configuration(os.environ)
    os.makedirs(config["StorageDirectory"], exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(config, file, indent=2)
    options = []
    if os.environ.get("TRACE_ENABLED") == "true":
        options.append("--trace")
    elif os.environ.get("VERBOSE_ENABLED") == "true":
        options.append("--verbose")
    sys.stdout.flush()
    # Orthanc replaces this process: as the container's first process it gets `docker stop`.
    os.execv(ORTHANC, [ORTHANC, *options, path])  # noqa: S606


if __name__ == "__main__":
    main(sys.argv)
