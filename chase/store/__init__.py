"""The store port: SQL through SQLAlchemy Core (async), on SQLite or MySQL/MariaDB.

``tables`` is the schema (the migrations in ``migrations/`` must match it), ``engine`` builds an
``AsyncEngine`` from a URL and checks that the database answers, ``migrate`` runs Alembic.
"""
