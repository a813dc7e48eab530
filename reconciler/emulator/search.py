"""SearchImageSets: filters (EQUAL / BETWEEN), sort and pagination over the index columns."""

from __future__ import annotations

import json
from typing import Any

from reconciler.emulator.exceptions import ResourceNotFoundException, ValidationException
from reconciler.emulator.imagesets import ImageSets, Params, Result, storage_tier
from reconciler.emulator.paging import Keyset

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


def _filter_sql(
    search_filter: dict[str, Any], paging: tuple[str, bool] | None
) -> tuple[str, list[Any]]:
    """The SQL of one filter and its arguments. ``paging`` is the sort column and its
    direction when a page past the first is asked for: a BETWEEN on that column leaves
    its bound on the cursor's side to a plain check (``+column`` keeps it out of the
    index), so the index range starts at the cursor, not at the end of the window."""
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
        column = _COLUMNS[field]
        if paging is None or paging[0] != column:
            return f"{column} BETWEEN ? AND ?", operands
        low, high = ("", "+") if paging[1] else ("+", "")
        return f"{low}{column} >= ? AND {high}{column} <= ?", operands
    raise ValidationException(f"unknown search operator {operator!r}")


class Search(ImageSets):
    def search_image_sets(self, p: Params) -> Result:
        criteria: dict[str, Any] = p.get("searchCriteria") or {}
        context = json.dumps([p["datastoreId"], criteria], sort_keys=True, default=str)
        keyset = Keyset.of(p, default_size=50, context=context)
        sort = criteria.get("sort")
        column, descending = "updated_at", True
        if sort:
            column = _SORT_COLUMNS[sort["sortField"]]
            descending = sort["sortOrder"] != "ASC"
        clauses = ["datastore_id = ?", "state != 'DELETED'", "workflow_status != 'DELETING'"]
        args: list[Any] = [p["datastoreId"]]
        filters = criteria.get("filters") or []
        if len(filters) > 2:
            raise ValidationException("SearchImageSets accepts at most 2 filters")
        paging = (column, descending) if keyset.after is not None else None
        for search_filter in filters:
            sql, operands = _filter_sql(search_filter, paging)
            clauses.append(sql)
            args.extend(operands)
        after, after_args = keyset.condition((column, "id"), descending=descending)
        order = "DESC" if descending else "ASC"
        with self.reading() as conn:
            if not conn.execute(
                "SELECT 1 FROM datastores WHERE id=?", (p["datastoreId"],)
            ).fetchone():
                raise ResourceNotFoundException(f"Datastore {p['datastoreId']} not found")
            rows = conn.execute(
                f"SELECT id, latest_version, created_at, updated_at, dicom_tags, is_primary,"
                f" last_accessed_at, {column} AS sort_key FROM image_sets"
                f" WHERE {' AND '.join(clauses)}"
                f" AND {after} ORDER BY {column} {order}, id {order} LIMIT ?",
                [*args, *after_args, keyset.limit],
            ).fetchall()
        chosen, token = keyset.split(rows, lambda row: (row["sort_key"], row["id"]))
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
