#!/usr/bin/env python3
"""bench/datagrowth.py - the data-growth benchmark (issue 11, item 6).

Loads N request-log rows (default 5,000,000: 90 days, 200 users, 1000 keys,
30 models, 20 channels, in time order as a gateway writes them) into a SQLite
file and into a PostgreSQL database, both migrated with nebulactl. Then, on
each, starts a gateway (httpd with mod_nebula_relay and mod_nebula_billing)
and through it:

  1. rolls every closed hour and day up with the scheduler's own code
     (POST /api/billing/scheduler/run, NebulaLogRollup 10000: one pass);
  2. times the dashboards' admin API requests (GET /api/stats/usage and
     /api/stats/summary), first with the rollup watermarks at 0 (the API then
     reads the raw rows alone: what it did before the rollups), then as the
     scheduler left them, and checks both answer the same.

  cold: the first request after restarting the gateway (a new database
        connection); on PostgreSQL the server is restarted too, so its shared
        buffers are empty (the OS page cache is not dropped: that needs root)
  warm: the median of RUNS more requests on that connection

Prints a Markdown table. bench/datagrowth.sh starts a private PostgreSQL
(scripts/testdb.sh) and calls this; docs/benchmarks.md ("Data growth") keeps
the figures. Performance is benchmarked, never asserted by a timed test.
"""
import argparse
import http.client
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time

DAY = 86400000

COLS = ("id, created_at, key_id, user_id, model, upstream_model, channel_id, attempts, "
        "prompt_tokens, completion_tokens, cached_tokens, cost, status, latency_ms, "
        "ttfb_ms, is_stream, client_ip, error, end_reason, usage_estimated")

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


# ---- a gateway on the database: the real rollup and the real admin API ---------
TOKEN = "datagrowth-admin-token-0123456789abcdef"
PORT = 19040


