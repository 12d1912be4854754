#!/usr/bin/env python3
"""bench/datagrowth.py - the data-growth benchmark (issue 11, item 6).

Loads N request-log rows (default 5,000,000: 90 days, 200 users, 1000 keys,
30 models, 20 channels, in time order as a gateway writes them) into a SQLite
file and into a PostgreSQL database, both migrated with nebulactl; rolls the
closed hours up with the statements of mod_nebula_billing/billing_rollup.c
(one transaction an hour, as the scheduler does); then times the SQL the
admin API's dashboards run (mod_nebula_relay/admin_stats.c and
admin_stats_summary.c), the same text, over the raw rows (no rollup: what
the API ran before) and through the rollup:

  cold: the first run (SQLite: a new connection; PostgreSQL: the first query
        after restarting the server, so shared buffers are empty; the OS page
        cache is not dropped: that needs root and disturbs the machine)
  warm: the median of RUNS more runs on that connection

and prints a Markdown table. bench/datagrowth.sh starts a private PostgreSQL
(scripts/testdb.sh) and calls this; docs/benchmarks.md ("Data growth") keeps
the figures. Performance is benchmarked, never asserted by a timed test.
"""
import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time

HOUR = 3600000
DAY = 86400000
GRACE = 600000

COLS = ("id, created_at, key_id, user_id, model, upstream_model, channel_id, attempts, "
        "prompt_tokens, completion_tokens, cached_tokens, cost, status, latency_ms, "
        "ttfb_ms, is_stream, client_ip, error, end_reason, usage_estimated")

# billing_rollup.c
ROLLUP_INSERT = (
    "INSERT INTO request_log_hourly (hour_start, user_id, key_id, model, channel_id, "
    "status_class, requests, errors, prompt_tokens, completion_tokens, cached_tokens, "
    "cost, latency_ms_sum, ttfb_ms_sum) SELECT created_at - created_at % 3600000, "
    "user_id, key_id, model, channel_id, status - status % 100, COUNT(*), "
    "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), "
    "SUM(completion_tokens), SUM(cached_tokens), SUM(cost), SUM(latency_ms), "
    "SUM(ttfb_ms) FROM request_logs WHERE created_at >= {lo} AND created_at < {hi} "
    "GROUP BY created_at - created_at % 3600000, user_id, key_id, model, channel_id, "
    "status - status % 100")

ROLLUP_TOTAL = (
    "INSERT INTO request_log_hourly_total (hour_start, model, status_class, requests, "
    "errors, prompt_tokens, completion_tokens, cached_tokens, cost, latency_ms_sum, "
    "ttfb_ms_sum) SELECT hour_start, model, status_class, SUM(requests), SUM(errors), "
    "SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(cost), "
    "SUM(latency_ms_sum), SUM(ttfb_ms_sum) FROM request_log_hourly WHERE hour_start = {lo} "
    "GROUP BY hour_start, model, status_class")

USAGE_SUMS = ("COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost), "
              "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)")
SUMS = ("COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), "
        "SUM(completion_tokens), SUM(cost)")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- the data -----------------------------------------------------------------
