"""Compare the fake with the real `orthanc` module, so the fake cannot silently drift.

This module uses only the standard library: probe.py loads it inside Orthanc by its path.
The API surface of a module is its public names that start with an upper-case letter
(the real module has no others; the fake's test helpers are all lower-case).
"""

from __future__ import annotations

from typing import Any

Description = dict[str, Any]


def _api_names(owner: object) -> list[str]:
    return sorted(name for name in dir(owner) if name[:1].isupper())


def describe(module: object) -> Description:
    """{"classes": {name: {"constants": {NAME: int}, "methods": [...]}}, "functions": [...]}."""
    classes: dict[str, Any] = {}
    functions: list[str] = []
    for name in _api_names(module):
        value = getattr(module, name)
        if isinstance(value, type):
            constants: dict[str, int] = {}
            methods: list[str] = []
            for member in _api_names(value):
                attribute = getattr(value, member)
                if isinstance(attribute, int) and not isinstance(attribute, bool):
                    constants[member] = int(attribute)
                elif callable(attribute):
                    methods.append(member)
            classes[name] = {"constants": constants, "methods": methods}
        elif callable(value):
            functions.append(name)
    return {"classes": classes, "functions": functions}


def compare(real: Description, fake: Description | None = None) -> list[str]:
    """Disagreements between `fake` (default: a fresh FakeOrthanc) and the real description.

    Everything the fake offers must exist in the real module with the same value; the fake
    may offer less.
    """
    if fake is None:
        from .module import FakeOrthanc  # imported late: probe.py loads this file without pydicom

        fake = describe(FakeOrthanc())
    problems: list[str] = []
    real_classes: dict[str, Any] = real.get("classes", {})
    real_functions = set(real.get("functions", []))
    for function in fake["functions"]:
        if function not in real_functions:
            problems.append(f"function {function}() does not exist in the real orthanc module")
    for class_name, fake_class in fake["classes"].items():
        real_class = real_classes.get(class_name)
        if real_class is None:
            problems.append(f"class {class_name} does not exist in the real orthanc module")
            continue
        for constant, value in fake_class["constants"].items():
            real_value = real_class["constants"].get(constant)
            if real_value is None:
                problems.append(
                    f"{class_name}.{constant} does not exist in the real orthanc module"
                )
            elif real_value != value:
                problems.append(
                    f"{class_name}.{constant} is {value} in the fake but {real_value} in Orthanc"
                )
        real_methods = set(real_class["methods"])
        for method in fake_class["methods"]:
            if method not in real_methods:
                problems.append(
                    f"method {class_name}.{method}() does not exist in the real orthanc module"
                )
    return problems
