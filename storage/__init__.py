"""SQLAlchemy 2 async models, repositories and Alembic migrations; imports no other package of ours."""
