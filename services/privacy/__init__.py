"""Personal-data duties (152-ФЗ): subject access, erasure on request, retention.

- `person.py`: who a request is about: one person found by id, phone, account number or a
  channel's user id, merged subscribers included;
- `export.py`: everything the bot keeps about them, as JSON (`export_person`), and the short
  `summarise` shown before acting;
- `erase.py`: erasure (`erase_person`): texts, names, phones, form data, codes, uploads go; the
  rows analytics count stay; an audit entry records it;
- `scrub.py`: how a message is anonymised, shared by erasure and retention;
- `retention.py`: the periodic pass that anonymises or deletes what is older than the policy.

The CLI (`supportbot subscribers export|erase`, `supportbot retention run`) and the console's
admin page (handoff/console/privacy_page.py) call these; the app runs `retention_loop`.
"""

from services.privacy.erase import Erasure, erase_person
from services.privacy.export import Summary, export_person, summarise
from services.privacy.person import AmbiguousPerson, Person, PersonNotFound, find_person, person_of
from services.privacy.retention import Pass, Policy, retention_loop, run_retention

__all__ = [
    "AmbiguousPerson",
    "Erasure",
    "Pass",
    "Person",
    "PersonNotFound",
    "Policy",
    "Summary",
    "erase_person",
    "export_person",
    "find_person",
    "person_of",
    "retention_loop",
    "run_retention",
    "summarise",
]
