-- 0009_summary_rollup (MySQL): the rollup behind GET /api/stats/summary
-- (docs/operations-data.md). Times are Unix milliseconds.
-- request_log_summary: the request logs of one hour (span_hours 1) or one
-- UTC day (24) summed per group of one dimension: dim 'none' (every row,
-- no group column set), 'model', 'channel', 'key' or 'user' (that column
-- set, NULL where the logs' is). latency_hist and ttft_hist are the
-- histograms of latency_ms (status < 400) and ttfb_ms (status < 400,
-- streamed, ttfb_ms > 0) in nebula_hist's text form ("lo:n,..."), so
-- percentiles read from the rollup equal those read from the raw rows.
-- The scheduler (billing_rollup.c) writes an hour's rows whole from the raw
-- rows, and a day's from its hours' rows, each in one transaction; rows are
-- kept when NebulaLogRetention deletes the raw rows.
CREATE TABLE IF NOT EXISTS request_log_summary (
    period_start BIGINT NOT NULL,
    span_hours INTEGER NOT NULL,
    dim VARCHAR(8) NOT NULL,
    model VARCHAR(255),
    channel_id BIGINT,
    key_id BIGINT,
    user_id BIGINT,
    requests BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cost BIGINT NOT NULL DEFAULT 0,
    latency_hist MEDIUMTEXT,
    ttft_hist MEDIUMTEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX idx_request_log_summary ON request_log_summary (dim, span_hours, period_start);
-- how far the summary rollup got: request_logs_summary is the end of the
-- last hour written (as nebula_rollup_state's request_logs, which it
-- follows on its own so that an upgrade rolls up the hours before it),
-- request_logs_summary_day the end of the last day.
INSERT INTO nebula_rollup_state (name, done_to, updated_at) VALUES ('request_logs_summary', 0, 0);
INSERT INTO nebula_rollup_state (name, done_to, updated_at) VALUES ('request_logs_summary_day', 0, 0);
