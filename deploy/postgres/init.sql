-- One database and one login role per service, each database reachable only by its owner.
-- Run as a superuser by psql, idempotently: by deploy/stack.sh on every `up`, and by the
-- postgres image of docker-compose.yml on its first start (/docker-entrypoint-initdb.d).
-- Passwords equal the role names: development only.
-- CREATEDB lets the tests create throwaway databases.
\set ON_ERROR_STOP on

-- registry
SELECT 'CREATE ROLE registry LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'registry')\gexec
ALTER ROLE registry LOGIN CREATEDB PASSWORD 'registry';
SELECT 'CREATE DATABASE registry OWNER registry' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'registry')\gexec
ALTER DATABASE registry OWNER TO registry;
REVOKE CONNECT, TEMPORARY ON DATABASE registry FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE registry TO registry;

-- enrollment
SELECT 'CREATE ROLE enrollment LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'enrollment')\gexec
ALTER ROLE enrollment LOGIN CREATEDB PASSWORD 'enrollment';
SELECT 'CREATE DATABASE enrollment OWNER enrollment' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'enrollment')\gexec
ALTER DATABASE enrollment OWNER TO enrollment;
REVOKE CONNECT, TEMPORARY ON DATABASE enrollment FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE enrollment TO enrollment;

-- reporting
SELECT 'CREATE ROLE reporting LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reporting')\gexec
ALTER ROLE reporting LOGIN CREATEDB PASSWORD 'reporting';
SELECT 'CREATE DATABASE reporting OWNER reporting' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'reporting')\gexec
ALTER DATABASE reporting OWNER TO reporting;
REVOKE CONNECT, TEMPORARY ON DATABASE reporting FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE reporting TO reporting;
