"""SQLAlchemy 2 async models (models.py), the small query functions the others compose (repo.py),
Alembic migrations, and `Database` with its unit of work (db.py: `transaction()` commits, then
hands the live events and outbox wake-ups noted in it to the hooks the app installed). Imports
no other package of ours."""
