"""FakeOrthanc: stands in for the `orthanc` module given to plugins."""

from __future__ import annotations

import hashlib
import json
import re
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from pydicom.dataset import Dataset

from . import enums
from .archive import Archive, Arrival, Clock, PendingChange, StoreResult
from .dicom import to_bytes
from .enums import ChangeType, ErrorCode, InstanceOrigin, ResourceType
from .errors import OrthancException, orthanc_error
from .metadata import ContentTypeNames, MetadataNames
from .rest import BuiltInRestApi
from .rest_output import (
    FakeDicomInstance,
    FakeRestOutput,
    FakeRestOutputSince42,
    check_arguments,
)

RestCallback = Callable[..., None]
OnChangeCallback = Callable[[int, int, str], None]
OnStoredInstanceCallback = Callable[[Any, str], None]


@dataclass(frozen=True)
class LogRecord:
    level: str  # "info" | "warning" | "error"
    message: str


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    callback: RestCallback


class FakeOrthanc:
    """The `orthanc` module of Orthanc 1.10 / Python plugin 4.0, backed by an in-memory archive.

    Names starting with an upper-case letter mirror the real module (drift-checked against it);
    lower-case names are test helpers.
    """

    ChangeType = enums.ChangeType
    ResourceType = enums.ResourceType
    InstanceOrigin = enums.InstanceOrigin
    HttpMethod = enums.HttpMethod
    MetricsType = enums.MetricsType
    PixelFormat = enums.PixelFormat
    ImageFormat = enums.ImageFormat
    ErrorCode = enums.ErrorCode
    OrthancException = OrthancException
    RestOutput = FakeRestOutput
    DicomInstance = FakeDicomInstance

    def __init__(
        self,
        configuration: Mapping[str, Any] | None = None,
        *,
        started: bool = True,
        clock: Clock | None = None,
        send_http_status_takes_size: bool = True,
        orthanc_version: str = "1.10.1",
    ) -> None:
        """`started=False` mimics script initialisation, when the REST API is not usable yet.

        `send_http_status_takes_size=False` answers like Python plugin 4.2 and later, whose
        `RestOutput.SendHttpStatus` takes (status, body) instead of 4.0's (status, text, size).
        `orthanc_version` is what `CheckVersionAdvanced` compares with; from 1.12.2 on, a status
        sent with a body also gets Orthanc's own `Content-Type: text/plain`, as the real core does.
        """
        self.orthanc_version = tuple(int(part) for part in orthanc_version.split("."))
        self.configuration: dict[str, Any] = dict(configuration or {})
        self.started = started
        self._output_class = (
            FakeRestOutput if send_http_status_takes_size else FakeRestOutputSince42
        )
        self.logs: list[LogRecord] = []
        self.metrics: dict[str, tuple[float, int]] = {}
        self.global_properties: dict[int, str] = {}
        self.routes: list[Route] = []
        self.on_change_callback: OnChangeCallback | None = None
        self.on_stored_instance_callback: OnStoredInstanceCallback | None = None
        # Orthanc only logs what callbacks raise; the fake also keeps it for assertions.
        self.callback_errors: list[BaseException] = []
        self.archive = Archive(
            MetadataNames(self.configuration), clock, ContentTypeNames(self.configuration)
        )
        self.rest_api = BuiltInRestApi(self.archive, self.configuration, self._store_bytes)

    # ---- the orthanc API

    def CheckVersionAdvanced(self, major: int, minor: int, revision: int) -> bool:
        return self.orthanc_version >= (major, minor, revision)

    def GetConfiguration(self) -> str:
        return json.dumps(self.configuration)

    def LogInfo(self, message: str) -> None:
        self._log("info", message)

    def LogWarning(self, message: str) -> None:
        self._log("warning", message)

    def LogError(self, message: str) -> None:
        self._log("error", message)

    def RegisterRestCallback(self, uri: str, callback: RestCallback) -> None:
        if not isinstance(uri, str) or not callable(callback):
            raise ValueError("Expected a string (URI) and a callback function")
        self.routes.append(Route(re.compile(uri), callback))

    def RegisterOnChangeCallback(self, callback: OnChangeCallback) -> None:
        if not callable(callback):
            raise ValueError(
                "Expected a callback function to register one Python on-changes callback"
            )
        if self.on_change_callback is not None:
            raise RuntimeError("Can only register one Python on-changes callback")
        self.on_change_callback = callback

    def RegisterOnStoredInstanceCallback(self, callback: OnStoredInstanceCallback) -> None:
        if not callable(callback):
            raise ValueError(
                "Expected a callback function to register one Python on-stored-instance callback"
            )
        if self.on_stored_instance_callback is not None:
            raise RuntimeError("Can only register one Python on-stored-instance callback")
        self.on_stored_instance_callback = callback

    def RestApiGet(self, uri: str) -> bytes:
        return self._rest("GET", uri, b"", after_plugins=False) or b""

    def RestApiPost(self, uri: str, body: bytes | str) -> bytes:
        return self._rest("POST", uri, body, after_plugins=False) or b""

    def RestApiPut(self, uri: str, body: bytes | str) -> bytes:
        return self._rest("PUT", uri, body, after_plugins=False) or b""

    def RestApiDelete(self, uri: str) -> None:
        self._rest("DELETE", uri, b"", after_plugins=False)

    def RestApiGetAfterPlugins(self, uri: str) -> bytes:
        return self._rest("GET", uri, b"", after_plugins=True) or b""

    def RestApiPostAfterPlugins(self, uri: str, body: bytes | str) -> bytes:
        return self._rest("POST", uri, body, after_plugins=True) or b""

    def RestApiPutAfterPlugins(self, uri: str, body: bytes | str) -> bytes:
        return self._rest("PUT", uri, body, after_plugins=True) or b""

    def RestApiDeleteAfterPlugins(self, uri: str) -> None:
        self._rest("DELETE", uri, b"", after_plugins=True)

    def SetMetricsValue(self, name: str, value: float, metrics_type: int) -> None:
        # The type is mandatory in plugin 4.0 (a two-argument call raises TypeError).
        check_arguments(
            isinstance(name, str)
            and isinstance(value, int | float)
            and isinstance(metrics_type, int),
            3,
        )
        self.metrics[name] = (float(value), metrics_type)

    def GetGlobalProperty(self, index: int, default: str) -> str:
        check_arguments(isinstance(index, int) and isinstance(default, str), 2)
        return self.global_properties.get(index, default)

    def SetGlobalProperty(self, index: int, value: str) -> None:
        check_arguments(isinstance(index, int) and isinstance(value, str), 2)
        self.global_properties[index] = value

    def GenerateUuid(self) -> str:
        return str(uuid.uuid4())

    def GetDicomForInstance(self, instance_id: str) -> bytes:
        check_arguments(isinstance(instance_id, str), 1)
        return self.archive.instance_file(instance_id).data

    def ComputeSha1(self, data: bytes) -> str:
        return hashlib.sha1(data, usedforsecurity=False).hexdigest()

    def ComputeMd5(self, data: bytes) -> str:
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    def SetDescription(self, description: str) -> None:
        self.description = description

    # ---- test helpers: archive

    def store(
        self,
        instance: Dataset | bytes | str | Path,
        origin: int = InstanceOrigin.REST_API,
        remote_aet: str | None = None,
        remote_ip: str | None = None,
        called_aet: str | None = None,
    ) -> StoreResult:
        """Receive an instance like Orthanc: the on-stored callback runs now, changes are queued."""
        if isinstance(instance, Dataset):
            data = to_bytes(instance)
        elif isinstance(instance, bytes):
            data = instance
        else:
            data = Path(instance).read_bytes()
        if origin == InstanceOrigin.DICOM_PROTOCOL and called_aet is None:
            called_aet = str(self.configuration.get("DicomAet", "ORTHANC"))
        return self._store_bytes(data, Arrival(origin, remote_aet, remote_ip, called_aet))

    def mark_stable(self, level: int, resource_id: str) -> None:
        """Log STABLE_* for a series, study or patient, then deliver pending changes in order."""
        self.archive.mark_stable(level, resource_id)
        self.deliver_pending_changes()

    def mark_all_stable(self) -> None:
        """Stabilise every unstable resource as Orthanc would once StableAge elapsed."""
        for level, resource_id in self.archive.unstable():
            self.archive.mark_stable(level, resource_id)
        self.deliver_pending_changes()

    # ---- test helpers: callbacks

    @property
    def pending_changes(self) -> list[PendingChange]:
        return self.archive.pending()

    def deliver_pending_changes(self) -> int:
        """Call the on-change callback with each queued change, in order; return how many."""
        delivered = 0
        while (change := self.archive.take_pending()) is not None:
            delivered += 1
            if self.on_change_callback is not None:
                self._invoke(
                    self.on_change_callback, change.change_type, change.level, change.resource_id
                )
        return delivered

    def fire_change(self, change_type: int, level: int, resource_id: str) -> None:
        """Call the on-change callback now with this change (not logged in /changes)."""
        if self.on_change_callback is not None:
            self._invoke(self.on_change_callback, change_type, level, resource_id)

    def start(self) -> None:
        """End of initialisation: the REST API opens, ORTHANC_STARTED is delivered."""
        self.started = True
        self.archive.queue(ChangeType.ORTHANC_STARTED, ResourceType.NONE, "")
        self.deliver_pending_changes()

    def stop(self) -> None:
        """Deliver what is pending, then ORTHANC_STOPPED, as Orthanc does when it shuts down."""
        self.archive.queue(ChangeType.ORTHANC_STOPPED, ResourceType.NONE, "")
        self.deliver_pending_changes()

    def call_route(
        self,
        method: str,
        uri: str,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        get: Mapping[str, str] | None = None,
    ) -> FakeRestOutput:
        """Send an HTTP request to the routes registered by Python; 404 when none matches.

        Exceptions raised by the callback propagate (Orthanc would answer 500 and log them).
        """
        path, _, query_text = uri.partition("?")
        arguments = {**dict(parse_qsl(query_text, keep_blank_values=True)), **(get or {})}
        lower_headers = {key.lower(): value for key, value in (headers or {}).items()}
        output = self._output_class(self.CheckVersionAdvanced(1, 12, 2))
        found = self._find_route(path)
        if found is None:
            output.SendHttpStatusCode(404)
            return output
        route, groups = found
        request = self._request(method, groups, lower_headers, arguments, body)
        route.callback(output, path, **request)
        return output

    def log_messages(self, level: str | None = None) -> list[str]:
        """Messages logged by plugins, optionally only one level ("info", "warning", "error")."""
        return [record.message for record in self.logs if level in (None, record.level)]

    # ---- internals

    def _log(self, level: str, message: str) -> None:
        check_arguments(isinstance(message, str), 1)
        self.logs.append(LogRecord(level, message))

    def _store_bytes(self, data: bytes, arrival: Arrival) -> StoreResult:
        result = self.archive.store(data, arrival)
        callback = self.on_stored_instance_callback
        if callback is not None:
            # Like Orthanc: synchronous, also for duplicates, outside any lock of the archive.
            instance = self.archive.get(ResourceType.INSTANCE, result.instance_id)
            assert instance.file is not None
            dicom = FakeDicomInstance(
                instance.file,
                instance.metadata,
                self.archive.metadata_names,
                self.rest_api.dictionary,
            )
            self._invoke(callback, dicom, result.instance_id)
        return result

    def _invoke(self, callback: Callable[..., None], *arguments: Any) -> None:
        try:
            callback(*arguments)
        except Exception as error:
            self.callback_errors.append(error)
            self._log("error", "".join(traceback.format_exception(error)))

    def _rest(
        self, method: str, uri: str, body: bytes | str, *, after_plugins: bool
    ) -> bytes | None:
        check_arguments(
            isinstance(uri, str) and isinstance(body, bytes | str),
            1 if method in ("GET", "DELETE") else 2,
        )
        if not self.started:
            raise orthanc_error(ErrorCode.DATABASE_NOT_INITIALIZED)
        data = body.encode() if isinstance(body, str) else body
        if after_plugins:
            answer = self._rest_to_plugin_route(method, uri, data)
            if answer is not None:
                return answer[0]
        return self.rest_api.call(method, uri, data)

    def _rest_to_plugin_route(
        self, method: str, uri: str, body: bytes
    ) -> tuple[bytes | None] | None:
        # A GET has its query string parsed into `get`; other methods keep it in the URI (measured).
        path, _, query_text = uri.partition("?") if method == "GET" else (uri, "", "")
        found = self._find_route(path)
        if found is None:
            return None
        route, groups = found
        output = self._output_class(self.CheckVersionAdvanced(1, 12, 2))
        request = self._request(
            method, groups, {}, dict(parse_qsl(query_text, keep_blank_values=True)), body
        )
        try:
            route.callback(output, path, **request)
        except Exception as error:
            self.callback_errors.append(error)
            self._log("error", "".join(traceback.format_exception(error)))
            raise orthanc_error(ErrorCode.PLUGIN) from error
        if output.status is None or not 200 <= output.status < 300:
            # Orthanc turns any non-2xx answer of a plugin route into UNKNOWN_RESOURCE.
            raise orthanc_error(ErrorCode.UNKNOWN_RESOURCE)
        return (None if method == "DELETE" else output.body,)

    def _find_route(self, path: str) -> tuple[Route, tuple[str, ...]] | None:
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match:
                return route, tuple(group or "" for group in match.groups())
        return None

    @staticmethod
    def _request(
        method: str,
        groups: tuple[str, ...],
        headers: dict[str, str],
        get: dict[str, str],
        body: bytes | str,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"method": method, "groups": groups, "headers": headers}
        if method == "GET":
            request["get"] = get
        if method in ("POST", "PUT"):
            request["body"] = body.encode() if isinstance(body, str) else body
        return request
