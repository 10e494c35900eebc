-- The orchestrator's tables. They do not reference the registry's tables: the orchestrator may
-- keep them in a database of its own. A rollout is stored whole as `document`; the other columns
-- exist for lookups and constraints.
CREATE TABLE rollouts (
    -- Byte order, as in the SQLite store, whatever the database's collation: pages of
    -- list_rollouts continue after an id.
    id         TEXT COLLATE "C" PRIMARY KEY,
    service    TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    document   JSONB NOT NULL
);
-- The backstop of "at most one active rollout per service"; the store checks it first.
CREATE UNIQUE INDEX rollouts_one_active_per_service ON rollouts (service)
    WHERE state IN ('PROGRESSING', 'PAUSED', 'ABORTING');
CREATE INDEX rollouts_newest_first ON rollouts (created_ms, id);
CREATE INDEX rollouts_by_service ON rollouts (service, created_ms, id);

CREATE TABLE rollout_events (
    rollout_id TEXT COLLATE "C" NOT NULL REFERENCES rollouts (id),
    sequence   BIGINT NOT NULL,
    document   JSONB NOT NULL,
    PRIMARY KEY (rollout_id, sequence)
);

CREATE TABLE revisions (
    service     TEXT NOT NULL,
    number      BIGINT NOT NULL,
    version     TEXT NOT NULL,
    rollout_id  TEXT COLLATE "C" NOT NULL REFERENCES rollouts (id),
    time_ms     BIGINT NOT NULL,
    replaced_ms BIGINT,
    PRIMARY KEY (service, number)
);

CREATE TABLE rollout_leases (
    service    TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
