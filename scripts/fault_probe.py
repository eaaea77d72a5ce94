#!/usr/bin/env python3
"""The fault runs' probe (scripts/faults.sh): a second, slow publisher next
to herald-bench's load that times every answer, and a readiness poller.

  fault_probe.py run URLS API_KEY TENANT USER LOG
      Until SIGTERM: every 100 ms POST one notification to USER (nodes in
      turn; a node that refuses the connection is skipped for the next one,
      as a load balancer would) and log "t node status id"; every 500 ms
      GET /readyz of each node and log "t node ready|notready".
  fault_probe.py check URLS JWT_SECRET TENANT USER LOG
      List USER's notifications (GET /v1/me/notifications, every page) and
      print, as JSON: every id answered 201 that is not listed (a false 201),
      and the answers by status.
  fault_probe.py window LOG FROM TO
      JSON figures of the probe's log for the fault window [FROM, TO] (unix
      s): answers by status inside it, the first answer other than 201 and
      the last, the first 201 after TO (recovery), and each node's
      readiness changes.
  fault_probe.py row FAULT LOAD DIR FROM TO STATUS
      One Markdown table row from a scenario's directory (herald-bench's
      result.json and timestamped bench.log, the probe's check.json and
      window.json, rolling.txt when present); STATUS is herald-bench's exit
      status.

Standard library only.
"""
import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone
import os
import signal
import sys
import time
import urllib.error
import urllib.request


def post(url, key, body):
    req = urllib.request.Request(url + "/v1/notifications", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r).get("id", "")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, OSError) as e:
        return "conn", str(getattr(e, "reason", e)).replace(" ", "_")[:60]


def ready(url):
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def run(urls, key, tenant, user, log):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    nodes = urls.split(",")
    k, i, last_ready = 0, 0, {}
    next_ready = 0.0
    with open(log, "a", buffering=1) as out:
        while not stop:
            t0 = time.time()
            body = {"tenant": tenant, "to": {"users": [user]}, "type": "fault.probe", "title": "probe", "data": {"k": k}}
            for _ in nodes:  # a refused connection moves on to the next node
                node = nodes[i % len(nodes)]
                i += 1
                status, ident = post(node, key, body)
                out.write(f"{time.time():.3f} {node} {status} {ident or '-'}\n")
                if status != "conn":
                    break
            k += 1
            if t0 >= next_ready:
                next_ready = t0 + 0.5
                for node in nodes:
                    r = ready(node)
                    if last_ready.get(node) != r:
                        last_ready[node] = r
                        out.write(f"{time.time():.3f} {node} {'ready' if r else 'notready'} -\n")
            time.sleep(max(0.0, 0.1 - (time.time() - t0)))


def token(secret, tenant, user):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": user, "tenant_id": tenant, "iat": now, "exp": now + 3600}).encode())
    sig = b64(hmac.new(secret.encode(), f"{head}.{claims}".encode(), hashlib.sha256).digest())
    return f"{head}.{claims}.{sig}"


def read_log(log):
    rows = []
    with open(log) as f:
        for line in f:
            t, node, status, ident = line.split()
            rows.append((float(t), node, status, ident))
    return rows


def check(urls, secret, tenant, user, log):
    rows = read_log(log)
    acked = {ident for _, _, status, ident in rows if status == "201"}
    by_status = {}
    for _, _, status, _ in rows:
        if status not in ("ready", "notready"):
            by_status[status] = by_status.get(status, 0) + 1
    listed, before = set(), ""
    tok = token(secret, tenant, user)
    node = urls.split(",")[0]
    while True:
        q = "?limit=200" + (f"&before={before}" if before else "")
        req = urllib.request.Request(node + "/v1/me/notifications" + q, headers={"Authorization": "Bearer " + tok})
        with urllib.request.urlopen(req, timeout=30) as r:
            page = json.load(r)
        # The user also sees the load's tenant-wide broadcasts: only the probe's count.
        listed.update(n["id"] for n in page.get("notifications", []) if n.get("type") == "fault.probe")
        before = page.get("next") or ""
        if not before or not page.get("notifications"):
            break
    missing = sorted(acked - listed)
    print(json.dumps({"answers": by_status, "acked": len(acked), "listed": len(listed),
                      "acked_not_listed": len(missing), "acked_not_listed_ids": missing[:10],
                      "listed_not_acked": len(listed - acked)}))


def window(log, start, end):
    rows = read_log(log)
    pubs = [r for r in rows if r[2] not in ("ready", "notready")]
    inside = [r for r in pubs if start <= r[0] <= end + 0.5]
    by_status = {}
    for r in inside:
        by_status[r[2]] = by_status.get(r[2], 0) + 1
    bad = [r[0] for r in pubs if r[2] != "201" and r[0] >= start]
    after = [r[0] for r in pubs if r[2] == "201" and r[0] >= end]
    fail_after = [r[0] for r in pubs if r[2] != "201" and r[0] >= end]
    first_ok = next((t for t in after if not any(f > t for f in fail_after)), None)
    readiness = [(round(r[0] - start, 1), r[1], r[2]) for r in rows if r[2] in ("ready", "notready") and r[0] >= start - 1]
    print(json.dumps({
        "answers_in_window": by_status,
        "first_failure_s": round(bad[0] - start, 1) if bad else None,
        "last_failure_s": round(bad[-1] - start, 1) if bad else None,
        "recovered_after_end_s": round(first_ok - end, 2) if first_ok is not None else None,
        "readiness_changes": readiness,
    }))


