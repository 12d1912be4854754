-- 0008_log_rollup (MySQL): hourly rollups of request_logs for the
-- dashboards (docs/operations-data.md). Times are Unix milliseconds.
-- request_log_hourly: one row per (hour, user, key, model, channel, status
-- class) of the request logs of closed hours, recomputed whole by the
-- scheduler (billing_rollup.c); status_class is status - status % 100
-- (200, 400, 500...); latency_ms_sum and ttfb_ms_sum give the averages.
-- Rows are kept when NebulaLogRetention deletes the raw rows.
CREATE TABLE IF NOT EXISTS request_log_hourly (
    hour_start BIGINT NOT NULL,
    user_id BIGINT,
    key_id BIGINT,
    model VARCHAR(255) NOT NULL DEFAULT '',
    channel_id BIGINT,
    status_class INTEGER NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cached_tokens BIGINT NOT NULL DEFAULT 0,
    cost BIGINT NOT NULL DEFAULT 0,
    latency_ms_sum BIGINT NOT NULL DEFAULT 0,
    ttfb_ms_sum BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX uq_request_log_hourly ON request_log_hourly (hour_start, user_id, key_id, model, channel_id, status_class);
CREATE INDEX idx_request_log_hourly_user ON request_log_hourly (user_id, hour_start);
CREATE INDEX idx_request_log_hourly_key ON request_log_hourly (key_id, hour_start);
-- request_log_hourly_total: the same per (hour, model, status class), for
-- the dashboards' ranges that filter on nothing but the model (a few rows an
-- hour however many keys and users there are); written in the same
-- transaction, from request_log_hourly.
CREATE TABLE IF NOT EXISTS request_log_hourly_total (
    hour_start BIGINT NOT NULL,
    model VARCHAR(255) NOT NULL DEFAULT '',
    status_class INTEGER NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cached_tokens BIGINT NOT NULL DEFAULT 0,
    cost BIGINT NOT NULL DEFAULT 0,
    latency_ms_sum BIGINT NOT NULL DEFAULT 0,
    ttfb_ms_sum BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX uq_request_log_hourly_total ON request_log_hourly_total (hour_start, model, status_class);
-- nebula_rollup_state: how far each rollup got. done_to is the end of the
-- last hour rolled up (exclusive, Unix ms; 0: nothing yet); the scheduler
-- moves it with an UPDATE conditional on its old value, in the transaction
-- that wrote the hour, so two hosts never roll the same hour twice.
CREATE TABLE IF NOT EXISTS nebula_rollup_state (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    done_to BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO nebula_rollup_state (name, done_to, updated_at) VALUES ('request_logs', 0, 0);
