"""Outage incidents: contacts about no internet / no TV grouped by area, detected, declared, closed.

- **Area**: where a contact comes from. The backend's `Customer.area` when the subscriber is
  identified (and didn't give another address), else the key of the address they typed: the
  backend's optional `area_of(address)` method when it has one (so typed addresses land on the
  same keys as its customers), else `area_key` below, a street-level rule.
- **Reports**: every outage check in a flow (`call: outage`, from internet_down, tv_down,
  technician_visit) records an `OutageReport`, at most one per subscriber per area per window.
- **Detection**: when `Rules.threshold` distinct subscribers reported one area within
  `Rules.window` and no incident is open there (and the backend knows of no outage there), an
  `Incident` opens (source "detected", ETA now + `Rules.default_eta`), every one of those
  reporters is subscribed to its closing notice, and a live event alerts supervisors. The
  partial unique index `uq_incidents_open_area` keeps it to one open incident per area even when
  two app processes cross the threshold at once: the insert is `ON CONFLICT DO NOTHING`, and
  the loser takes the winner's row.
- **While open**, the `outage` action answers with the incident (before any troubleshooting) and
  subscribes the subscriber; `incident_mute` unsubscribes them ("🔕 Не сообщать"), and
  `notifications_off` / `notifications_on` switch all proactive messages off and on.
- **Closing** (a supervisor in the console, or the CLI) sends the content's `incident_closed`
  response to every subscriber still subscribed, once, through `services.notify` and the outbox.

Nothing here commits: callers own the transaction (the pipeline's, the console's, the CLI's).
"""

from nlu.address import Area, area_key, parse_area
from services.outages.desk import Closed, IncidentError, Incidents, Rules, area_for
from services.outages.store import audience, incident_json, list_incidents, open_for

__all__ = [
    "Area",
    "Closed",
    "IncidentError",
    "Incidents",
    "Rules",
    "area_for",
    "area_key",
    "audience",
    "incident_json",
    "list_incidents",
    "open_for",
    "parse_area",
]
