"""The seven modes: one request type and one operation per mode (see base.py for the steps)."""

from __future__ import annotations

from .base import InvalidRequest, Operation, Prepared, RequestBase
from .edit import EditOperation, EditRequest
from .generate import GenerateOperation, GenerateRequest
from .inpaint import InpaintOperation, InpaintRequest
from .multiref import MultiRefOperation, MultiRefRequest
from .outpaint import OutpaintOperation, OutpaintRequest
from .region_edit import RegionEditOperation, RegionEditRequest
from .remove_background import RemoveBackgroundOperation, RemoveBackgroundRequest

OPERATIONS: dict[str, Operation] = {
    op.mode: op
    for op in (
        GenerateOperation(),
        EditOperation(),
        MultiRefOperation(),
        RemoveBackgroundOperation(),
        RegionEditOperation(),
        InpaintOperation(),
        OutpaintOperation(),
    )
}

Request = (
    GenerateRequest
    | EditRequest
    | MultiRefRequest
    | RemoveBackgroundRequest
    | RegionEditRequest
    | InpaintRequest
    | OutpaintRequest
)


def operation_for(request: RequestBase) -> Operation:
    """The operation of a request's mode (KeyError for an object that is not a request)."""
    return OPERATIONS[request.mode]


__all__ = [
    "OPERATIONS",
    "EditRequest",
    "GenerateRequest",
    "InpaintRequest",
    "InvalidRequest",
    "MultiRefRequest",
    "Operation",
    "OutpaintRequest",
    "Prepared",
    "RegionEditRequest",
    "RemoveBackgroundRequest",
    "Request",
    "RequestBase",
    "operation_for",
]
