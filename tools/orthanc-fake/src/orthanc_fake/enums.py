"""Constants of the `orthanc` module, with the values Orthanc 1.10 / plugin 4.0 uses.

They are plain classes of int attributes, like the real module (whose members are plain ints),
so `type(ChangeType.DELETED) is int` holds on both sides.
"""

from typing import Final


class ChangeType:
    COMPLETED_SERIES: Final = 0
    DELETED: Final = 1
    NEW_CHILD_INSTANCE: Final = 2
    NEW_INSTANCE: Final = 3
    NEW_PATIENT: Final = 4
    NEW_SERIES: Final = 5
    NEW_STUDY: Final = 6
    STABLE_PATIENT: Final = 7
    STABLE_SERIES: Final = 8
    STABLE_STUDY: Final = 9
    ORTHANC_STARTED: Final = 10
    ORTHANC_STOPPED: Final = 11
    UPDATED_ATTACHMENT: Final = 12
    UPDATED_METADATA: Final = 13
    UPDATED_PEERS: Final = 14
    UPDATED_MODALITIES: Final = 15
    JOB_SUBMITTED: Final = 16
    JOB_SUCCESS: Final = 17
    JOB_FAILURE: Final = 18


class ResourceType:
    PATIENT: Final = 0
    STUDY: Final = 1
    SERIES: Final = 2
    INSTANCE: Final = 3
    NONE: Final = 4


class InstanceOrigin:
    UNKNOWN: Final = 1
    DICOM_PROTOCOL: Final = 2
    REST_API: Final = 3
    PLUGIN: Final = 4
    LUA: Final = 5
    WEB_DAV: Final = 6


class HttpMethod:
    GET: Final = 1
    POST: Final = 2
    PUT: Final = 3
    DELETE: Final = 4


class MetricsType:
    DEFAULT: Final = 0
    TIMER: Final = 1


class PixelFormat:
    GRAYSCALE8: Final = 1
    GRAYSCALE16: Final = 2
    SIGNED_GRAYSCALE16: Final = 3
    RGB24: Final = 4
    RGBA32: Final = 5
    UNKNOWN: Final = 6
    RGB48: Final = 7
    GRAYSCALE32: Final = 8
    FLOAT32: Final = 9
    BGRA32: Final = 10
    GRAYSCALE64: Final = 11


class ImageFormat:
    PNG: Final = 0
    JPEG: Final = 1
    DICOM: Final = 2


class ErrorCode:
    INTERNAL_ERROR: Final = -1
    SUCCESS: Final = 0
    PLUGIN: Final = 1
    NOT_IMPLEMENTED: Final = 2
    PARAMETER_OUT_OF_RANGE: Final = 3
    BAD_PARAMETER_TYPE: Final = 5
    BAD_SEQUENCE_OF_CALLS: Final = 6
    INEXISTENT_ITEM: Final = 7
    BAD_REQUEST: Final = 8
    NETWORK_PROTOCOL: Final = 9
    INEXISTENT_FILE: Final = 13
    BAD_FILE_FORMAT: Final = 15
    TIMEOUT: Final = 16
    UNKNOWN_RESOURCE: Final = 17
    INEXISTENT_TAG: Final = 21
    BAD_JSON: Final = 28
    UNAUTHORIZED: Final = 29
    NOT_ACCEPTABLE: Final = 34
    DATABASE_NOT_INITIALIZED: Final = 2038
    UNSUPPORTED_MEDIA_TYPE: Final = 3000


# Descriptions as OrthancException carries them in args[1] (measured on Orthanc 1.10.1).
ERROR_DESCRIPTIONS: Final[dict[int, str]] = {
    ErrorCode.INTERNAL_ERROR: "Internal error",
    ErrorCode.PLUGIN: "Error encountered within the plugin engine",
    ErrorCode.NOT_IMPLEMENTED: "Not implemented yet",
    ErrorCode.PARAMETER_OUT_OF_RANGE: "Parameter out of range",
    ErrorCode.BAD_PARAMETER_TYPE: "Bad type for a parameter",
    ErrorCode.BAD_SEQUENCE_OF_CALLS: "Bad sequence of calls",
    ErrorCode.INEXISTENT_ITEM: "Accessing an inexistent item",
    ErrorCode.BAD_REQUEST: "Bad request",
    ErrorCode.BAD_FILE_FORMAT: "Bad file format",
    ErrorCode.UNKNOWN_RESOURCE: "Unknown resource",
    ErrorCode.INEXISTENT_TAG: "Inexistent tag",
    ErrorCode.BAD_JSON: "Cannot parse a JSON document",
    ErrorCode.DATABASE_NOT_INITIALIZED: (
        "Plugin trying to call the database during its initialization"
    ),
}

# Names used by the REST API (/changes, Origin metadata, resource JSON).
CHANGE_TYPE_NAMES: Final[dict[int, str]] = {
    ChangeType.COMPLETED_SERIES: "CompletedSeries",
    ChangeType.DELETED: "Deleted",
    ChangeType.NEW_CHILD_INSTANCE: "NewChildInstance",
    ChangeType.NEW_INSTANCE: "NewInstance",
    ChangeType.NEW_PATIENT: "NewPatient",
    ChangeType.NEW_SERIES: "NewSeries",
    ChangeType.NEW_STUDY: "NewStudy",
    ChangeType.STABLE_PATIENT: "StablePatient",
    ChangeType.STABLE_SERIES: "StableSeries",
    ChangeType.STABLE_STUDY: "StableStudy",
    ChangeType.UPDATED_ATTACHMENT: "UpdatedAttachment",
    ChangeType.UPDATED_METADATA: "UpdatedMetadata",
}

RESOURCE_TYPE_NAMES: Final[dict[int, str]] = {
    ResourceType.PATIENT: "Patient",
    ResourceType.STUDY: "Study",
    ResourceType.SERIES: "Series",
    ResourceType.INSTANCE: "Instance",
}

# URI segment of each level, e.g. /series/{id}.
LEVEL_PATHS: Final[dict[int, str]] = {
    ResourceType.PATIENT: "patients",
    ResourceType.STUDY: "studies",
    ResourceType.SERIES: "series",
    ResourceType.INSTANCE: "instances",
}

ORIGIN_NAMES: Final[dict[int, str]] = {
    InstanceOrigin.UNKNOWN: "Unknown",
    InstanceOrigin.DICOM_PROTOCOL: "DicomProtocol",
    InstanceOrigin.REST_API: "RestApi",
    InstanceOrigin.PLUGIN: "Plugin",
    InstanceOrigin.LUA: "Lua",
    InstanceOrigin.WEB_DAV: "WebDav",
}

STABLE_CHANGE_OF_LEVEL: Final[dict[int, int]] = {
    ResourceType.PATIENT: ChangeType.STABLE_PATIENT,
    ResourceType.STUDY: ChangeType.STABLE_STUDY,
    ResourceType.SERIES: ChangeType.STABLE_SERIES,
}

NEW_CHANGE_OF_LEVEL: Final[dict[int, int]] = {
    ResourceType.PATIENT: ChangeType.NEW_PATIENT,
    ResourceType.STUDY: ChangeType.NEW_STUDY,
    ResourceType.SERIES: ChangeType.NEW_SERIES,
    ResourceType.INSTANCE: ChangeType.NEW_INSTANCE,
}
