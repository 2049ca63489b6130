"""PostgreSQL access: the pool, embedded server, migrations and named queries."""
