"""Every flow action the reference services offer, in one registry (see dialogs/actions.py).

The composition root builds it once (`flow_actions(backend, incidents)`) for the dialog engine
and for content validation; `supportbot dialogs validate` builds it with the configured backend.
"""

from __future__ import annotations

from dialogs.actions import Actions
from services import identity
from services.backend import Backend
from services.backend.actions import backend_actions
from services.outages import Incidents
from services.tickets import ticket_actions
from services.verification import Verifier, verification_actions


def flow_actions(
    backend: Backend, incidents: Incidents | None = None, verifier: Verifier | None = None
) -> Actions:
    """The registry: the backend's actions, outages and notifications, linking, tickets,
    verification. Without `incidents`, the default detection rules over `backend`; without a
    `verifier`, the default policy over `backend`."""
    desk = incidents if incidents is not None else Incidents(backend=backend)
    return Actions(
        [
            *backend_actions(backend),
            *desk.actions(),
            *identity.actions(),
            *ticket_actions(backend),
            *verification_actions(verifier or Verifier(backend)),
        ]
    )
