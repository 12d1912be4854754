-- 0011_summary_covering (PostgreSQL): the index of request_log_summary covers
-- what GET /api/stats/summary and GET /api/stats/usage sum (the group
-- columns and the sums), so that ranking a month's groups reads the index
-- alone and not the rows with their histograms (a few hundred bytes each),
-- and the histograms are read only for the rows of the top groups, chosen
-- on the index's group columns (docs/operations-data.md, "The summary
-- rollup"). It replaces 0009's (dim, span_hours, period_start), its prefix.
CREATE INDEX IF NOT EXISTS idx_request_log_summary_cover ON request_log_summary (dim, span_hours, period_start, model, channel_id, key_id, user_id, requests, errors, prompt_tokens, completion_tokens, cost);
DROP INDEX IF EXISTS idx_request_log_summary;
