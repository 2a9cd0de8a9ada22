"""orthanc-plugins-compose: one Orthanc entry file for several installed Orthanc Python plugins."""

from .__about__ import __version__

__all__ = ["__version__"]
