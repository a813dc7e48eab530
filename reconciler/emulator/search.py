"""SearchImageSets: filters (EQUAL / BETWEEN), sort and pagination over the index columns."""

from __future__ import annotations

import json
from typing import Any

from reconciler.emulator.exceptions import ResourceNotFoundException, ValidationException
from reconciler.emulator.imagesets import ImageSets, Params, Result, storage_tier
from reconciler.emulator.paging import page

# Union member of SearchByAttributeValue → SQL expression it filters on.
_COLUMNS = {
    "DICOMPatientId": "patient_id",
    "DICOMAccessionNumber": "accession_number",
    "DICOMStudyId": "study_id",
    "DICOMStudyInstanceUID": "study_uid",
    "DICOMStudyDateAndTime": "study_date_time",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "isPrimary": "is_primary",
}
_RANGE_FIELDS = {"createdAt", "updatedAt", "DICOMStudyDateAndTime"}
_SORT_COLUMNS = {
    "updatedAt": "updated_at",
    "createdAt": "created_at",
    "DICOMStudyDateAndTime": "study_date_time",
}


def _operand(field: str, value: Any) -> Any:
    if field == "DICOMStudyDateAndTime":
        date = value.get("DICOMStudyDate", "")
        time = (value.get("DICOMStudyTime") or "").split(".")[0]
        return date + time.ljust(6, "0")
    if field == "isPrimary":
        return int(bool(value))
    return value


def _filter_sql(search_filter: dict[str, Any]) -> tuple[str, list[Any]]:
    operator = search_filter.get("operator")
    values = search_filter.get("values") or []
    fields = set()
    operands = []
    for item in values:
        if not isinstance(item, dict) or len(item) != 1:
            raise ValidationException("each search value sets exactly one attribute")
        ((field, value),) = item.items()
        fields.add(field)
        operands.append(_operand(field, value))
    if len(fields) != 1:
        raise ValidationException("the values of one search filter must name the same attribute")
    field = fields.pop()
    if operator == "EQUAL":
        if len(operands) != 1:
            raise ValidationException("EQUAL takes exactly one value")
        if field == "DICOMSeriesInstanceUID":
            return "id IN (SELECT image_set_id FROM series WHERE series_uid = ?)", operands
        return f"{_COLUMNS[field]} = ?", operands
    if operator == "BETWEEN":
        if field not in _RANGE_FIELDS:
            raise ValidationException(
                f"BETWEEN is allowed on createdAt, updatedAt and DICOMStudyDateAndTime, not {field}"
            )
        if len(operands) != 2:
            raise ValidationException("BETWEEN takes exactly two values")
        return f"{_COLUMNS[field]} BETWEEN ? AND ?", operands
    raise ValidationException(f"unknown search operator {operator!r}")


class Search(ImageSets):
    def search_image_sets(self, p: Params) -> Result:
        criteria: dict[str, Any] = p.get("searchCriteria") or {}
        clauses = ["datastore_id = ?", "state != 'DELETED'", "workflow_status != 'DELETING'"]
        args: list[Any] = [p["datastoreId"]]
        filters = criteria.get("filters") or []
        if len(filters) > 2:
            raise ValidationException("SearchImageSets accepts at most 2 filters")
        for search_filter in filters:
            sql, operands = _filter_sql(search_filter)
            clauses.append(sql)
            args.extend(operands)
        sort = criteria.get("sort")
        column, order = "updated_at", "DESC"
        if sort:
            column = _SORT_COLUMNS[sort["sortField"]]
            order = "ASC" if sort["sortOrder"] == "ASC" else "DESC"
        with self.reading() as conn:
            if not conn.execute(
                "SELECT 1 FROM datastores WHERE id=?", (p["datastoreId"],)
            ).fetchone():
                raise ResourceNotFoundException(f"Datastore {p['datastoreId']} not found")
            rows = conn.execute(
                f"SELECT id, latest_version, created_at, updated_at, dicom_tags, is_primary,"
                f" last_accessed_at"
                f" FROM image_sets WHERE {' AND '.join(clauses)} ORDER BY {column} {order}, id",
                args,
            ).fetchall()
        context = json.dumps([p["datastoreId"], criteria], sort_keys=True, default=str)
        chosen, token = page(rows, p, default_size=50, context=context)
        now = self.clock()
        summaries = [
            {
                "imageSetId": row["id"],
                "version": row["latest_version"],
                "createdAt": row["created_at"],
                "updatedAt": row["updated_at"],
                "DICOMTags": json.loads(row["dicom_tags"]),
                "isPrimary": bool(row["is_primary"]),
                "lastAccessedAt": self.last_accessed(row),
                "storageTier": storage_tier(self.last_accessed(row), now),
            }
            for row in chosen
        ]
        return {"imageSetsMetadataSummaries": summaries, "sort": sort, "nextToken": token}
