"""DICOM datasets as Orthanc 1.10 renders them in JSON (full, simplified, short, main tags)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_is_retired, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from .enums import ResourceType

# Orthanc's default "MaximumStringLength": longer values are rendered as null.
MAXIMUM_STRING_LENGTH = 256
UNKNOWN_TAG_NAME = "Unknown Tag & Data"
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})
PIXEL_DATA = 0x7FE00010

JsonObject = dict[str, Any]

# Main DICOM tags Orthanc 1.10 keeps in its index, by level.
MAIN_DICOM_TAGS: dict[int, tuple[str, ...]] = {
    ResourceType.PATIENT: (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "OtherPatientIDs",
    ),
    ResourceType.STUDY: (
        "StudyDate",
        "StudyTime",
        "StudyID",
        "StudyDescription",
        "AccessionNumber",
        "StudyInstanceUID",
        "RequestedProcedureDescription",
        "InstitutionName",
        "RequestingPhysician",
        "ReferringPhysicianName",
    ),
    ResourceType.SERIES: (
        "SeriesDate",
        "SeriesTime",
        "Modality",
        "Manufacturer",
        "StationName",
        "SeriesDescription",
        "BodyPartExamined",
        "SequenceName",
        "ProtocolName",
        "SeriesNumber",
        "CardiacNumberOfImages",
        "ImagesInAcquisition",
        "NumberOfTemporalPositions",
        "NumberOfSlices",
        "NumberOfTimeSlices",
        "SeriesInstanceUID",
        "ImageOrientationPatient",
        "SeriesType",
        "OperatorsName",
        "PerformedProcedureStepDescription",
        "AcquisitionDeviceProcessingDescription",
        "ContrastBolusAgent",
    ),
    ResourceType.INSTANCE: (
        "InstanceCreationDate",
        "InstanceCreationTime",
        "AcquisitionNumber",
        "ImageIndex",
        "InstanceNumber",
        "NumberOfFrames",
        "TemporalPositionIdentifier",
        "SOPInstanceUID",
        "ImagePositionPatient",
        "ImageComments",
        "ImageOrientationPatient",
    ),
}


@dataclass(frozen=True)
class TagDictionary:
    """Tag names added by the `Dictionary` configuration option."""

    public_names: Mapping[int, str] = field(default_factory=dict)
    # (group, low byte of the element, private creator) -> name
    private_names: Mapping[tuple[int, int, str], str] = field(default_factory=dict)

    @classmethod
    def from_configuration(cls, configuration: Mapping[str, Any]) -> TagDictionary:
        public: dict[int, str] = {}
        private: dict[tuple[int, int, str], str] = {}
        for key, entry in dict(configuration.get("Dictionary") or {}).items():
            group_text, element_text = str(key).split(",")
            group, element = int(group_text, 16), int(element_text, 16)
            name = str(entry[1])
            if len(entry) >= 5 and entry[4]:
                private[(group, element & 0xFF, str(entry[4]))] = name
            else:
                public[(group << 16) | element] = name
        return cls(public, private)

    def name_of(self, tag: BaseTag, creator: str | None) -> str:
        if tag.is_private:
            if tag.is_private_creator:
                return "PrivateCreator"
            if creator is not None:
                return self.private_names.get(
                    (tag.group, tag.element & 0xFF, creator), UNKNOWN_TAG_NAME
                )
            return UNKNOWN_TAG_NAME
        if int(tag) in self.public_names:
            return self.public_names[int(tag)]
        keyword = keyword_for_tag(tag)
        if not keyword:
            return UNKNOWN_TAG_NAME
        # DCMTK, whose names Orthanc shows, prefixes retired attributes.
        return f"RETIRED_{keyword}" if dictionary_is_retired(tag) else keyword


def tag_key(tag: BaseTag) -> str:
    """Orthanc's spelling of a tag: lower-case 'gggg,eeee'."""
    return f"{tag.group:04x},{tag.element:04x}"


def element_text(element: DataElement) -> str:
    """The value as Orthanc shows it in a JSON "String"."""
    value = element.value
    if value is None:
        return ""
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return "\\".join(_format_single(element.VR, item) for item in values)


def _format_single(vr: str, value: object) -> str:
    # boost::lexical_cast writes max_digits10 significant digits.
    if vr == "FD" and isinstance(value, float):
        return f"{value:.17g}"
    if vr == "FL" and isinstance(value, float):
        return f"{value:.9g}"
    if vr == "AT" and isinstance(value, int):
        return tag_key(Tag(value))
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value).rstrip(" \x00")


def _private_creator(dataset: Dataset, tag: BaseTag) -> str | None:
    if not tag.is_private or tag.is_private_creator:
        return None
    creator = dataset.get(Tag(tag.group, tag.element >> 8))
    return None if creator is None else str(creator.value).strip()


def to_full_json(dataset: Dataset, dictionary: TagDictionary) -> JsonObject:
    """The `/instances/{id}/tags` rendering."""
    result: JsonObject = {}
    for element in dataset:
        creator = _private_creator(dataset, element.tag)
        entry: JsonObject = {"Name": dictionary.name_of(element.tag, creator)}
        if creator is not None:
            entry["PrivateCreator"] = creator
        if element.VR == "SQ":
            entry["Type"] = "Sequence"
            entry["Value"] = [to_full_json(item, dictionary) for item in element.value]
        elif element.VR in BINARY_VRS or element.tag == PIXEL_DATA:
            entry["Type"] = "Null"
            entry["Value"] = None
        else:
            text = element_text(element)
            if len(text) > MAXIMUM_STRING_LENGTH:
                entry["Type"] = "TooLong"
                entry["Value"] = None
            else:
                entry["Type"] = "String"
                entry["Value"] = text
        result[tag_key(element.tag)] = dict(sorted(entry.items()))
    return result


def simplify(full_json: JsonObject) -> JsonObject:
    """The `?simplify` rendering: names as keys; a later tag wins a name clash, as in Orthanc."""
    result: JsonObject = {}
    for entry in full_json.values():
        result[entry["Name"]] = _simplified_value(entry)
    return dict(sorted(result.items()))


def shorten(full_json: JsonObject) -> JsonObject:
    """The `?short` rendering: tags as keys."""
    return {key: _shortened_value(entry) for key, entry in full_json.items()}


def _simplified_value(entry: JsonObject) -> Any:
    if entry["Type"] == "Sequence":
        return [simplify(item) for item in entry["Value"]]
    return entry["Value"]


def _shortened_value(entry: JsonObject) -> Any:
    if entry["Type"] == "Sequence":
        return [shorten(item) for item in entry["Value"]]
    return entry["Value"]


def main_dicom_tags(dataset: Dataset, level: int) -> dict[str, str]:
    """Main DICOM tags of `level` found in the dataset, as Orthanc indexes them."""
    tags: dict[str, str] = {}
    for keyword in MAIN_DICOM_TAGS[level]:
        if keyword not in dataset or dataset[keyword].VR == "SQ":
            continue
        element = dataset[keyword]
        text = element_text(element)
        if len(text) <= MAXIMUM_STRING_LENGTH:  # Orthanc does not index longer values
            tags[keyword] = text
    return dict(sorted(tags.items()))
