"""Which attributes hold PHI: the values plans, journals and logs mask by default.

The set comes from DICOM PS3.15 Annex E, the *Basic Application Level Confidentiality
Profile* (Table E.1-1, the 2026c edition): every attribute a de-identifier must remove,
empty, replace or clean because it may identify the patient or the people and places
of their care. :data:`BASIC_PROFILE` lists the keywords of those attributes that
pydicom's data dictionary knows (``tests/reliability/test_reliability_phi.py`` checks
each one; attributes newer than pydicom's dictionary, and the repeating groups of
overlays and curves, have no keyword and so cannot appear as one in a metadata
document's key).

Masked (:data:`PHI_KEYWORDS`) is the profile minus :data:`SHOWN`: attributes the
profile lists but that plans must show, each for the reason the profile's own options
give for keeping them (PS3.15 E.3):

- UIDs (*Retain UIDs Option*): they address series and instances in every plan path,
  and selectors name them; masking the value next to a path that shows it hides
  nothing;
- the dates and times of the study, series, acquisition and content (*Retain
  Longitudinal Temporal Information with Full Dates Option*): manifests correct them;
  the patient's own dates (birth, last menstrual date) and the visit's stay masked;
- the technical descriptions of the study and series (*Clean Descriptors Option*):
  what most manifests correct; masking them would hide every plan.

Private tags are PHI too (:func:`is_phi`): nothing says what a vendor put in them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from reconciler.dicom.dictionary import is_private_tag, lookup

# PS3.15 Table E.1-1, Basic Profile column: keywords of the attributes pydicom knows.
BASIC_PROFILE = frozenset(
    {
        "AccessionNumber", "AcquisitionComments", "AcquisitionContextDescription",
        "AcquisitionContextSequence", "AcquisitionDate", "AcquisitionDateTime",
        "AcquisitionDeviceProcessingDescription", "AcquisitionFieldOfViewLabel",
        "AcquisitionProtocolDescription", "AcquisitionTime", "AcquisitionUID",
        "ActualHumanPerformersSequence", "AdditionalPatientHistory", "AddressTrial", "AdmissionID",
        "AdmittingDate", "AdmittingDiagnosesCodeSequence", "AdmittingDiagnosesDescription",
        "AdmittingTime", "AffectedSOPInstanceUID", "Allergies", "AnnotationGroupDescription",
        "AnnotationGroupLabel", "AnnotationGroupUID", "ApprovalStatusDateTime", "Arbitrary",
        "AssertionDateTime", "AssertionExpirationDateTime", "AttributeModificationDateTime",
        "AuthorObserverSequence", "BarcodeValue", "BeamDescription", "BeamHoldTransitionDateTime",
        "BolusDescription", "BranchOfService", "CalibrationDate", "CalibrationDateTime",
        "CalibrationTime", "CameraOwnerName", "CassetteID", "CertificateOfSigner",
        "CertifiedTimestamp", "ChannelDerivationDescription", "ChannelLabel",
        "ClinicalTrialCoordinatingCenterName",
        "ClinicalTrialProtocolEthicsCommitteeApprovalNumber",
        "ClinicalTrialProtocolEthicsCommitteeName", "ClinicalTrialProtocolID",
        "ClinicalTrialProtocolName", "ClinicalTrialSeriesDescription", "ClinicalTrialSeriesID",
        "ClinicalTrialSiteID", "ClinicalTrialSiteName", "ClinicalTrialSponsorName",
        "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID",
        "ClinicalTrialTimePointDescription", "ClinicalTrialTimePointID", "CommentsOnRadiationDose",
        "CommentsOnThePerformedProcedureStep", "CompensatorDescription", "ConcatenationUID",
        "ConceptualVolumeCombinationDescription", "ConceptualVolumeDescription",
        "ConceptualVolumeUID", "ConfidentialityConstraintOnPatientDataDescription",
        "ConstituentConceptualVolumeUID", "ConsultingPhysicianIdentificationSequence",
        "ConsultingPhysicianName", "ContainerComponentID", "ContainerDescription",
        "ContainerIdentifier", "ContentCreatorIdentificationCodeSequence", "ContentCreatorName",
        "ContentDate", "ContentSequence", "ContentTime", "ContextGroupLocalVersion",
        "ContextGroupVersion", "ContrastBolusAgent", "ContrastBolusStartTime",
        "ContrastBolusStopTime", "ContributionDateTime", "ContributionDescription",
        "CountryOfResidence", "CreationDate", "CreationTime", "CurrentObserverTrial",
        "CurrentPatientLocation", "CurveDate", "CurveTime", "CustodialOrganizationSequence",
        "DataSetTrailingPadding", "Date", "DateOfDocumentOrVerbalTransactionTrial",
        "DateOfInstallation", "DateOfLastCalibration", "DateOfLastDetectorCalibration",
        "DateOfManufacture", "DateOfSecondaryCapture", "DateTime", "DateTimeOfLastCalibration",
        "DecayCorrectionDateTime", "DecompositionDescription", "DerivationDescription",
        "DestinationAE", "DetectorID", "DeviceAlternateIdentifier", "DeviceDescription",
        "DeviceLabel", "DeviceSerialNumber", "DeviceSettingDescription", "DeviceUID",
        "DigitalSignatureDateTime", "DigitalSignatureUID", "DigitalSignaturesSequence",
        "DimensionOrganizationUID", "DischargeDate", "DischargeDiagnosisDescription",
        "DischargeTime", "DisplacementReferenceLabel", "DistributionAddress", "DistributionName",
        "DoseReferenceDescription", "DoseReferenceUID", "DosimetricObjectiveUID",
        "EffectiveDateTime", "EncapsulatedDocument", "EndAcquisitionDateTime", "EntityDescription",
        "EntityLabel", "EntityLongLabel", "EntityName", "EquipmentFrameOfReferenceDescription",
        "EthicsCommitteeApprovalEffectivenessEndDate",
        "EthicsCommitteeApprovalEffectivenessStartDate", "EthnicGroup", "EthnicGroupCodeSequence",
        "ExclusionStartDateTime", "ExpectedCompletionDateTime", "FailedSOPInstanceUIDList",
        "FiducialUID", "FillerOrderNumberImagingServiceRequest", "FilterLookupTableDescription",
        "FindingsGroupRecordingDateTrial", "FindingsGroupRecordingTimeTrial", "FirstTreatmentDate",
        "FixationDeviceDescription", "FlowIdentifier", "FlowIdentifierSequence",
        "FractionGroupDescription", "FractionationNotes", "FrameAcquisitionDateTime",
        "FrameComments", "FrameOfReferenceUID", "FrameOriginTimestamp", "FrameReferenceDateTime",
        "FunctionalSyncPulse", "GPSAltitude", "GPSAltitudeRef", "GPSAreaInformation", "GPSDOP",
        "GPSDateStamp", "GPSDestBearing", "GPSDestBearingRef", "GPSDestDistance",
        "GPSDestDistanceRef", "GPSDestLatitude", "GPSDestLatitudeRef", "GPSDestLongitude",
        "GPSDestLongitudeRef", "GPSDifferential", "GPSImgDirection", "GPSImgDirectionRef",
        "GPSLatitude", "GPSLatitudeRef", "GPSLongitude", "GPSLongitudeRef", "GPSMapDatum",
        "GPSMeasureMode", "GPSProcessingMethod", "GPSSatellites", "GPSSpeed", "GPSSpeedRef",
        "GPSStatus", "GPSTimeStamp", "GPSTrack", "GPSTrackRef", "GPSVersionID", "GantryID",
        "GeneratorID", "GraphicAnnotationSequence", "HL7DocumentEffectiveTime",
        "HangingProtocolCreationDateTime", "HardcopyCreationDeviceID", "HumanPerformerName",
        "HumanPerformerOrganization", "IconImageSequence", "IdentifyingComments", "ImageComments",
        "ImagePresentationComments", "ImagingServiceRequestComments",
        "ImpedanceMeasurementDateTime", "Impressions", "InformationIssueDateTime",
        "InstanceCoercionDateTime", "InstanceCreationDate", "InstanceCreationTime",
        "InstanceCreatorUID", "InstanceOriginStatus", "InstitutionAddress",
        "InstitutionCodeSequence", "InstitutionName", "InstitutionalDepartmentName",
        "InstitutionalDepartmentTypeCodeSequence", "InstructionPerformedDateTime",
        "InsurancePlanIdentification", "IntendedFractionStartTime", "IntendedPhaseEndDate",
        "IntendedPhaseStartDate", "IntendedRecipientsOfResultsIdentificationSequence",
        "InterlockDateTime", "InterlockDescription", "InterlockOriginDescription",
        "InterpretationApprovalDate", "InterpretationApprovalTime",
        "InterpretationApproverSequence", "InterpretationAuthor",
        "InterpretationDiagnosisDescription", "InterpretationID", "InterpretationIDIssuer",
        "InterpretationRecordedDate", "InterpretationRecordedTime", "InterpretationRecorder",
        "InterpretationText", "InterpretationTranscriber", "InterpretationTranscriptionDate",
        "InterpretationTranscriptionTime", "InterventionDrugStartTime", "InterventionDrugStopTime",
        "IrradiationEventUID", "IssueDateOfImagingServiceRequest",
        "IssueTimeOfImagingServiceRequest", "IssuerOfAdmissionID", "IssuerOfAdmissionIDSequence",
        "IssuerOfClinicalTrialProtocolID", "IssuerOfClinicalTrialSeriesID",
        "IssuerOfClinicalTrialSiteID", "IssuerOfClinicalTrialSubjectID",
        "IssuerOfClinicalTrialSubjectReadingID", "IssuerOfClinicalTrialTimePointID",
        "IssuerOfPatientID", "IssuerOfServiceEpisodeID", "IssuerOfServiceEpisodeIDSequence",
        "IssuerOfTheContainerIdentifierSequence", "IssuerOfTheSpecimenIdentifierSequence",
        "LabelText", "LargePaletteColorLookupTableUID", "LastMenstrualDate", "LensMake",
        "LensModel", "LensSerialNumber", "LensSpecification", "LongDeviceDescription", "MAC",
        "MakerNote", "ManufacturerDeviceClassUID", "ManufacturerDeviceIdentifier",
        "MediaStorageSOPInstanceUID", "MedicalAlerts", "MedicalRecordLocator", "MilitaryRank",
        "ModifiedAttributesSequence", "ModifiedImageDate", "ModifiedImageDescription",
        "ModifiedImageTime", "ModifyingDeviceID", "ModifyingSystem", "MostRecentTreatmentDate",
        "MultienergyAcquisitionDescription", "MultiplexGroupLabel", "MultiplexGroupUID",
        "NameOfPhysiciansReadingStudy", "NamesOfIntendedRecipientsOfResults", "NetworkID",
        "NonconformingDataElementValue", "NonconformingModifiedAttributesSequence",
        "ObservationDateTime", "ObservationDateTrial", "ObservationStartDateTime",
        "ObservationSubjectUIDTrial", "ObservationTimeTrial", "ObservationUID", "Occupation",
        "OperatorIdentificationSequence", "OperatorsName", "OrderCallbackPhoneNumber",
        "OrderCallbackTelecomInformation", "OrderEnteredBy", "OrderEntererLocation",
        "OriginalAttributesSequence", "Originator", "OtherClinicalTrialProtocolIDsSequence",
        "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "OverlayDate",
        "OverlayTime", "OverrideDateTime", "PaletteColorLookupTableUID", "ParticipantSequence",
        "ParticipationDateTime", "PatientAddress", "PatientAge", "PatientBirthDate",
        "PatientBirthName", "PatientBirthTime", "PatientComments", "PatientID",
        "PatientInstitutionResidence", "PatientInsurancePlanCodeSequence",
        "PatientMotherBirthName", "PatientName", "PatientPrimaryLanguageCodeSequence",
        "PatientPrimaryLanguageModifierCodeSequence", "PatientReligiousPreference",
        "PatientSetupPhotoDescription", "PatientSetupUID", "PatientSex", "PatientSexNeutered",
        "PatientSize", "PatientState", "PatientTelecomInformation", "PatientTelephoneNumbers",
        "PatientTransportArrangements", "PatientTreatmentPreparationMethodDescription",
        "PatientTreatmentPreparationProcedureParameterDescription", "PatientWeight",
        "PerformedLocation", "PerformedProcedureStepDescription", "PerformedProcedureStepEndDate",
        "PerformedProcedureStepEndDateTime", "PerformedProcedureStepEndTime",
        "PerformedProcedureStepID", "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartDateTime", "PerformedProcedureStepStartTime",
        "PerformedStationAETitle", "PerformedStationGeographicLocationCodeSequence",
        "PerformedStationName", "PerformedStationNameCodeSequence",
        "PerformingPhysicianIdentificationSequence", "PerformingPhysicianName", "PersonAddress",
        "PersonIdentificationCodeSequence", "PersonName", "PersonTelecomInformation",
        "PersonTelephoneNumbers", "PhysicianApprovingInterpretation", "PhysiciansOfRecord",
        "PhysiciansOfRecordIdentificationSequence", "PhysiciansReadingStudyIdentificationSequence",
        "PlacerOrderNumberImagingServiceRequest", "PlateID",
        "PositionAcquisitionTemplateDescription", "PositionAcquisitionTemplateName",
        "PreMedication", "PregnancyStatus", "PrescriptionDescription", "PrescriptionNotes",
        "PrescriptionNotesSequence", "PresentationCreationDate", "PresentationCreationTime",
        "PresentationDisplayCollectionUID", "PresentationSequenceCollectionUID",
        "PriorTreatmentDoseDescription", "ProcedureStepCancellationDateTime",
        "ProductExpirationDateTime", "ProtocolName", "PyramidDescription", "PyramidLabel",
        "PyramidUID", "ROICreatorSequence", "ROIDateTime", "ROIDescription",
        "ROIGenerationDescription", "ROIInterpreter", "ROIInterpreterSequence", "ROIName",
        "ROIObservationDateTime", "ROIObservationDescription", "ROIObservationLabel",
        "RTAccessoryDeviceSlotID", "RTAccessoryHolderSlotID", "RTPhysicianIntentNarrative",
        "RTPlanDate", "RTPlanDescription", "RTPlanLabel", "RTPlanName", "RTPlanTime",
        "RTPrescriptionLabel", "RTToleranceSetLabel", "RTTreatmentApproachLabel",
        "RTTreatmentPhaseUID", "RadiationDoseIdentificationLabel",
        "RadiationDoseInVivoMeasurementLabel", "RadiationGenerationModeDescription",
        "RadiationGenerationModeLabel", "RadiopharmaceuticalStartDateTime",
        "RadiopharmaceuticalStartTime", "RadiopharmaceuticalStopDateTime",
        "RadiopharmaceuticalStopTime", "ReasonForOmissionDescription",
        "ReasonForRequestedProcedureCodeSequence", "ReasonForStudy", "ReasonForSuperseding",
        "ReasonForTheAttributeModification", "ReasonForTheImagingServiceRequest",
        "ReasonForTheRequestedProcedure", "ReasonForVisit", "ReasonForVisitCodeSequence",
        "ReceivingAE", "RecordedRTControlPointDateTime", "ReferencedConceptualVolumeUID",
        "ReferencedDateTime", "ReferencedDigitalSignatureSequence", "ReferencedDoseReferenceUID",
        "ReferencedDosimetricObjectiveUID", "ReferencedFiducialsUID",
        "ReferencedFrameOfReferenceUID", "ReferencedImageSequence",
        "ReferencedObservationUIDTrial", "ReferencedPatientAliasSequence",
        "ReferencedPatientPhotoSequence", "ReferencedPatientSequence",
        "ReferencedPerformedProcedureStepSequence", "ReferencedSOPInstanceMACSequence",
        "ReferencedSOPInstanceUID", "ReferencedSOPInstanceUIDInFile", "ReferencedStudySequence",
        "ReferencedTreatmentPositionGroupUID", "ReferringPhysicianAddress",
        "ReferringPhysicianIdentificationSequence", "ReferringPhysicianName",
        "ReferringPhysicianTelephoneNumbers", "RegionOfResidence", "RelatedFrameOfReferenceUID",
        "RequestAttributesSequence", "RequestedContrastAgent", "RequestedProcedureComments",
        "RequestedProcedureDescription", "RequestedProcedureID", "RequestedProcedureLocation",
        "RequestedSOPInstanceUID", "RequestedSeriesDescription", "RequestingAE",
        "RequestingPhysician", "RequestingService",
        "RespiratoryMotionCompensationTechniqueDescription", "ResponsibleOrganization",
        "ResponsiblePerson", "ResultsComments", "ResultsDistributionListSequence", "ResultsID",
        "ResultsIDIssuer", "RetrieveAETitle", "ReviewDate", "ReviewTime", "ReviewerName",
        "SOPAuthorizationDateTime", "SOPInstanceUID", "SafePositionExitDate",
        "SafePositionExitTime", "SafePositionReturnDate", "SafePositionReturnTime",
        "ScheduledAdmissionDate", "ScheduledAdmissionTime", "ScheduledDischargeDate",
        "ScheduledDischargeTime", "ScheduledHumanPerformersSequence",
        "ScheduledPatientInstitutionResidence",
        "ScheduledPerformingPhysicianIdentificationSequence", "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepDescription", "ScheduledProcedureStepEndDate",
        "ScheduledProcedureStepEndTime", "ScheduledProcedureStepExpirationDateTime",
        "ScheduledProcedureStepID", "ScheduledProcedureStepLocation",
        "ScheduledProcedureStepModificationDateTime", "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartDateTime", "ScheduledProcedureStepStartTime",
        "ScheduledStationAETitle", "ScheduledStationGeographicLocationCodeSequence",
        "ScheduledStationName", "ScheduledStationNameCodeSequence", "ScheduledStudyLocation",
        "ScheduledStudyLocationAETitle", "ScheduledStudyStartDate", "ScheduledStudyStartTime",
        "ScheduledStudyStopDate", "ScheduledStudyStopTime", "SecondaryCaptureDeviceID",
        "SelectorAEValue", "SelectorASValue", "SelectorDAValue", "SelectorDTValue",
        "SelectorLOValue", "SelectorLTValue", "SelectorOBValue", "SelectorPNValue",
        "SelectorSHValue", "SelectorSTValue", "SelectorTMValue", "SelectorUNValue",
        "SelectorURValue", "SelectorUTValue", "SeriesDate", "SeriesDescription",
        "SeriesInstanceUID", "SeriesTime", "ServiceEpisodeDescription", "ServiceEpisodeID",
        "SetupTechniqueDescription", "ShieldingDeviceDescription", "SlideIdentifier",
        "SmokingStatus", "SourceConceptualVolumeUID", "SourceEndDateTime",
        "SourceFrameOfReferenceUID", "SourceIdentifier", "SourceImageSequence",
        "SourceManufacturer", "SourceOfPreviousValues", "SourceSerialNumber",
        "SourceStartDateTime", "SourceStrengthReferenceDate", "SourceStrengthReferenceTime",
        "SpecialNeeds", "SpecimenAccessionNumber", "SpecimenDetailedDescription",
        "SpecimenIdentifier", "SpecimenPreparationSequence", "SpecimenShortDescription",
        "SpecimenUID", "StartAcquisitionDateTime", "StationAETitle", "StationName",
        "StorageMediaFileSetUID", "StructureSetDate", "StructureSetDescription",
        "StructureSetLabel", "StructureSetName", "StructureSetTime", "StudyArrivalDate",
        "StudyArrivalTime", "StudyComments", "StudyCompletionDate", "StudyCompletionTime",
        "StudyDate", "StudyDescription", "StudyID", "StudyIDIssuer", "StudyInstanceUID",
        "StudyReadDate", "StudyReadTime", "StudyTime", "StudyVerifiedDate", "StudyVerifiedTime",
        "SubstanceAdministrationDateTime", "SynchronizationFrameOfReferenceUID",
        "TableTopPositionAlignmentUID", "TargetUID", "TelephoneNumberTrial",
        "TemplateExtensionCreatorUID", "TemplateExtensionOrganizationUID", "TemplateLocalVersion",
        "TemplateVersion", "TextComments", "TextString", "Time",
        "TimeOfDocumentCreationOrVerbalTransactionTrial", "TimeOfLastCalibration",
        "TimeOfLastDetectorCalibration", "TimeOfSecondaryCapture", "TimezoneOffsetFromUTC",
        "TopicAuthor", "TopicKeywords", "TopicSubject", "TopicTitle", "TrackingUID",
        "TransactionUID", "TransducerIdentificationSequence", "TreatmentControlPointDate",
        "TreatmentControlPointTime", "TreatmentDate", "TreatmentMachineName",
        "TreatmentPositionGroupLabel", "TreatmentPositionGroupUID", "TreatmentSessionUID",
        "TreatmentSite", "TreatmentSites", "TreatmentTechniqueNotes", "TreatmentTime",
        "TreatmentToleranceViolationDateTime", "TreatmentToleranceViolationDescription",
        "UDISequence", "UID", "UnformattedTextValue", "UniqueDeviceIdentifier", "UserContentLabel",
        "UserContentLongLabel", "VerbalSourceIdentifierCodeSequenceTrial", "VerbalSourceTrial",
        "VerificationDateTime", "VerifyingObserverIdentificationCodeSequence",
        "VerifyingObserverName", "VerifyingObserverSequence", "VerifyingOrganization",
        "VisitComments", "WaveformAnnotationSequence", "WaveformFilterDescription",
        "XRayDetectorID", "XRayDetectorLabel", "XRaySourceID",
    }
)  # fmt: skip

_DATES = (
    "study, series, acquisition and content dates and times (Retain Longitudinal "
    "Temporal Information with Full Dates Option): manifests correct them"
)
_DESCRIPTIONS = "technical descriptions (Clean Descriptors Option): what most manifests correct"

# Profile attributes shown anyway, and why (UIDs are added by _uids(), see the docstring).
SHOWN_BY_CHOICE: dict[str, str] = {
    **dict.fromkeys(
        ("StudyDate", "StudyTime", "SeriesDate", "SeriesTime", "AcquisitionDate",
         "AcquisitionTime", "AcquisitionDateTime", "ContentDate", "ContentTime",
         "InstanceCreationDate", "InstanceCreationTime"),
        _DATES,
    ),
    **dict.fromkeys(
        ("StudyDescription", "SeriesDescription", "ProtocolName", "ImageComments",
         "DerivationDescription"),
        _DESCRIPTIONS,
    ),
}  # fmt: skip


def _vr(keyword: str) -> str | None:
    attribute = lookup(keyword)
    return None if attribute is None else attribute.vr


def _uids() -> frozenset[str]:
    return frozenset(k for k in BASIC_PROFILE if _vr(k) == "UI")


# Every profile attribute shown in plans: the UIDs and the choices above.
SHOWN = _uids() | frozenset(SHOWN_BY_CHOICE)

# The attributes whose values are masked unless --show-phi (DESIGN.md, "PHI").
PHI_KEYWORDS = BASIC_PROFILE - SHOWN


MASK = "***"  # what a masked PHI value reads as, in every rendering


def is_phi(key: str) -> bool:
    """True for a PHI attribute's keyword, and for any private tag (8 hex digits, odd
    group)."""
    return key in PHI_KEYWORDS or is_private_tag(key)


__all__ = ["BASIC_PROFILE", "MASK", "PHI_KEYWORDS", "SHOWN", "SHOWN_BY_CHOICE", "is_phi"]


def value_strings(value: Any) -> tuple[str, ...]:
    """The spellings of ``value`` a message may quote: each text and number, the JSON
    of a list or mapping, and the rewrites a fix hint suggests (``1970-01-01`` →
    ``19700101``, ``14:30`` → ``1430``, upper case). What :func:`mask_values` hides."""
    found: set[str] = set()

    def walk(item: Any) -> None:
        if isinstance(item, str):
            found.update({item, item.replace("-", ""), item.replace(":", ""), item.upper()})
        elif isinstance(item, bool) or item is None:
            return
        elif isinstance(item, int | float):
            found.add(str(item))
        elif isinstance(item, list | tuple):
            found.add(json.dumps(list(item), ensure_ascii=False))
            for part in item:
                walk(part)
        elif isinstance(item, dict):
            found.add(json.dumps(item, ensure_ascii=False, sort_keys=True))
            for part in item.values():
                walk(part)

    walk(value)
    return tuple(sorted((v for v in found if v.strip()), key=len, reverse=True))


def mask_values(text: str, values: tuple[str, ...]) -> str:
    """``text`` with every occurrence of ``values`` (longest first, whole tokens) as
    :data:`MASK`: how a message that quotes a PHI value reads in CI."""
    for value in sorted(set(values), key=len, reverse=True):
        if value.strip():
            text = re.sub(rf"(?<![\w]){re.escape(value)}(?![\w])", MASK, text)
    return text


# force_reason() quotes the offending value when a date is no calendar date; the
# planner repeats that reason in problem messages. Masked, the reason keeps its words.
_VALUE_IN_REASON = re.compile(
    r"(?P<lead>the value of (?P<key>\S+) does not fit its VR \w+: (?:value \d+: )?)"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
)


def mask_reason(text: str) -> str:
    """A force reason or plan problem without the PHI value it may quote
    (:func:`reconciler.dicom.rules.force_reason` quotes a date that is no date)."""

    def hide(match: re.Match[str]) -> str:
        return match["lead"] + MASK if is_phi(match["key"]) else match[0]

    return _VALUE_IN_REASON.sub(hide, text)


# "…: patientId=<value> matches no primary image set …" (engine.resolve.Unresolved):
# the selectors by patient ID and accession number are PHI.
_PHI_SELECTOR = re.compile(r"\b(?P<kind>patientId|accessionNumber)=.*?(?= matches no |$)")


def mask_unresolved(message: str) -> str:
    """An unresolved selector's message with a PHI selector's value masked."""
    return _PHI_SELECTOR.sub(rf"\g<kind>={MASK}", message)


# What a service message may quote: text in quotes, JSON, or "<PHI keyword>: value".
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`|\{[^{}]*\}|\[[^\[\]]*\]")
_KEYED = re.compile(
    r"\b(?P<key>[A-Z][A-Za-z]+|[0-9A-Fa-f]{8})(?P<sep>\s*(?:[:=]|\bis\b|\bvalue\b)\s*)"
    r"(?P<value>[^,;)]+)"
)


def mask_service_message(message: str) -> str:
    """HealthImaging's message of an UPDATE_FAILED or COPY_FAILED version, without what
    may be a value: it is printed in CI and journaled, and a service message may echo
    the values it refused. Quoted text and JSON become ***, and so does whatever follows
    a PHI keyword ("PatientName: DOE^JANE"). ``reconciler history --show-phi`` shows the
    service's own words."""
    masked = _QUOTED.sub(MASK, message)

    def hide(match: re.Match[str]) -> str:
        if not is_phi(match["key"]):
            return match[0]
        return match["key"] + match["sep"] + MASK

    return _KEYED.sub(hide, masked)
