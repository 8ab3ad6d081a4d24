"""Every write to a patient's record goes through here.

One function per clinical act, the acting user passed explicitly (`by=`),
re-exported from the modules that hold them: `records` (the clinical acts),
`lab_results` (results from lab interfaces), `bulk` (imports), `escalation`
(high results nobody acknowledged in time, e-mailed), `backlog` (the results
from before go-live acknowledged at once), `conflicts` (edits
based on an old version) and `inputs` (what callers hand over). So
`from patients import services; services.record_draw(...)` is the way in.
"""

from __future__ import annotations

from patients.services import teams
from patients.services.backlog import Backlog, acknowledge_backlog, backlog_before
from patients.services.bulk import import_draws
from patients.services.conflicts import (
    ANY_VERSION,
    ConflictError,
    Version,
    VersionRequired,
    describe_edit,
)
from patients.services.escalation import Escalation, escalate_flags
from patients.services.inputs import DrawInput, Edit, LabResultInput, SentIdentity, split_edit
from patients.services.lab_results import (
    LAB_COMPLETED,
    LAB_CORRECTED,
    LAB_RECORDED,
    LAB_UNCHANGED,
    LabFieldError,
    LabOutcome,
    LabResultsRefused,
    record_lab_results,
)
from patients.services.records import (
    CHANGE_REASON_MAX_LENGTH,
    IMAGING_IN_ERROR,
    MAX_CYCLES_PLANNED_AT_ONCE,
    Actor,
    DrawSaved,
    acknowledge_cycle,
    acknowledge_result,
    add_therapy_line,
    cycle_entry_errors,
    delay_cycle_and_following,
    draw_entry_errors,
    imaging_entry_errors,
    line_entry_errors,
    mark_draw_entered_in_error,
    mark_imaging_entered_in_error,
    patient_entry_errors,
    plan_cycle,
    plan_cycles,
    record_draw,
    record_draw_and_assess,
    record_imaging,
    register_patient,
    same_day_draws,
    system_user,
    update_cycle,
    update_draw,
    update_draw_and_assess,
    update_imaging,
    update_patient,
    update_therapy_line,
)

__all__ = [
    "teams",
    "ANY_VERSION",
    "CHANGE_REASON_MAX_LENGTH",
    "IMAGING_IN_ERROR",
    "LAB_COMPLETED",
    "LAB_CORRECTED",
    "LAB_RECORDED",
    "LAB_UNCHANGED",
    "Actor",
    "Backlog",
    "ConflictError",
    "DrawInput",
    "DrawSaved",
    "Edit",
    "Escalation",
    "LabFieldError",
    "LabOutcome",
    "LabResultInput",
    "SentIdentity",
    "LabResultsRefused",
    "MAX_CYCLES_PLANNED_AT_ONCE",
    "Version",
    "VersionRequired",
    "acknowledge_backlog",
    "acknowledge_cycle",
    "acknowledge_result",
    "add_therapy_line",
    "backlog_before",
    "cycle_entry_errors",
    "delay_cycle_and_following",
    "draw_entry_errors",
    "describe_edit",
    "escalate_flags",
    "imaging_entry_errors",
    "import_draws",
    "line_entry_errors",
    "mark_draw_entered_in_error",
    "mark_imaging_entered_in_error",
    "patient_entry_errors",
    "plan_cycle",
    "plan_cycles",
    "record_draw",
    "record_draw_and_assess",
    "record_imaging",
    "record_lab_results",
    "register_patient",
    "same_day_draws",
    "split_edit",
    "system_user",
    "update_cycle",
    "update_draw",
    "update_draw_and_assess",
    "update_imaging",
    "update_patient",
    "update_therapy_line",
]
