"""The soak run behind bench/soak.sh: starts Rampart, two upstream targets and a Redis of its
own, sends mixed traffic, injects faults on a schedule and judges every failure.

Traffic (weights): benign GET (200), SQL injection (403, the WAF), missing API key (401),
good API key (200). A failure is any other answer or a broken connection. It is explained
when it falls within a short grace window after a fault that can cause it (an upstream
target killed: its in-flight requests; a Redis restart: none expected, the limits fall back
to local counting); anything else is a bug and fails the run.
"""
import argparse, hashlib, http.client, json, os, random, secrets, signal, socket, ssl
import subprocess, sys, tempfile, threading, time

BACKEND = r'''
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False

class Proc:
    """A child process that can be killed and started again."""
    def __init__(self, argv, port=None, log=None):
        self.argv, self.port, self.log, self.p = argv, port, log, None
    def start(self):
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.p = subprocess.Popen(self.argv, stdout=out, stderr=out)
        if self.port and not wait_port(self.port):
            raise SystemExit(f"soak: {self.argv[0]} did not listen on {self.port}")
    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()

def make_cert(d, n):
    """A fresh self-signed certificate and key, swapped in atomically (key first)."""
    tmp_c, tmp_k = os.path.join(d, f"new{n}.pem"), os.path.join(d, f"new{n}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", f"/CN=localhost/O=soak-{n}",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", tmp_k, "-out", tmp_c], check=True, capture_output=True)
    os.replace(tmp_k, os.path.join(d, "key.pem"))
    os.replace(tmp_c, os.path.join(d, "cert.pem"))

def config(d, p, key_hash, generation, crs):
    waf = (f"waf:\n  crs: {{ dir: {crs} }}\n  paranoia: 1\n" if crs else
           "waf:\n  custom_rules: |\n    SecRule ARGS \"@detectSQLi\" \"id:10001,phase:2,deny,msg:'SQLi'\"\n")
    # The rate changes on every reload so each one builds a new snapshot.
    return f"""# soak generation {generation}
listeners:
  - name: https
    address: 127.0.0.1:{p['https']}
    tls:
      certificates:
        - {{ cert: cert.pem, key: key.pem }}
admin:
  address: 127.0.0.1:{p['admin']}
redis: redis://127.0.0.1:{p['redis']}
upstreams:
  app:
    targets: ["127.0.0.1:{p['a']}", "127.0.0.1:{p['b']}"]
    health_check: {{ path: /healthz, interval: 1s, unhealthy_after: 1, healthy_after: 1 }}
    timeouts: {{ connect: 1s, read: 10s }}
    retries: 1
    passive: {{ failures: 1, eject_for: 5s }}
consumers:
  - id: soak-client
    api_keys: [{{ sha256: {key_hash} }}]
auth:
  api_key: {{ header: X-API-Key }}
rate_limit:
  - {{ key: client_ip, rate: {100000 + generation % 2}/s, backend: redis, on_backend_error: local }}
{waf}routes:
  - name: public
    paths: ["/public"]
    upstream: app
  - name: keys
    paths: ["/keys"]
    upstream: app
    auth: {{ methods: [api_key] }}
access_log:
  target: {d}/access.log
events:
  file: {d}/events.jsonl
"""

KINDS = [  # (weight, name, path, headers, expected status)
    (60, "benign", "/public/items?id=42&q=rampart", {}, 200),
    (15, "attack", "/public/items?id=1%27%20OR%20%271%27%3D%271", {}, 403),
    (10, "no-key", "/keys/items", {}, 401),
    (15, "key", "/keys/items", None, 200),
]

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = 0
        self.by_kind = {}
        self.failures = []  # (time, kind, what)

    def record(self, kind, ok, what=None):
        with self.lock:
            self.sent += 1
            k = self.by_kind.setdefault(kind, [0, 0])
            k[0] += 1
            if not ok:
                k[1] += 1
                self.failures.append((time.time(), kind, what))

def client(port, api_key, rate, stop, stats, certs_seen):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = None
    weights = [k[0] for k in KINDS]
    interval = 1.0 / rate
    next_at = time.time()
    while not stop.is_set():
        _, kind, path, headers, expected = random.choices(KINDS, weights)[0]
        if headers is None:
            headers = {"X-API-Key": api_key}
        try:
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=15)
                conn.connect()
                certs_seen.add(hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest())
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            r.read()
            ok = r.status == expected
            stats.record(kind, ok, None if ok else f"status {r.status}")
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:  # a broken connection is a failure too
            stats.record(kind, False, f"{type(e).__name__}: {e}")
            if conn:
                conn.close()
            conn = None
        # Reconnect now and then, so new connections meet rotated certificates.
        if conn is not None and random.random() < 0.01:
            conn.close()
            conn = None
        next_at += interval
        delay = next_at - time.time()
        if delay > 0:
            stop.wait(delay)
        else:
            next_at = time.time()

def proc_stats(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))

def metric(port, name):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        return {l.split(" ")[0]: float(l.split(" ")[-1]) for l in text.splitlines()
                if l.startswith(name)}
    except Exception:
        return {}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("-d", "--duration", type=int, default=1800, help="seconds (default 1800)")
    ap.add_argument("-r", "--rate", type=int, default=200, help="requests/s in all (default 200)")
    ap.add_argument("-c", "--clients", type=int, default=4)
    ap.add_argument("--grace", type=float, default=3.0, help="seconds a fault may explain failures")
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix="rampart-soak-")
    p = {k: free_port() for k in ("https", "admin", "redis", "a", "b")}
    api_key = secrets.token_urlsafe(32)
    key_hash = hashlib.sha256(api_key.encode()).hexdigest()
    shared = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "crs")
    crs = os.path.abspath(shared) if os.path.isdir(os.path.join(shared, "rules")) else None
    make_cert(d, 0)
    cfg_path = os.path.join(d, "rampart.yaml")
    generation = 0
    with open(cfg_path, "w") as f:
        f.write(config(d, p, key_hash, generation, crs))

    redis = Proc(["redis-server", "--port", str(p["redis"]), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no"], p["redis"])
    backends = {t: Proc([sys.executable, "-c", BACKEND, str(p[t])], p[t]) for t in ("a", "b")}
    gw = Proc([a.binary, "serve", "--config", cfg_path], p["https"], os.path.join(d, "rampart.log"))
    procs = [redis, *backends.values()]
    for pr in procs:
        pr.start()
    gw.start()
    procs.append(gw)
    print(f"soak: {a.duration} s, ~{a.rate} requests/s over {a.clients} connections, "
          f"WAF {'CRS from ' + crs if crs else 'inline rules'}; files in {d}", flush=True)
    time.sleep(2)  # health checks see both targets

    stats, stop, certs_seen = Stats(), threading.Event(), set()
    threads = [threading.Thread(target=client, daemon=True,
                                args=(p["https"], api_key, a.rate / a.clients, stop, stats, certs_seen))
               for _ in range(a.clients)]
    faults = []  # (time, name, can_fail)
    start = time.time()
    for t in threads:
        t.start()
    rss0, fd0 = None, None
    samples = []
    redis_restarts = {int(a.duration / 3), int(2 * a.duration / 3)}
    killed = None
    cert_n = 0
    try:
        for s in range(1, a.duration + 1):
            time.sleep(max(0, start + s - time.time()))
            if s % 10 == 0:
                generation += 1
                with open(cfg_path + ".new", "w") as f:
                    f.write(config(d, p, key_hash, generation, crs))
                os.replace(cfg_path + ".new", cfg_path)
                gw.p.send_signal(signal.SIGHUP)
                faults.append((time.time(), "reload", False))
            if s % 60 == 0:
                target = "a" if (s // 60) % 2 else "b"
                backends[target].kill()
                faults.append((time.time(), f"kill {target}", True))
                killed = (target, s + 5)
            if killed and s == killed[1]:
                backends[killed[0]].start()
                faults.append((time.time(), f"restart {killed[0]}", False))
                killed = None
            if s in redis_restarts:
                redis.kill()
                faults.append((time.time(), "redis down", True))
                time.sleep(2)
                redis.start()
                faults.append((time.time(), "redis up", True))
            if s % 60 == 30:
                cert_n += 1
                make_cert(d, cert_n)
                faults.append((time.time(), "certificate rotated", False))
            if s % 5 == 0:
                rss, fds = proc_stats(gw.p.pid)
                samples.append((s, rss, fds))
                if rss0 is None and s >= min(30, a.duration // 4):
                    rss0, fd0 = rss, fds
            if gw.p.poll() is not None:
                print("soak: rampart exited", file=sys.stderr)
                break
    finally:
        stop.set()
        for t in threads:
            t.join(20)
        end_rss, end_fds = (proc_stats(gw.p.pid) if gw.p.poll() is None else (None, None))
        reloads = metric(p["admin"], "rampart_config_reloads_total")
        rotations = metric(p["admin"], "rampart_tls_certificate_reloads_total")
        for pr in procs:
            pr.kill()

    unexplained = []
    explained = 0
    for (t, kind, what) in stats.failures:
        cause = next((f for f in faults if f[2] and f[0] - 0.5 <= t <= f[0] + a.grace), None)
        if cause:
            explained += 1
        else:
            unexplained.append((round(t - start, 1), kind, what))
    elapsed = time.time() - start
    print(f"soak: {elapsed:.0f} s, {stats.sent} requests ({stats.sent / elapsed:.0f}/s), "
          f"{len(stats.failures)} failed: {explained} explained by a fault, {len(unexplained)} not")
    for kind, (n, bad) in sorted(stats.by_kind.items()):
        print(f"  {kind:8} {n:8} sent {bad:6} failed")
    counts = {}
    for f in faults:
        counts[f[1].split(" ")[0]] = counts.get(f[1].split(" ")[0], 0) + 1
    print("  faults: " + ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items())))
    print(f"  reloads (metrics): {reloads}")
    print(f"  certificate rotations (metrics): {rotations}; certificates seen by clients: {len(certs_seen)}")
    peak_rss = max((s[1] for s in samples), default=0)
    peak_fds = max((s[2] for s in samples), default=0)
    print(f"  RSS MiB: start {rss0}, end {end_rss}, peak {peak_rss}; "
          f"open fds: start {fd0}, end {end_fds}, peak {peak_fds}")
    for u in unexplained[:20]:
        print(f"  unexplained at +{u[0]} s: {u[1]}: {u[2]}")
    ok = not unexplained and gw.p.returncode in (None, -9)
    # Bounds: memory may settle, not climb; descriptors come back to where they were.
    if rss0 and end_rss and end_rss > rss0 * 1.5 + 32:
        print(f"soak: RSS grew from {rss0} to {end_rss} MiB")
        ok = False
    if fd0 is not None and end_fds is not None and end_fds > fd0 + 32:
        print(f"soak: open descriptors grew from {fd0} to {end_fds}")
        ok = False
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump({"sent": stats.sent, "failed": len(stats.failures), "unexplained": unexplained,
                   "samples": samples, "faults": [(round(t - start, 2), n) for t, n, _ in faults]}, f)
    print("soak: PASS" if ok else "soak: FAIL")
    sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main()
