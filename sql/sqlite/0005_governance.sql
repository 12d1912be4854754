-- 0005_governance (SQLite): mod_nebula_gov's tables. Times are Unix
-- milliseconds. docs/governance.md explains each table.
-- gov_policies: the policies edited through the admin API (those declared in
-- httpd config with <NebulaPolicy> are not stored). spec is the policy as
-- JSON (scope, matchers, action) in the form the admin API accepts; the
-- columns beside it repeat what lists sort and filter on.
CREATE TABLE IF NOT EXISTS gov_policies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(64) NOT NULL,
    description VARCHAR(255) NOT NULL DEFAULT '',
    priority INTEGER NOT NULL DEFAULT 0,
    enabled SMALLINT NOT NULL DEFAULT 1,
    shadow SMALLINT NOT NULL DEFAULT 0,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT uq_gov_policies_name UNIQUE (name)
);
-- gov_audit: one row per policy hit or refused limit, append-only (rows are
-- only ever deleted by age, NebulaAuditRetention). stage is request,
-- response or limit; excerpt is the text around the match with the matched
-- part masked, never the matched secret itself.
CREATE TABLE IF NOT EXISTS gov_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at BIGINT NOT NULL,
    request_id VARCHAR(40),
    key_id BIGINT,
    user_id BIGINT,
    client_ip VARCHAR(64),
    model VARCHAR(128),
    route VARCHAR(32),
    stage VARCHAR(16) NOT NULL,
    policy VARCHAR(64) NOT NULL,
    matcher VARCHAR(64),
    action VARCHAR(16) NOT NULL,
    shadow SMALLINT NOT NULL DEFAULT 0,
    excerpt VARCHAR(512)
);
CREATE INDEX IF NOT EXISTS idx_gov_audit_time ON gov_audit (created_at);
CREATE INDEX IF NOT EXISTS idx_gov_audit_request ON gov_audit (request_id);
CREATE INDEX IF NOT EXISTS idx_gov_audit_policy ON gov_audit (policy, created_at);
-- gov_limits: request and token rates and concurrent streams. scope_kind is
-- key, user, group or model; scope_value an id, a group name, a model glob,
-- or '*' for each key (user, group, model) apart. 0 means no limit.
CREATE TABLE IF NOT EXISTS gov_limits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope_kind VARCHAR(8) NOT NULL,
    scope_value VARCHAR(128) NOT NULL,
    rpm BIGINT NOT NULL DEFAULT 0,
    tpm BIGINT NOT NULL DEFAULT 0,
    max_streams INTEGER NOT NULL DEFAULT 0,
    enabled SMALLINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT uq_gov_limits_scope UNIQUE (scope_kind, scope_value)
);
