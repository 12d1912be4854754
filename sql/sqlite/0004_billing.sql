-- 0004_billing: mod_nebula_billing's tables. Amounts are BIGINT in the unit
-- of their account (quota units for wallets; quota units, tokens or requests
-- for a subscription's allowance); ratios are parts per million (1000000 =
-- 1.0); times are Unix milliseconds. docs/billing.md explains each table.
-- organisations own users and share one wallet.
CREATE TABLE IF NOT EXISTS organizations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(64) NOT NULL,
    display_name VARCHAR(255) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    CONSTRAINT uq_organizations_name UNIQUE (name)
);
ALTER TABLE users ADD COLUMN org_id BIGINT;
ALTER TABLE users ADD COLUMN email VARCHAR(255);
CREATE INDEX IF NOT EXISTS idx_users_org ON users (org_id);
-- accounts: one per wallet owner (owner_kind user or org) and one per
-- subscription (owner_kind sub, holding the plan's allowance). balance is
-- the sum of the account's ledger rows; reserved is held by open
-- reservations; available = balance - reserved >= -overdraft_limit always.
-- ledger_seq and ledger_hash are the head of the account's hash chain.
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_kind VARCHAR(8) NOT NULL,
    owner_id BIGINT NOT NULL,
    unit VARCHAR(8) NOT NULL DEFAULT 'quota',
    balance BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    overdraft_limit BIGINT NOT NULL DEFAULT 0,
    billing_preference VARCHAR(24) NOT NULL DEFAULT 'subscription_first',
    ledger_seq BIGINT NOT NULL DEFAULT 0,
    ledger_hash CHAR(64) NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT uq_accounts_owner UNIQUE (owner_kind, owner_id)
);
-- the append-only ledger: no UPDATE or DELETE of its rows anywhere.
-- row_hash = SHA-256 over the row and prev_hash (apr_common/nebula_ledger.c).
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    amount BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    request_id VARCHAR(64),
    idem_key VARCHAR(255) NOT NULL,
    actor VARCHAR(128) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    detail TEXT,
    prev_hash CHAR(64) NOT NULL,
    row_hash CHAR(64) NOT NULL,
    CONSTRAINT uq_ledger_seq UNIQUE (account_id, seq),
    CONSTRAINT uq_ledger_idem UNIQUE (account_id, idem_key)
);
CREATE INDEX IF NOT EXISTS idx_ledger_created ON ledger (created_at);
CREATE INDEX IF NOT EXISTS idx_ledger_request ON ledger (request_id);
CREATE INDEX IF NOT EXISTS idx_ledger_kind ON ledger (kind, created_at);
-- reservations (credit holds), keyed by the request id; state held, then
-- exactly one of settled, released or expired.
CREATE TABLE IF NOT EXISTS reservations (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    account_id BIGINT NOT NULL,
    key_id BIGINT NOT NULL,
    subscription_id BIGINT,
    amount BIGINT NOT NULL,
    key_amount BIGINT NOT NULL DEFAULT 0,
    state VARCHAR(10) NOT NULL DEFAULT 'held',
    cost BIGINT NOT NULL DEFAULT 0,
    model VARCHAR(255) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    resolved_at BIGINT,
    caps TEXT
);
CREATE INDEX IF NOT EXISTS idx_reservations_state ON reservations (state, expires_at);
-- prices per model (the model the client asked for). price_per_call_micro_usd,
-- when set, is a fixed price per call (micro-dollars) and wins over ratios.
CREATE TABLE IF NOT EXISTS model_prices (
    model VARCHAR(255) NOT NULL PRIMARY KEY,
    model_ratio_ppm BIGINT NOT NULL DEFAULT 0,
    completion_ratio_ppm BIGINT NOT NULL DEFAULT 1000000,
    cache_read_ratio_ppm BIGINT NOT NULL DEFAULT 1000000,
    cache_write_ratio_ppm BIGINT NOT NULL DEFAULT 1250000,
    price_per_call_micro_usd BIGINT,
    updated_at BIGINT NOT NULL
);
-- client Idempotency-Key records, scoped per account, kept 24 h.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    account_id BIGINT NOT NULL,
    idem_key VARCHAR(255) NOT NULL,
    body_hash CHAR(64) NOT NULL,
    state VARCHAR(8) NOT NULL DEFAULT 'running',
    request_id VARCHAR(64) NOT NULL,
    status INTEGER NOT NULL DEFAULT 0,
    content_type VARCHAR(255),
    response TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, idem_key)
);
CREATE INDEX IF NOT EXISTS idx_idempotency_expires ON idempotency_keys (expires_at);
-- plans: an allowance per period in a metric (quota, tokens, requests).
CREATE TABLE IF NOT EXISTS plans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(64) NOT NULL,
    description VARCHAR(255) NOT NULL DEFAULT '',
    metric VARCHAR(8) NOT NULL DEFAULT 'quota',
    period VARCHAR(8) NOT NULL DEFAULT 'month',
    period_seconds BIGINT NOT NULL DEFAULT 0,
    alignment VARCHAR(12) NOT NULL DEFAULT 'calendar',
    quota_per_period BIGINT NOT NULL,
    rollover VARCHAR(8) NOT NULL DEFAULT 'none',
    rollover_cap BIGINT NOT NULL DEFAULT 0,
    allowed_models TEXT,
    allowed_groups TEXT,
    price BIGINT NOT NULL DEFAULT 0,
    status VARCHAR(16) NOT NULL DEFAULT 'active',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT uq_plans_name UNIQUE (name)
);
-- subscriptions: a plan assigned to a user, an organisation or a key; its
-- allowance lives in its own account (owner_kind sub, owner_id = id).
CREATE TABLE IF NOT EXISTS subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id BIGINT NOT NULL,
    subject_kind VARCHAR(8) NOT NULL,
    subject_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL DEFAULT 0,
    status VARCHAR(16) NOT NULL DEFAULT 'active',
    period_start BIGINT NOT NULL,
    period_end BIGINT NOT NULL,
    starts_at BIGINT NOT NULL,
    expires_at BIGINT,
    notified_pct INTEGER NOT NULL DEFAULT 0,
    expiry_notified SMALLINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_subscriptions_subject ON subscriptions (subject_kind, subject_id, status);