def rows(n, end, seed=11):
    """n rows over the 90 days before end, in time order."""
    rnd = random.Random(seed)
    start = end - 90 * DAY
    step = (end - start) / n
    models = ["model-%02d" % i for i in range(30)]
    for i in range(n):
        t = int(start + i * step + rnd.random() * step)
        key = rnd.randrange(1000)
        user = 1 + key % 200
        model = models[min(29, int(rnd.paretovariate(1.2)) - 1)]
        chan = 1 + rnd.randrange(20)
        r = rnd.random()
        status = 200 if r < 0.95 else (429 if r < 0.97 else (500 if r < 0.99 else 401))
        stream = 1 if rnd.random() < 0.5 else 0
        ok = status < 400
        pt = rnd.randrange(20, 4000) if ok else 0
        ct = rnd.randrange(1, 1500) if ok else 0
        lat = int(rnd.lognormvariate(6.5, 0.9))
        ttfb = int(lat * rnd.uniform(0.05, 0.4)) if stream and ok else 0
        yield ("%08x-0000-7000-8000-%012x" % (t // 1000 & 0xffffffff, i), t, key + 1, user,
               model, model, chan, 1, pt, ct, pt // 4, (pt + 2 * ct) // 10, status, lat,
               ttfb, stream, "192.0.2.%d" % (user % 250), None if ok else "upstream error",
               "complete" if ok else "upstream_error", 0)


def nebulactl(args, ctl):
    subprocess.run([ctl, "migrate"] + args, check=True, stdout=subprocess.DEVNULL)


def load_sqlite(path, n, end, ctl):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    nebulactl(["--dsn", "sqlite:" + path], ctl)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    t0 = time.time()
    ins = "INSERT INTO request_logs (%s) VALUES (%s)" % (COLS, ", ".join("?" * 20))
    batch = []
    for row in rows(n, end):
        batch.append(row)
        if len(batch) == 100000:
            db.executemany(ins, batch)
            batch = []
    if batch:
        db.executemany(ins, batch)
    db.commit()
    db.execute("ANALYZE")
    db.commit()
    db.close()
    return time.time() - t0


def psql_cmd(pg):
    p = dict(kv.split("=", 1) for kv in pg.split())
    env = dict(os.environ)
    if "password" in p:
        env["PGPASSWORD"] = p["password"]
    return (["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", p["host"], "-p", p["port"],
             "-U", p["user"], "-d", p["dbname"]], env)


def load_pg(pg, n, end, ctl):
    cmd, env = psql_cmd(pg)
    subprocess.run(cmd + ["-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    nebulactl(["--driver", "pgsql", "--params", pg], ctl)
    t0 = time.time()
    proc = subprocess.Popen(cmd + ["-c", "COPY request_logs (%s) FROM STDIN" % COLS],
                            stdin=subprocess.PIPE, env=env)

    def field(v):
        return "\\N" if v is None else str(v)
    buf = []
    for row in rows(n, end):
        buf.append("\t".join(field(v) for v in row))
        if len(buf) == 50000:
            proc.stdin.write(("\n".join(buf) + "\n").encode())
            buf = []
    if buf:
        proc.stdin.write(("\n".join(buf) + "\n").encode())
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("COPY failed")
    subprocess.run(cmd + ["-c", "VACUUM ANALYZE request_logs"], check=True, env=env)
    return time.time() - t0


# ---- the rollup: one transaction an hour, as billing_rollup.c ------------------
def rollup_script(first, closed):
    out = []
    h = first - first % HOUR
    while h < closed:
        out += ["BEGIN;",
                "UPDATE nebula_rollup_state SET done_to = %d, updated_at = %d WHERE "
                "name = 'request_logs' AND done_to = %d;" % (h + HOUR, closed, h if
                                                                 out else 0),
                "DELETE FROM request_log_hourly WHERE hour_start = %d;" % h,
                "DELETE FROM request_log_hourly_total WHERE hour_start = %d;" % h,
                ROLLUP_INSERT.format(lo=h, hi=h + HOUR) + ";",
                ROLLUP_TOTAL.format(lo=h) + ";", "COMMIT;"]
        h += HOUR
    return out


def rollup_sqlite(path, end):
    db = sqlite3.connect(path, isolation_level=None)
    first = db.execute("SELECT MIN(created_at) FROM request_logs").fetchone()[0]
    closed = (end - GRACE) - (end - GRACE) % HOUR
    t0 = time.time()
    for stmt in rollup_script(first, closed):
        db.execute(stmt[:-1])
    db.execute("ANALYZE")
    hours = db.execute("SELECT COUNT(DISTINCT hour_start), COUNT(*), (SELECT COUNT(*) FROM "
                       "request_log_hourly_total) FROM request_log_hourly").fetchone()
    db.close()
    return time.time() - t0, hours, closed


def rollup_pg(pg, end):
    cmd, env = psql_cmd(pg)
    first = int(subprocess.run(cmd + ["-At", "-c", "SELECT MIN(created_at) FROM request_logs"],
                               env=env, check=True, capture_output=True).stdout)
    closed = (end - GRACE) - (end - GRACE) % HOUR
    t0 = time.time()
    subprocess.run(cmd, input="\n".join(rollup_script(first, closed)).encode(), env=env,
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(cmd + ["-c", "ANALYZE request_log_hourly; ANALYZE request_log_hourly_total"],
                   env=env, check=True)
    took = time.time() - t0
    out = subprocess.run(cmd + ["-At", "-F", " ", "-c", "SELECT COUNT(DISTINCT hour_start), "
                                "COUNT(*), (SELECT COUNT(*) FROM request_log_hourly_total) "
                                "FROM request_log_hourly"], env=env, check=True,
                         capture_output=True).stdout.split()
    return took, (int(out[0]), int(out[1]), int(out[2])), closed


# ---- the dashboards' SQL ------------------------------------------------------
def bucket_expr(col, size, off=0):
    return "(%s + %d) - ((%s + %d) %% %d) - %d" % (col, off, col, off, size, off)


def usage_raw(frm, to, size, filt):
    return ("SELECT %s AS t, %s FROM request_logs WHERE created_at >= %d AND created_at < %d%s "
            "GROUP BY 1 ORDER BY 1" % (bucket_expr("created_at", size), USAGE_SUMS, frm, to,
                                       filt))


def usage_rollup(frm, to, size, filt, done):
    h1 = frm if frm % HOUR == 0 else frm - frm % HOUR + HOUR
    h2 = min(to - to % HOUR, done)

    def part(table, col, sums, lo, hi):
        return ("SELECT %s AS t, %s FROM %s WHERE %s >= %d AND %s < %d%s GROUP BY 1"
                % (bucket_expr(col, size), sums, table, col, lo, col, hi, filt))
    return ("SELECT t, SUM(n), SUM(pt), SUM(ct), SUM(co), SUM(er) FROM ("
            + part("request_logs", "created_at",
                   "COUNT(*) AS n, SUM(prompt_tokens) AS pt, SUM(completion_tokens) AS ct, "
                   "SUM(cost) AS co, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS er",
                   frm, h1)
            + " UNION ALL "
            + part("request_log_hourly" if "_id" in filt else "request_log_hourly_total",
                   "hour_start", "SUM(requests), SUM(prompt_tokens), "
                   "SUM(completion_tokens), SUM(cost), SUM(errors)", h1, h2)
            + " UNION ALL " + part("request_logs", "created_at", USAGE_SUMS, h2, to)
            + ") u GROUP BY t ORDER BY t")


def hist_bucket(c):
    s = "CASE WHEN %s < 64 THEN %s ELSE %s - %s %% (CASE" % (c, c, c, c)
    for e in range(6, 40):
        s += " WHEN %s < %d THEN %d" % (c, 1 << (e + 1), 1 << (e - 5))
    return s + " ELSE %d END) END" % (1 << 35)


def summary(frm, to, by):
    """The statements of one GET /api/stats/summary (by none or model)."""
    w = " WHERE created_at >= %d AND created_at < %d" % (frm, to)
    lat, ttft = "status < 400", "status < 400 AND is_stream = 1 AND ttfb_ms > 0"
    out = ["SELECT %s FROM request_logs%s" % (SUMS, w),
           "SELECT %s, COUNT(*) FROM request_logs%s AND %s GROUP BY 1 ORDER BY 1"
           % (hist_bucket("latency_ms"), w, lat),
           "SELECT %s, COUNT(*) FROM request_logs%s AND %s GROUP BY 1 ORDER BY 1"
           % (hist_bucket("ttfb_ms"), w, ttft)]
    if by == "model":
        top = ", ".join("'model-%02d'" % i for i in range(10))
        out += ["SELECT model, %s FROM request_logs%s GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
                % (SUMS, w)]
        for col, cond in (("latency_ms", lat), ("ttfb_ms", ttft)):
            out.append("SELECT model, %s, COUNT(*) FROM request_logs%s AND %s AND (model IN "
                       "(%s)) GROUP BY 1, 2 ORDER BY 1, 2" % (hist_bucket(col), w, cond, top))
    return out


def workload(end, done):
    """(name, [raw statements], [rollup statements] or None)."""
    q = []
    for name, span, size, filt in (
            ("usage 24 h by hour", DAY, HOUR, ""),
            ("usage 7 d by hour, one model", 7 * DAY, HOUR, " AND model = 'model-03'"),
            ("usage 30 d by day", 30 * DAY, DAY, ""),
            ("usage 30 d by day, one user", 30 * DAY, DAY, " AND user_id = 17"),
            ("usage 30 d by day, one key", 30 * DAY, DAY, " AND key_id = 117"),
            ("usage 90 d by day", 90 * DAY, DAY, "")):
        q.append((name, [usage_raw(end - span, end, size, filt)],
                  [usage_rollup(end - span, end, size, filt, done)]))
    q.append(("summary 24 h (totals, p50/p95/p99)", summary(end - DAY, end, "none"), None))
    q.append(("summary 24 h by model", summary(end - DAY, end, "model"), None))
    q.append(("summary 7 d by model", summary(end - 7 * DAY, end, "model"), None))
    return q


# ---- timing -------------------------------------------------------------------
def time_sqlite(path, stmts, runs):
    db = sqlite3.connect(path)
    times = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        for s in stmts:
            db.execute(s).fetchall()
        times.append((time.perf_counter() - t0) * 1000)
    db.close()
    return times[0], statistics.median(times[1:])


def time_pg(pg, stmts, runs, restart):
    if restart:
        restart()
    cmd, env = psql_cmd(pg)
    script = ["\\o /dev/null", "\\timing on"]
    for _ in range(runs + 1):
        script += [s + ";" for s in stmts]
    out = subprocess.run(cmd, input="\n".join(script).encode(), env=env, check=True,
                         capture_output=True).stdout.decode()
    ms = [float(l.split()[1]) for l in out.splitlines() if l.startswith("Time:")]
    per = [sum(ms[i * len(stmts):(i + 1) * len(stmts)]) for i in range(runs + 1)]
    return per[0], statistics.median(per[1:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000000)
    ap.add_argument("--dir", default="bench/.work/datagrowth")
    ap.add_argument("--pg", help="apr_dbd pgsql parameters (host= port= user= dbname=)")
    ap.add_argument("--pg-restart", help="a command that restarts that PostgreSQL")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nebulactl", default="admin/nebulactl/nebulactl")
    ap.add_argument("--skip-load", action="store_true", help="reuse the loaded databases")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    path = os.path.join(a.dir, "datagrowth.db")
    stamp = os.path.join(a.dir, "end.txt")
    if a.skip_load:
        end = int(open(stamp).read())
    else:
        end = int(time.time() * 1000)
        open(stamp, "w").write(str(end))
    results = {}
    dbs = [("SQLite", None)] + ([("PostgreSQL", a.pg)] if a.pg else [])
    restart = (lambda: subprocess.run(a.pg_restart, shell=True, check=True,
                                      stdout=subprocess.DEVNULL)) if a.pg_restart else None
    for name, pg in dbs:
        if not a.skip_load:
            log("%s: loading %d rows..." % (name, a.rows))
            took = load_sqlite(path, a.rows, end, a.nebulactl) if pg is None else \
                load_pg(pg, a.rows, end, a.nebulactl)
            log("%s: loaded in %.0f s" % (name, took))
            results[name + " load"] = took
            rt, hours, done = rollup_sqlite(path, end) if pg is None else rollup_pg(pg, end)
            log("%s: rolled up %d hours (%d rows, %d per model) in %.1f s"
                % (name, hours[0], hours[1], hours[2], rt))
            results[name + " rollup"] = (rt, hours)
        done = (end - GRACE) - (end - GRACE) % HOUR
        for q, raw, rolled in workload(end, done):
            for kind, stmts in (("raw", raw), ("rollup", rolled)):
                if stmts is None:
                    continue
                cold, warm = time_sqlite(path, stmts, a.runs) if pg is None else \
                    time_pg(pg, stmts, a.runs, restart)
                results[(name, q, kind)] = (cold, warm)
                log("%s | %s | %s: cold %.1f ms, warm %.1f ms" % (name, q, kind, cold, warm))
    print("| database | dashboard query | raw rows: cold / warm ms | rollup: cold / warm ms |")
    print("|---|---|---|---|")
    for name, _ in dbs:
        for q, raw, rolled in workload(end, 0):
            r = results[(name, q, "raw")]
            o = results.get((name, q, "rollup"))
            print("| %s | %s | %.1f / %.1f | %s |" % (
                name, q, r[0], r[1], "%.1f / %.1f" % o if o else "(raw only)"))
    for k, v in results.items():
        if isinstance(k, str):
            print("\n%s: %s" % (k, ("%.0f s" % v) if isinstance(v, float) else
                                  "%.1f s, %d hours, %d rows, %d per model"
                                  % (v[0], v[1][0], v[1][1], v[1][2])))


if __name__ == "__main__":
    main()
