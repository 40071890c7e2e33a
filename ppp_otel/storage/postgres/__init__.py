"""The PostgreSQL trajectory store: the same tables, migrations and results as
:mod:`ppp_otel.storage.sqlite`, for many writers on many hosts (``pip install 'ppp-otel[postgres]'``)."""