CREATE INDEX IF NOT EXISTS idx_subscriptions_due ON subscriptions (status, period_end);
-- finer quotas: a cap per model and route on a key, a user or a plan, per
-- period; usage_counters holds each period's use.
CREATE TABLE IF NOT EXISTS usage_caps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_kind VARCHAR(8) NOT NULL,
    subject_id BIGINT NOT NULL,
    model VARCHAR(255) NOT NULL DEFAULT '*',
    route VARCHAR(32) NOT NULL DEFAULT '*',
    metric VARCHAR(8) NOT NULL DEFAULT 'tokens',
    period VARCHAR(8) NOT NULL DEFAULT 'day',
    cap_limit BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_usage_caps_subject ON usage_caps (subject_kind, subject_id);
CREATE TABLE IF NOT EXISTS usage_counters (
    cap_id BIGINT NOT NULL,
    period_start BIGINT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (cap_id, period_start)
);
-- the notification outbox (webhooks, e-mail), one row per event, keyed.
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event VARCHAR(32) NOT NULL,
    idem_key VARCHAR(255) NOT NULL,
    account_id BIGINT,
    user_id BIGINT,
    payload TEXT NOT NULL,
    state VARCHAR(12) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    CONSTRAINT uq_notifications_idem UNIQUE (idem_key)
);
CREATE INDEX IF NOT EXISTS idx_notifications_due ON notifications (state, next_at);
-- request_logs: which account paid and from which source.
ALTER TABLE request_logs ADD COLUMN account_id BIGINT;
-- default prices for common models (the operator edits them in the admin API);
-- ratios as in new-api: model ratio 1 = 2 USD per million input tokens.
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('gpt-4o', 1250000, 4000000, 500000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('gpt-4o-mini', 75000, 4000000, 500000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('gpt-4.1', 1000000, 4000000, 250000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('gpt-4.1-mini', 200000, 4000000, 250000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('gpt-4.1-nano', 50000, 4000000, 250000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('o3', 1000000, 4000000, 250000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('o4-mini', 550000, 4000000, 250000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('gpt-3.5-turbo', 250000, 3000000, 1000000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('text-embedding-3-small', 10000, 1000000, 1000000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('text-embedding-3-large', 65000, 1000000, 1000000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('text-embedding-ada-002', 50000, 1000000, 1000000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('omni-moderation-latest', 0, 1000000, 1000000, 1000000, 0, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('claude-sonnet-4-20250514', 1500000, 5000000, 100000, 1250000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('claude-3-5-sonnet-20241022', 1500000, 5000000, 100000, 1250000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('claude-3-5-haiku-20241022', 400000, 5000000, 100000, 1250000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('claude-opus-4-20250514', 7500000, 5000000, 100000, 1250000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('gemini-2.5-pro', 625000, 8000000, 250000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('gemini-2.5-flash', 150000, 8333333, 250000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('gemini-2.0-flash', 50000, 4000000, 250000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('dall-e-3', 0, 1000000, 1000000, 1000000, 40000, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('gpt-image-1', 0, 1000000, 1000000, 1000000, 42000, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('tts-1', 7500000, 1000000, 1000000, 1000000, NULL, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('whisper-1', 0, 1000000, 1000000, 1000000, 6000, 0);
INSERT OR IGNORE INTO model_prices (model, model_ratio_ppm, completion_ratio_ppm, cache_read_ratio_ppm, cache_write_ratio_ppm, price_per_call_micro_usd, updated_at)
    VALUES ('rerank-english-v3.0', 0, 1000000, 1000000, 1000000, 2000, 0);
