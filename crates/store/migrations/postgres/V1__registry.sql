-- The version registry's tables. Times are milliseconds since the Unix epoch, chosen by the
-- registry process, so every store sees the same clock semantics.
CREATE TABLE services (
    name            TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    description     TEXT NOT NULL,
    policy_mode     TEXT NOT NULL,
    policy_category TEXT NOT NULL,
    created_ms      BIGINT NOT NULL
);

CREATE TABLE versions (
    service           TEXT NOT NULL REFERENCES services (name),
    version           TEXT NOT NULL,
    schema            BYTEA NOT NULL,
    fingerprint       TEXT NOT NULL,
    artifact_json     TEXT NOT NULL,
    dependencies_json TEXT NOT NULL,
    labels_json       TEXT NOT NULL,
    state             TEXT NOT NULL,
    published_ms      BIGINT NOT NULL,
    PRIMARY KEY (service, version)
);

CREATE TABLE version_events (
    service TEXT NOT NULL,
    version TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    state   TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at_ms   BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    PRIMARY KEY (service, version, seq),
    FOREIGN KEY (service, version) REFERENCES versions (service, version)
);

CREATE TABLE instances (
    id            TEXT PRIMARY KEY,
    service       TEXT NOT NULL,
    version       TEXT NOT NULL,
    address       TEXT NOT NULL,
    metadata_json TEXT NOT NULL,
    status        TEXT NOT NULL,
    lease_ttl_ms  BIGINT NOT NULL,
    registered_ms BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL,
    expired       BOOLEAN NOT NULL DEFAULT FALSE,
    FOREIGN KEY (service, version) REFERENCES versions (service, version)
);
CREATE INDEX instances_by_service ON instances (service) WHERE NOT expired;
CREATE INDEX instances_by_expiry ON instances (expires_ms) WHERE NOT expired;

CREATE TABLE routes (
    service      TEXT PRIMARY KEY REFERENCES services (name),
    weights_json TEXT NOT NULL,
    updated_ms   BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id          BIGSERIAL PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    service     TEXT NOT NULL,
    version     TEXT NOT NULL,
    detail_json TEXT NOT NULL
);
CREATE INDEX audit_events_by_service ON audit_events (service, id);