NAMES = {"conn": "refused connections (retried on the next node)", "error": "transport errors"}


def fmt_counts(m):
    return ", ".join(f"{v:,} {NAMES.get(k, k)}" for k, v in sorted(m.items(), key=lambda kv: -kv[1])) or "none"


def clients_back(bench_log, start, total):
    """Seconds from start until herald-bench's progress (a line every 2 s)
    showed every connection live again after the fault's last dip. The
    load's own resumes make dips of a few connections, which do not count."""
    small = max(10, total // 100)
    dipped, back = False, None
    with open(bench_log) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 6 or parts[1] != "herald-bench:" or "conns" not in parts:
                continue
            t = float(parts[0])
            live = int(parts[parts.index("conns") + 1].split("/")[0])
            if t < start:
                continue
            if live < total - small:
                dipped, back = True, None
            elif dipped and back is None and live >= total - small:
                back = t
    if not dipped:
        return f"never more than {small} down at once"
    return f"all but a few live again by +{back - start:.0f} s" if back else "not all live again"


def unix(rfc3339):
    """Unix seconds of herald-bench's UTC time (up to nanoseconds, Z)."""
    whole, _, frac = rfc3339.rstrip("Z").partition(".")
    return datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp() + float("0." + (frac or "0"))


def row(fault, load, d, start, end, status):
    res = json.load(open(f"{d}/result.json")) if os.path.getsize(f"{d}/result.json") else {}
    chk = json.load(open(f"{d}/check.json"))
    win = json.load(open(f"{d}/window.json"))
    pubs = {}
    for name in ("unicast", "broadcast"):
        st = res.get(name) or {}
        pubs["201"] = pubs.get("201", 0) + st.get("items", 0)
        for k, v in (st.get("failures") or {}).items():
            pubs[k] = pubs.get(k, 0) + v
    loss = res.get("expected", 0) - res.get("delivered", 0) - res.get("resync_skipped", 0)
    rec = []
    if win["first_failure_s"] is not None:
        rec.append(f"probe failures +{win['first_failure_s']} to +{win['last_failure_s']} s")
    if win["recovered_after_end_s"] is not None and win["first_failure_s"] is not None and end > start:
        rec.append(f"201s again {win['recovered_after_end_s']} s after the fault ended")
    urls = open(f"{d}/urls.txt").read().strip().split(",") if os.path.exists(f"{d}/urls.txt") else []
    name = {u: f"node {i + 1}" for i, u in enumerate(urls)}
    changes = "; ".join(f"{name.get(node, node)} {state} +{t} s" for t, node, state in win["readiness_changes"] if t >= 0)
    if changes:
        rec.append("/readyz: " + changes)
    rec.append("clients: " + clients_back(f"{d}/bench.log", start, res.get("connected", 0)))
    worst = (res.get("latency_worst") or []) + (res.get("replay_worst") or [])
    if worst:
        last = max(unix(w["at"]) for w in worst)
        rec.append(f"slowest delivery live {res['latency']['max_ms'] / 1000:.1f} s, replayed "
                   f"{res['replay_latency']['max_ms'] / 1000:.1f} s; the last of the slowest at +{last - start:.0f} s")
    if os.path.exists(f"{d}/rolling.txt"):
        rec.append(open(f"{d}/rolling.txt").read().strip().replace("\n", ", "))
    clients = (f"{res.get('reconnects', 0):,} resumes, {res.get('reconnect_failures', 0):,} failed attempts, "
               f"{res.get('unexpected_closes', 0):,} closed by the server or the network"
               + "".join(f", {v:,}× close code {k}" if k != "0" else f", {v:,}× EOF or reset" for k, v in (res.get("close_codes") or {}).items()))
    ok = status == "0" and res.get("pass") and chk["acked_not_listed"] == 0
    cells = [
        fault, load,
        f"bench: {fmt_counts(pubs)}; probe: {fmt_counts(chk['answers'])}",
        f"{res.get('acked_not_delivered', '?')} / {chk['acked_not_listed']} (committed though refused: "
        f"{res.get('delivered_not_acked', '?')} / {chk['listed_not_acked']})",
        f"{max(loss, 0):,}, {res.get('duplicates', '?')}, {res.get('gaps', '?')} of {res.get('expected', 0):,}"
        + (f" (+{-loss:,} refused but committed)" if loss < 0 else ""),
        "; ".join(rec), clients, "PASS" if ok else "FAIL " + "; ".join(res.get("failures") or []),
    ]
    print("| " + " | ".join(cells) + " |")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "run":
        run(*args)
    elif cmd == "check":
        check(*args)
    elif cmd == "window":
        window(args[0], float(args[1]), float(args[2]))
    elif cmd == "row":
        row(args[0], args[1], args[2], float(args[3]), float(args[4]), args[5])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