class Gateway:
    """httpd with mod_nebula_relay (admin API) and mod_nebula_billing (the
    scheduler's rollup) on the bench database, on 127.0.0.1:PORT."""

    def __init__(self, workdir, top, driver, params):
        self.dir = os.path.join(workdir, "httpd-" + driver)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "httpd.conf")
        lib = "/usr/lib/apache2/modules"
        with open(self.conf, "w") as f:
            f.write("""ServerRoot "{d}"
PidFile "{d}/httpd.pid"
DefaultRuntimeDir "{d}"
Mutex file:{d} default
ErrorLog "{d}/error_log"
LogLevel warn
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
LoadModule mpm_event_module {lib}/mod_mpm_event.so
ServerLimit 1
StartServers 1
ThreadsPerChild 8
MaxRequestWorkers 8
LoadModule authz_core_module {lib}/mod_authz_core.so
LoadModule proxy_module {lib}/mod_proxy.so
LoadModule dbd_module {lib}/mod_dbd.so
LoadModule nebula_relay_module {top}/mod_nebula_relay/.libs/mod_nebula_relay.so
LoadModule nebula_billing_module {top}/mod_nebula_billing/.libs/mod_nebula_billing.so
DBDriver {driver}
DBDParams "{params}"
NebulaCryptoSecret "datagrowth-crypto-secret-0123456789abcdef"
NebulaAdminToken "{token}"
NebulaSessionSecret "datagrowth-session-secret-0123456789abcdef"
NebulaBilling On
NebulaBillingSpool {d}/billing.spool
# the rollup runs once, through the admin API (no periodic passes besides):
# every closed hour in one pass; the 90 days are kept
NebulaScheduler Off
NebulaLogRollup 10000
NebulaLogRetention Off
<Location /api>
    Require all granted
    NebulaAdmin On
</Location>
""".format(d=self.dir, port=PORT, lib=lib, top=top, driver=driver, params=params,
           token=TOKEN))
        self.conn = None

    def ctl(self, verb):
        subprocess.run(["/usr/sbin/apache2", "-f", self.conf, "-k", verb], check=verb != "stop",
                       stderr=subprocess.DEVNULL if verb == "stop" else None)
        if verb == "stop":
            for _ in range(100):
                if not os.path.exists(os.path.join(self.dir, "httpd.pid")):
                    break
                time.sleep(0.1)
            return
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", PORT, timeout=1).connect()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the gateway did not start: see %s/error_log" % self.dir)

    def get(self, method, path, timeout=3600):
        """(ms, status) of one request on the kept connection."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
        t0 = time.perf_counter()
        self.conn.request(method, path, headers={"Authorization": "Bearer " + TOKEN})
        res = self.conn.getresponse()
        body = res.read()
        ms = (time.perf_counter() - t0) * 1000
        if res.status != 200:
            raise SystemExit("%s %s: %d %s" % (method, path, res.status, body[:300]))
        return ms, json.loads(body)

    def fresh(self):
        """A new connection (a new child's database connection too)."""
        if self.conn:
            self.conn.close()
        self.conn = None
        self.ctl("stop")
        self.ctl("start")


def sql(db, stmt):
    """Run @a stmt on the bench database: ("sqlite", path) or ("pgsql", params)."""
    if db[0] == "sqlite":
        c = sqlite3.connect(db[1], isolation_level=None)
        out = c.execute(stmt).fetchall()
        c.close()
        return out
    cmd, env = psql_cmd(db[1])
    out = subprocess.run(cmd + ["-At", "-F", " ", "-c", stmt], env=env, check=True,
                         capture_output=True).stdout.decode()
    return [tuple(l.split()) for l in out.splitlines() if l]


def loaded(db):
    """Whether the database holds the rows of an earlier load."""
    try:
        return int(sql(db, "SELECT COUNT(*) FROM (SELECT 1 FROM request_logs LIMIT 1) x")[0][0]) > 0
    except (sqlite3.Error, subprocess.CalledProcessError):
        return False


ROLLUPS = ("'request_logs', 'request_logs_summary', 'request_logs_summary_day'")


def rollup(gw, db):
    """Every closed hour and day through the scheduler (billing_rollup.c)."""
    sql(db, "UPDATE nebula_rollup_state SET done_to = 0 WHERE name IN (%s)" % ROLLUPS)
    gw.fresh()
    ms, _ = gw.get("POST", "/api/billing/scheduler/run")
    # the rollup tables treated as the raw rows after their load (load_pg,
    # load_sqlite), so that both sides of the comparison read tables in the
    # same state
    sql(db, "ANALYZE" if db[0] == "sqlite" else "VACUUM ANALYZE")
    counts = sql(db, "SELECT (SELECT COUNT(*) FROM request_log_hourly), "
                     "(SELECT COUNT(*) FROM request_log_hourly_total), "
                     "(SELECT COUNT(*) FROM request_log_summary WHERE span_hours = 1), "
                     "(SELECT COUNT(*) FROM request_log_summary WHERE span_hours = 24)")[0]
    return ms / 1000, [int(x) for x in counts]


def workload(end):
    """(name, admin API path) of the dashboards' queries over the data."""
    def rng(span):
        return "from=%d&to=%d" % (end - span, end)
    return [
        ("usage 24 h by hour", "/api/stats/usage?bucket=hour&" + rng(DAY)),
        ("usage 7 d by hour, one model", "/api/stats/usage?bucket=hour&model=model-03&"
         + rng(7 * DAY)),
        ("usage 30 d by day", "/api/stats/usage?bucket=day&" + rng(30 * DAY)),
        ("usage 30 d by day, one user", "/api/stats/usage?bucket=day&user_id=17&"
         + rng(30 * DAY)),
        ("usage 30 d by day, one key", "/api/stats/usage?bucket=day&key_id=117&"
         + rng(30 * DAY)),
        ("usage 90 d by day", "/api/stats/usage?bucket=day&" + rng(90 * DAY)),
        ("summary 24 h (totals, p50/p95/p99)", "/api/stats/summary?" + rng(DAY)),
        ("summary 24 h by model", "/api/stats/summary?by=model&limit=50&" + rng(DAY)),
        ("summary 7 d by model", "/api/stats/summary?by=model&limit=50&" + rng(7 * DAY)),
        ("summary 30 d by model", "/api/stats/summary?by=model&limit=50&" + rng(30 * DAY)),
        ("summary 30 d by channel", "/api/stats/summary?by=channel&limit=50&"
         + rng(30 * DAY)),
        ("summary 30 d by key (top 50)", "/api/stats/summary?by=key&limit=50&"
         + rng(30 * DAY)),
        ("summary 30 d by user (top 50)", "/api/stats/summary?by=user&limit=50&"
         + rng(30 * DAY)),
        ("summary 30 d, one user", "/api/stats/summary?user_id=17&" + rng(30 * DAY)),
        ("summary 90 d (totals)", "/api/stats/summary?" + rng(90 * DAY)),
    ]


def time_api(gw, path, runs, restart):
    """cold (a new gateway child and, for PostgreSQL, a restarted server) and
    the median of @a runs warm requests, in ms; and the last answer."""
    if restart:
        gw.ctl("stop")
        restart()
    gw.fresh()
    cold, out = gw.get("GET", path)
    warm = [gw.get("GET", path)[0] for _ in range(runs)]
    return cold, statistics.median(warm), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000000)
    ap.add_argument("--dir", default="bench/.work/datagrowth")
    ap.add_argument("--pg", help="apr_dbd pgsql parameters (host= port= user= dbname=)")
    ap.add_argument("--pg-restart", help="a command that restarts that PostgreSQL")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nebulactl", default="admin/nebulactl/nebulactl")
    ap.add_argument("--db", choices=("both", "sqlite", "pgsql"), default="both",
                    help="which databases to run on")
    ap.add_argument("--raw-runs", type=int, help="warm runs over the raw rows (default --runs)")
    ap.add_argument("--no-rollup", action="store_true",
                    help="time only: keep the rollups an earlier run made")
    ap.add_argument("--no-time", action="store_true",
                    help="load and roll up only (to time later with --skip-load --no-rollup)")
    ap.add_argument("--skip-load", action="store_true",
                    help="reuse the databases an earlier run loaded (those it did load)")
    a = ap.parse_args()
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.makedirs(a.dir, exist_ok=True)
    path = os.path.abspath(os.path.join(a.dir, "datagrowth.db"))
    stamp = os.path.join(a.dir, "end.txt")
    if a.skip_load:
        end = int(open(stamp).read())
    else:
        end = int(time.time() * 1000)
        open(stamp, "w").write(str(end))
    results = {}
    dbs = [("SQLite", ("sqlite3", path), ("sqlite", path))] if a.db != "pgsql" else []
    if a.pg and a.db != "sqlite":
        dbs.append(("PostgreSQL", ("pgsql", a.pg), ("pgsql", a.pg)))
    restart = (lambda: subprocess.run(a.pg_restart, shell=True, check=True,
                                      stdout=subprocess.DEVNULL)) if a.pg_restart else None
    for name, dbd, db in dbs:
        if not a.skip_load or not loaded(db):
            log("%s: loading %d rows..." % (name, a.rows))
            took = load_sqlite(path, a.rows, end, a.nebulactl) if db[0] == "sqlite" else \
                load_pg(db[1], a.rows, end, a.nebulactl)
            log("%s: loaded in %.0f s" % (name, took))
            results[name + " load"] = took
        else:  # a newer tree may bring migrations
            nebulactl(["--dsn", "sqlite:" + path] if db[0] == "sqlite"
                      else ["--driver", "pgsql", "--params", db[1]], a.nebulactl)
        gw = Gateway(a.dir, top, dbd[0], dbd[1])
        try:
            if not a.no_rollup:
                rt, counts = rollup(gw, db)
                log("%s: rolled up in %.0f s: %s" % (name, rt, counts))
                results[name + " rollup"] = (rt, counts)
            if a.no_time:
                continue
            for mode in ("raw", "rollup"):
                # raw: the watermarks at 0, so the API reads request_logs alone
                # (what it did before the rollups); rollup: as the scheduler
                # left them
                saved = sql(db, "SELECT name, done_to FROM nebula_rollup_state")
                if mode == "raw":
                    sql(db, "UPDATE nebula_rollup_state SET done_to = 0")
                answers = {}
                for q, p in workload(end):
                    runs = a.raw_runs if mode == "raw" and a.raw_runs else a.runs
                    cold, warm, out = time_api(gw, p, runs,
                                               restart if db[0] == "pgsql" else None)
                    results[(name, q, mode)] = (cold, warm)
                    answers[q] = out
                    log("%s | %s | %s: cold %.1f ms, warm %.1f ms" % (name, q, mode, cold,
                                                                       warm))
                results[(name, mode)] = answers
                for n_, d in saved:
                    sql(db, "UPDATE nebula_rollup_state SET done_to = %s WHERE name = '%s'"
                        % (d, n_))
            same = [q for q, _ in workload(end)
                    if results[(name, "raw")][q] != results[(name, "rollup")][q]]
            results[name + " differ"] = same
            log("%s: answers that differ between raw rows and rollup: %s" % (name, same))
        finally:
            if gw.conn:
                gw.conn.close()
            gw.ctl("stop")
    print("| database | dashboard query (admin API) | raw rows: cold / warm ms "
          "| rollup: cold / warm ms |")
    print("|---|---|---|---|")
    for name, _, _ in dbs if not a.no_time else []:
        for q, _ in workload(end):
            r = results[(name, q, "raw")]
            o = results[(name, q, "rollup")]
            print("| %s | %s | %.1f / %.1f | %.1f / %.1f |" % (name, q, r[0], r[1], o[0], o[1]))
    for name, _, _ in dbs:
        if name + " load" in results:
            print("\n%s load: %.0f s" % (name, results[name + " load"]))
        if name + " rollup" in results:
            rt, c = results[name + " rollup"]
            print("%s rollup: %.0f s; request_log_hourly %d rows, request_log_hourly_total %d, "
                  "request_log_summary %d hour rows, %d day rows" % (name, rt, *c))
        if name + " differ" in results:
            print("%s: answers differing between raw rows and rollup: %s"
                  % (name, results[name + " differ"] or "none"))


if __name__ == "__main__":
    main()
