"""The audit trail: who read what (the access log) and who changed what (change history).

Every read of patient data is recorded with the three calls below, all
`AccessAction` members as actions (`audit.record(request, AccessAction.VIEW,
patient=patient, target="patient page")`). The rest lives in the modules:

- `chain`: writing the access log and its hash chain (`verify_chain`,
  `client_address`, the chain's constants);
- `middleware`: `AuditMiddleware`, which writes a request's events after its
  transaction, and the system check that it is installed;
- `signals`: sign-in, sign-out, failed sign-in and lockout events;
- `history`: the change history (django-simple-history) laid out for people;
- `views`, `urls`: the staff audit report, and the refusal pages.

See docs/audit.md.
"""

from __future__ import annotations

from patients.audit.chain import (
    patients_text,
    record,
    record_anonymous_refusal,
    record_read,
    records_patient_read,
)

__all__ = [
    "patients_text",
    "record",
    "record_anonymous_refusal",
    "record_read",
    "records_patient_read",
]
