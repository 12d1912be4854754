-- 0012_hourly_covering (PostgreSQL): request_log_hourly's indexes on
-- (user_id, hour_start) and (key_id, hour_start) also hold the sums that
-- GET /api/stats/usage reads for one user or one key (and
-- /api/self/stats/usage, always for one user), so those charts read the
-- index alone. One user's month is thousands of rows, each on its own page
-- of the table: read again after a restart, that was 7 000 pages where the
-- index takes a few dozen (docs/operations-data.md, "Indexes"). They
-- replace 0008's two indexes, their prefixes.
CREATE INDEX IF NOT EXISTS idx_request_log_hourly_user_sums ON request_log_hourly (user_id, hour_start, requests, errors, prompt_tokens, completion_tokens, cost);
CREATE INDEX IF NOT EXISTS idx_request_log_hourly_key_sums ON request_log_hourly (key_id, hour_start, requests, errors, prompt_tokens, completion_tokens, cost);
DROP INDEX IF EXISTS idx_request_log_hourly_user;
DROP INDEX IF EXISTS idx_request_log_hourly_key;
