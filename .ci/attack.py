#!/usr/bin/env python3
"""Attack the real sip-assistant binary (the release build) from inside a network namespace that has
only loopback (run by `.ci/attack`, which makes the namespace with `unshare --net` and adds the test
address 10.213.0.1 to its loopback for "a client on the LAN").

Every attack is thrown while a prober asks GET /health every 100 ms. Pass means: the process stays
alive, /health answers in < 1 s throughout, the other calls keep pacing, no record is lost, and
every attack is refused (with a log line where the service sees it). Prints figures; exits non-zero
on the first failed check. Standard library only, plus schemathesis from the venv named by
--schemathesis. Peers: a minimal SIP phone written here (it answers, sends and records RTP), the
webhook receiver tests/support/webhook_receiver.py. Every process started here is stopped by PID.
"""
import argparse
import json
import os
import random
import re
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edge  # noqa: E402  (Procs, Receiver, free_block, check, Fail)
from edge import Fail, free_block  # noqa: E402

ROOT = edge.ROOT
TOKEN = edge.TOKEN
LAN = "10.213.0.1"  # on the namespace's loopback: a non-loopback client address
FIGURES = {}
# --keep-going (for developing this script): report a failed check and go on.
KEEP_GOING = {"on": False, "failed": []}


def check(cond, msg):
    if cond:
        edge.CHECKS["passed"] += 1
        return
    if KEEP_GOING["on"]:
        print(f"[attack] CHECK FAILED (going on): {msg[:2000]}", flush=True)
        KEEP_GOING["failed"].append(msg)
        return
    raise Fail(msg)


def step(msg):
    print(f"[attack] {msg}", flush=True)


class Service:
    """sip-assistant run with `config` (TOML text without data_dir); API address from its log."""

    def __init__(self, procs, work, binary, config, prefix=()):
        self.work = work
        self.data = os.path.join(work, "data")
        self.config_path = os.path.join(work, "config.toml")
        with open(self.config_path, "w") as f:
            f.write(config.replace("@DATA@", self.data))
        self.procs, self.binary, self.prefix = procs, binary, prefix
        self.log_path = os.path.join(work, "service.log")
        self.log_file = open(self.log_path, "w")
        self.start()

    def start(self):
        """Start (again) on the same config and data; wait for the API."""
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        self.log_file.flush()
        before = len(self.log())
        self.proc = self.procs.start(list(self.prefix) + [self.binary, "run", "--config", self.config_path],
                                     env=env, stdout=subprocess.DEVNULL, stderr=self.log_file, cwd=self.work)
        self.api = None
        deadline = time.time() + 60
        while time.time() < deadline and self.api is None:
            m = re.search(r"listening on http://[0-9.]+:(\d+)", self.log()[before:])
            if m:
                self.api = int(m.group(1))
            elif self.proc.poll() is not None:
                raise Fail(f"the service exited ({self.proc.returncode}):\n{self.log()}")
            else:
                time.sleep(0.05)
        check(self.api is not None, f"no API within 60 s:\n{self.log()}")
        m = re.search(r"SIP listening port=(\d+)", self.log()[before:])
        self.sip_port = int(m.group(1)) if m else None

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def http(self, method, path, body=None, token=TOKEN, host="127.0.0.1", timeout=10):
        return edge.http(self.api, method, path, body, token, host, timeout)

    def rss_kib(self):
        return edge.rss_kib(self.proc.pid)

    def alive(self):
        return self.proc.poll() is None


class Prober(threading.Thread):
    """GET /health every 100 ms; records the slowest answer and every failure."""

    def __init__(self, service):
        super().__init__(daemon=True)
        self.service = service
        self.stop = threading.Event()
        self.worst = 0.0
        self.count = 0
        self.failures = []

    def run(self):
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                status, body = self.service.http("GET", "/health", token=None, timeout=2)
                ok = status == 200 and isinstance(body, dict) and body.get("status") == "healthy"
            except Exception as e:  # noqa: BLE001 (any failure counts)
                ok, status = False, repr(e)
            took = time.monotonic() - t
            self.worst = max(self.worst, took)
            self.count += 1
            if not ok or took >= 1.0:
                self.failures.append((time.strftime("%H:%M:%S"), status, round(took, 3)))
            self.stop.wait(0.1)

    def verdict(self, what):
        check(self.service.alive(), f"{what}: the service died:\n{self.service.log()[-3000:]}")
        check(not self.failures, f"{what}: /health failed or took >= 1 s: {self.failures[:5]}")
        step(f"{what}: process alive, /health answered {self.count} times, slowest {self.worst * 1000:.0f} ms")


# ---------------------------------------------------------------- a minimal SIP phone on loopback

def headers_of(msg):
    head = msg.split("\r\n\r\n", 1)[0].split("\r\n")
    out = {}
    for line in head[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip().lower(), []).append(v.strip())
    return head[0], out


def rtp_packet(seq, ts, ssrc, pt=0, payload=b"\xff" * 160, marker=False):
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF,
                       ssrc) + payload


class Call:
    def __init__(self):
        self.invite = None          # the INVITE text as received
        self.service_rtp = None     # (host, port) from the offer
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp.settimeout(0.2)
        self.arrivals = []          # (monotonic, seq, ts, src)
        self.answered_at = None
        self.bye_at = None
        self.stop = threading.Event()


class Phone(threading.Thread):
    """Answers every INVITE after `ring` seconds with PCMU + telephone-event, sends 20 ms of
    silence every 20 ms from its own RTP socket once answered, records every RTP packet it gets,
    answers BYE. `answer=False` lets it ring until the caller gives up."""

    def __init__(self, ring=0.0, answer=True):
        super().__init__(daemon=True)
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.sip.settimeout(0.2)
        self.port = self.sip.getsockname()[1]
        self.ring, self.answer = ring, answer
        self.calls = {}
        self.stop = threading.Event()
        self.received = []  # every SIP message, as text

    def uri(self):
        return f"sip:phone@127.0.0.1:{self.port}"

    def reply(self, msg, src, code, reason, tag, body=""):
        _, h = headers_of(msg)
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in h.get("via", [])]
        lines.append(f"From: {h['from'][0]}")
        to = h["to"][0]
        if tag and ";tag=" not in to:
            to += f";tag={tag}"
        lines.append(f"To: {to}")
        lines.append(f"Call-ID: {h['call-id'][0]}")
        lines.append(f"CSeq: {h['cseq'][0]}")
        lines.append(f"Contact: <sip:phone@127.0.0.1:{self.port}>")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        self.sip.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), src)

    def sdp(self, call):
        port = call.rtp.getsockname()[1]
        return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n")

    def run(self):
        while not self.stop.is_set():
            try:
                data, src = self.sip.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = data.decode(errors="replace")
            self.received.append(msg)
            first, h = headers_of(msg)
            method = first.split(" ", 1)[0]
            call_id = h.get("call-id", [""])[0]
            if method == "INVITE" and call_id not in self.calls:
                call = Call()
                call.invite = msg
                body = msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else ""
                c = re.search(r"c=IN IP4 (\S+)", body)
                m = re.search(r"m=audio (\d+)", body)
                if c and m:
                    call.service_rtp = (c.group(1), int(m.group(1)))
                self.calls[call_id] = call
                tag = f"ph{random.randrange(1 << 32):08x}"
                call.tag = tag
                self.reply(msg, src, 180, "Ringing", tag)
                if self.answer:
                    threading.Thread(target=self.answer_later, args=(call, msg, src, tag),
                                     daemon=True).start()
            elif method == "BYE":
                call = self.calls.get(call_id)
                if call:
                    call.bye_at = time.monotonic()
                    call.stop.set()
                self.reply(msg, src, 200, "OK", None)
            elif method == "CANCEL":
                self.reply(msg, src, 200, "OK", None)
                call = self.calls.get(call_id)
                if call:
                    invite = call.invite
                    self.reply(invite, src, 487, "Request Terminated", call.tag)
            elif method == "OPTIONS":
                self.reply(msg, src, 200, "OK", None)

    def answer_later(self, call, msg, src, tag):
        time.sleep(self.ring)
        call.answered_at = time.monotonic()
        self.reply(msg, src, 200, "OK", tag, self.sdp(call))
        threading.Thread(target=self.media, args=(call,), daemon=True).start()

    def media(self, call):
        """Send silence every 20 ms to the service and record what arrives."""
        ssrc = random.randrange(1 << 32)
        seq, ts = random.randrange(1 << 16), random.randrange(1 << 32)
        next_send = time.monotonic()
        while not call.stop.is_set():
            now = time.monotonic()
            if now >= next_send and call.service_rtp:
                call.rtp.sendto(rtp_packet(seq, ts, ssrc), call.service_rtp)
                seq, ts, next_send = seq + 1, ts + 160, next_send + 0.02
            try:
                call.rtp.settimeout(max(0.001, next_send - time.monotonic()))
                data, src = call.rtp.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) >= 12:
                s, t = struct.unpack("!HI", data[2:8])
                call.arrivals.append((time.monotonic(), s, t, src, data[1] & 0x7F))

    def close(self):
        self.stop.set()
        for c in self.calls.values():
            c.stop.set()


FLOOD = """
import os, socket, struct, sys, time
host, port, seconds, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
packet = struct.pack("!BBHII", 0x80, 0, 1, 1, 0xF100D) + os.urandom(160)
n, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    due = int((time.monotonic() - start) * rate)
    while n < due:
        try:
            s.sendto(packet, (host, port))
        except OSError:
            pass
        n += 1
    time.sleep(0.001)
print(n)
"""


def lateness_ms(arrivals, since, until):
    """p50/p99/max lateness of PCMU packets against the stream's own 20 ms grid (RTP timestamps
    at 8 kHz), and the packets lost (sequence gaps), in [since, until)."""
    pts = [(t, s, ts) for (t, s, ts, _, pt) in arrivals if since <= t < until and pt == 0]
    if len(pts) < 10:
        return None
    offsets = [t - ts / 8000.0 for (t, _, ts) in pts]
    base = min(offsets)
    late = sorted((o - base) * 1000 for o in offsets)
    seqs = sorted({s for (_, s, _) in pts})
    expected = (seqs[-1] - seqs[0]) % 65536 + 1
    return {"p50": late[len(late) // 2], "p99": late[int(len(late) * 0.99) - 1], "max": late[-1],
            "packets": len(pts), "lost": max(0, expected - len(seqs))}


# ---------------------------------------------------------------- attacks

def api_attacks(svc, prober, receiver):
    status, body = svc.http("GET", "/calls", token=None, host=LAN)
    check(status == 401, f"unauthenticated request from {LAN}: {status} {body}")
    step(f"unauthenticated GET /calls from {LAN} (the LAN): {status} {body}")
    status, body = svc.http("POST", "/call", {"message": "m", "extension": "+4930123456"})
    check(status == 403 and "calls.dial_allow" in body.get("detail", ""), f"forbidden extension: {status} {body}")
    step(f"forbidden extension: {status} {body['detail']}")
    for url in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:22/", "http://[::1]:25/"):
        status, body = svc.http("POST", "/call", {"message": "m", "extension": "1001",
                                                   "callback_url": url})
        check(status == 403 and "webhook.allow_hosts" in body.get("detail", ""),
              f"callback {url}: {status} {body}")
    step(f"link-local and loopback callbacks: 403 ({body['detail']})")
    # A burst from one LAN client: the excess is refused, /health and other clients are not.
    codes = [svc.http("GET", "/calls?limit=1", host=LAN)[0] for _ in range(260)]
    refused = codes.count(429)
    check(refused > 0 and set(codes) <= {200, 429}, f"rate limit: {sorted(set(codes))}, {refused} refused")
    status, _ = svc.http("GET", "/calls?limit=1")
    check(status == 200, f"another client after the burst: {status}")
    step(f"260 requests at once from one client: {codes.count(200)} answered, {refused} refused with 429")
    check("over api.rate_limit_per_second" in svc.log(), "no log line for the rate limit")


def rtp_attacks(svc, prober, receiver, rtp_min, rtp_max):
    spray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spray.bind((LAN, 0))  # another host than the phone (same-host latching to another port is allowed)
    spray.setblocking(False)
    p1, p2 = Phone(ring=3.0), Phone(ring=0.2)
    p1.start()
    p2.start()
    words = ("This is a long announcement for the attack test. The service must keep speaking to "
             "every phone at an even pace while strangers throw packets at it. ") * 6
    choice = {"prompt": "Press one to confirm or two to cancel.", "timeout_seconds": 5, "repeat_count": 1,
              "options": [{"value": "confirmed", "synonyms": ["yes"], "dtmf": "1"},
                          {"value": "cancelled", "synonyms": ["no"], "dtmf": "2"}]}
    status, body = svc.http("POST", "/call", {"message": words, "extension": p1.uri(), "call_id": "spray-1",
                                               "callback_url": receiver.url(), "choice": choice})
    check(status == 200, f"POST /call (spray-1): {status} {body}")
    # While the phone rings: RTP with RFC 4733 key 1 at every port of the range, from a stranger.
    deadline = time.monotonic() + 30
    while not p1.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    check(p1.calls, "the phone got no INVITE")
    call1 = next(iter(p1.calls.values()))
    sent = 0
    seq = 0
    until = None
    while until is None or time.monotonic() < until:
        if call1.answered_at and until is None:
            until = time.monotonic() + 2.0
        for port in range(rtp_min, rtp_max + 1, 2):
            for end in (0, 0, 0x80):
                payload = struct.pack("!BBH", 1, end | 10, 800)
                try:
                    spray.sendto(rtp_packet(seq, 1000, 0xBADBAD, pt=101, payload=payload), ("127.0.0.1", port))
                    spray.sendto(rtp_packet(seq, 1000 + seq * 160, 0xBADBAD, pt=0), ("127.0.0.1", port))
                    sent += 2
                except (BlockingIOError, OSError):
                    pass
                seq += 1
        time.sleep(0.05)
    got = 0
    while True:
        try:
            spray.recvfrom(2048)
            got += 1
        except (BlockingIOError, OSError):
            break
    check(got == 0, f"the stranger received {got} of our packets")
    step(f"RTP spray over ports {rtp_min}-{rtp_max} during ringing and after the answer: {sent} packets "
         f"(RFC 4733 key 1 among them), 0 of ours reached the stranger")

    status, body = svc.http("POST", "/call", {"message": words, "extension": p2.uri(), "call_id": "flood-1",
                                               "callback_url": receiver.url()})
    check(status == 200, f"POST /call (flood-1): {status} {body}")
    deadline = time.monotonic() + 30
    while (not p2.calls or not next(iter(p2.calls.values())).answered_at) and time.monotonic() < deadline:
        time.sleep(0.01)
    call2 = next(iter(p2.calls.values()))
    check(call2.service_rtp is not None, "no SDP offer in the INVITE to the second phone")
    time.sleep(6)
    t0 = time.monotonic()
    time.sleep(6)
    t1 = time.monotonic()
    rss0 = svc.rss_kib()
    # 25,000 packets a second at the second call's port from a stranger, for 8 s, from another
    # process (so this one's measuring thread does not compete with it for the interpreter).
    flood = subprocess.run([sys.executable, "-c", FLOOD, call2.service_rtp[0], str(call2.service_rtp[1]),
                            "8", "25000"], capture_output=True, text=True, timeout=60)
    n = int(flood.stdout.strip() or 0)
    t2 = time.monotonic()
    rss1 = svc.rss_kib()
    before = lateness_ms(call1.arrivals, t0, t1)
    during = lateness_ms(call1.arrivals, t1, t2)
    check(before and during, f"the first call got no audio to measure ({len(call1.arrivals)} packets)")
    before = before or {"p50": 0, "p99": 0, "max": 0, "lost": -1}
    during = during or {"p50": 0, "p99": 0, "max": 0, "lost": -1}
    rate = n / 8.0
    FIGURES["flood"] = {"rate": rate, "before": before, "during": during, "rss0": rss0, "rss1": rss1}
    step(f"flood of {n} packets ({rate:.0f}/s) at the other call: this call's lateness p50/p99/max "
         f"{before['p50']:.2f}/{before['p99']:.2f}/{before['max']:.2f} ms before, "
         f"{during['p50']:.2f}/{during['p99']:.2f}/{during['max']:.2f} ms during; lost {before['lost']} / "
         f"{during['lost']}; RSS {rss0} -> {rss1} KiB")
    check(during["lost"] == 0, f"the unflooded call lost {during['lost']} packets during the flood")
    # Timings on a shared box are figures, not verdicts (benches/media_streams.rs `flood` measures the
    # 1 ms goal); starvation is a verdict: before the fix the other call had gaps of 673 ms.
    check(during["max"] < 100.0, f"the unflooded call stalled for {during['max']:.0f} ms during the flood")
    check(rss1 - rss0 < 20 * 1024, f"RSS grew by {rss1 - rss0} KiB under the flood")
    # A forged BYE for the first call, with its real Call-ID and tags, from a stranger.
    first, h = headers_of(call1.invite)
    bye = (f"BYE sip:svc@127.0.0.1:{svc.sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKforged1\r\n"
           f"From: <{p1.uri()}>;tag={call1.tag}\r\nTo: {h['from'][0]}\r\nCall-ID: {h['call-id'][0]}\r\n"
           f"CSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    spray.sendto(bye.encode(), ("127.0.0.1", svc.sip_port))
    time.sleep(1.0)
    since = time.monotonic()
    time.sleep(1.0)
    still = [a for a in call1.arrivals if a[0] >= since]
    check(call1.bye_at is None and len(still) > 20,
          f"the call stopped after a forged BYE ({len(still)} packets in the next second)")
    step("forged BYE with the real Call-ID and tags from a stranger: ignored, the call goes on")
    return p1, p2, call1, call2


def forged_answer(svc, receiver):
    """A phone that never answers; a stranger answers for it with the INVITE's real branch."""
    p3 = Phone(answer=False)
    p3.start()
    status, body = svc.http("POST", "/call", {"message": "m", "extension": p3.uri(), "call_id": "forged-1",
                                               "ring_timeout": 5, "callback_url": receiver.url()})
    check(status == 200, f"POST /call (forged-1): {status} {body}")
    deadline = time.monotonic() + 20
    while not p3.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    check(p3.calls, "the third phone got no INVITE")
    call = next(iter(p3.calls.values()))
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    stranger.settimeout(0.2)
    port = stranger.getsockname()[1]
    first, h = headers_of(call.invite)
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    ok = ("SIP/2.0 200 OK\r\n" + "".join(f"Via: {v}\r\n" for v in h["via"]) +
          f"From: {h['from'][0]}\r\nTo: {h['to'][0]};tag=forged\r\nCall-ID: {h['call-id'][0]}\r\n"
          f"CSeq: {h['cseq'][0]}\r\nContact: <sip:x@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\n"
          f"Content-Length: {len(sdp)}\r\n\r\n{sdp}")
    for _ in range(3):
        stranger.sendto(ok.encode(), ("127.0.0.1", svc.sip_port))
        time.sleep(0.2)
    got = []
    end = time.monotonic() + 2
    while time.monotonic() < end:
        try:
            got.append(stranger.recvfrom(4096)[0])
        except socket.timeout:
            pass
    check(not got, f"the stranger got {len(got)} packets after its forged 200 OK: {got[:1]}")
    step("forged 200 OK with the INVITE's real branch from a stranger: no ACK, no RTP to it")
    return p3


def crash_and_bye(svc, receiver):
    """kill -9 during an answered call: after the restart the phone gets a BYE for its dialog and
    the call ends failed with its webhook."""
    p4 = Phone(ring=0.2)
    p4.start()
    status, body = svc.http("POST", "/call", {"message": "Crash test. " * 40, "extension": p4.uri(),
                                               "call_id": "crash-1", "callback_url": receiver.url()})
    check(status == 200, f"POST /call (crash-1): {status} {body}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(len(c.arrivals) > 25 for c in p4.calls.values()):
        time.sleep(0.05)
    check(p4.calls, "the crash phone got no INVITE")
    call = next(iter(p4.calls.values()))
    check(len(call.arrivals) > 25 and call.bye_at is None, "the crash call never spoke, or ended early")
    svc.proc.kill()
    svc.proc.wait()
    killed = time.monotonic()
    svc.start()
    while time.monotonic() < killed + 20 and call.bye_at is None:
        time.sleep(0.05)
    check(call.bye_at is not None, f"no BYE reached the phone after the restart:\n{svc.log()[-3000:]}")
    step(f"kill -9 during an answered call: the restarted service sent the phone a BYE "
         f"{call.bye_at - killed:.2f} s after the kill")
    p4.close()
    return p4


def mutated_sip(svc, count):
    """`count` mutated SIP datagrams at the service's SIP port."""
    base = [
        (f"INVITE sip:svc@127.0.0.1:{svc.sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx1\r\n"
         "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:svc@127.0.0.1>\r\nCall-ID: mut-1@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
         "Contact: <sip:a@127.0.0.1:5999>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n"
         "Content-Length: 60\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\nc=IN IP4 127.0.0.1\r\nm=audio 9 RTP/AVP 0\r\n"),
        (f"OPTIONS sip:svc@127.0.0.1:{svc.sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx2\r\n"
         "From: <sip:a@127.0.0.1>;tag=2\r\nTo: <sip:svc@127.0.0.1>\r\nCall-ID: mut-2@127.0.0.1\r\nCSeq: 7 OPTIONS\r\n"
         "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"),
        ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK0000000000000001\r\n"
         "From: <sip:svc@127.0.0.1>;tag=3\r\nTo: <sip:b@127.0.0.1>;tag=4\r\nCall-ID: mut-3\r\nCSeq: 1 INVITE\r\n"
         "Content-Length: 0\r\n\r\n"),
        ("BYE sip:svc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx4\r\n"
         "From: <sip:a@127.0.0.1>;tag=5\r\nTo: <sip:svc@127.0.0.1>;tag=6\r\nCall-ID: mut-4\r\nCSeq: 2 BYE\r\n"
         "Content-Length: 0\r\n\r\n"),
    ]
    rng = random.Random(14)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    t = time.monotonic()
    for i in range(count):
        msg = bytearray(base[i % len(base)].encode())
        kind = rng.randrange(8)
        if kind == 0:
            for _ in range(rng.randrange(1, 12)):
                msg[rng.randrange(len(msg))] = rng.randrange(256)
        elif kind == 1:
            msg = msg[: rng.randrange(len(msg))]
        elif kind == 2:
            msg = msg.replace(b"Content-Length: 0", b"Content-Length: 18446744073709551615")
        elif kind == 3:
            line = msg.split(b"\r\n")[rng.randrange(1, 5)] + b"\r\n"
            at = msg.find(b"\r\n") + 2
            msg = msg[:at] + line * rng.randrange(10, 1500) + msg[at:]
            msg = msg[:65000]
        elif kind == 4:
            msg = bytearray(os.urandom(rng.randrange(1, 1400)))
        elif kind == 5:
            msg = msg.replace(b"\r\n", b"\n")
        elif kind == 6:
            msg = msg.replace(b"SIP/2.0", b"SIP/2." + str(rng.randrange(10 ** 6)).encode(), 1)
        else:
            at = rng.randrange(len(msg))
            msg = msg[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) + msg[at:]
        try:
            sock.sendto(bytes(msg), ("127.0.0.1", svc.sip_port))
        except (BlockingIOError, OSError):
            time.sleep(0.001)
        if i % 500 == 499:
            time.sleep(0.05)  # about 8,000 a second: the queue drains, nothing is lost to the kernel
    took = time.monotonic() - t
    FIGURES["mutated"] = {"count": count, "seconds": took}
    step(f"{count} mutated SIP datagrams in {took:.1f} s")


def tcp_attacks(procs, work, binary, rtp):
    config = f"""[api]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[sip]
local_port = 0
transport = "tcp"
[media]
rtp_port_min = {rtp}
rtp_port_max = {rtp + 99}
[store]
data_dir = "@DATA@"
"""
    d = os.path.join(work, "tcp")
    os.makedirs(d)
    svc = Service(procs, d, binary, config, prefix=("prlimit", "--nofile=1024:1024", "--"))
    check(svc.sip_port, f"no SIP port in the log:\n{svc.log()}")
    prober = Prober(svc)
    prober.start()
    addr = ("127.0.0.1", svc.sip_port)

    def options_round_trip(timeout=2.0, source=None):
        try:
            s = socket.create_connection(addr, timeout=timeout,
                                         source_address=(source, 0) if source else None)
        except OSError as e:
            return f"no connection: {e}", timeout
        s.sendall((f"OPTIONS sip:svc@127.0.0.1:{svc.sip_port};transport=tcp SIP/2.0\r\n"
                   "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKtcp1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n"
                   "To: <sip:svc@127.0.0.1>\r\nCall-ID: tcp-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n").encode())
        t = time.monotonic()
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            data = f"no answer: {e}".encode()
        s.close()
        return data.split(b"\r\n", 1)[0].decode(errors="replace"), time.monotonic() - t

    line, took = options_round_trip()
    check(line.startswith("SIP/2.0 200"), f"TCP OPTIONS before the attacks: {line!r}")
    rss0 = svc.rss_kib()
    s = socket.create_connection(addr)
    s.sendall(b"INVITE a SIP/2.0\r\nl:18446744073709551615\r\n\r\n")
    time.sleep(3)
    rss1 = svc.rss_kib()
    check(rss1 - rss0 < 50 * 1024, f"RSS grew from {rss0} to {rss1} KiB after the huge Content-Length")
    line, took = options_round_trip()
    check(line.startswith("SIP/2.0 200"), f"TCP OPTIONS after the huge Content-Length: {line!r}")
    s.close()
    step(f"huge Content-Length over TCP (the 30-byte message): RSS {rss0} -> {rss1} KiB, other peers served")
    # A peer that sends and never reads.
    hog = socket.create_connection(addr)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    req = ("OPTIONS sip:svc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5998;branch=z9hG4bKhog\r\n"
           "From: <sip:h@127.0.0.1>;tag=1\r\nTo: <sip:svc@127.0.0.1>\r\nCall-ID: hog\r\nCSeq: 1 OPTIONS\r\n"
           "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    hog.setblocking(False)
    pushed = 0
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            pushed += hog.send(req * 50)
        except (BlockingIOError, OSError):
            time.sleep(0.01)
    line, took = options_round_trip()
    check(line.startswith("SIP/2.0 200") and took < 1.0, f"a reading peer beside the hog: {line!r} in {took:.2f} s")
    rss2 = svc.rss_kib()
    step(f"a peer that sent {pushed // 1024} KiB of requests and never read: another peer answered in "
         f"{took * 1000:.0f} ms, RSS {rss2} KiB")
    hog.close()
    # 2,000 idle connections against a service limited to 1,024 open files.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    idle, refused = [], 0
    for _ in range(2000):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(addr)
        except BlockingIOError:
            pass
        except OSError:
            refused += 1
            c.close()
            continue
        idle.append(c)
    time.sleep(3)
    # Another host (the PBX, say) is not locked out: one host gets only its share of the slots.
    line, took = options_round_trip(source=LAN)
    check(line.startswith("SIP/2.0 200") and took < 1.0,
          f"TCP from {LAN} while 2,000 connections from 127.0.0.1 are held open: {line!r} in {took:.2f} s")
    during = took
    for c in idle:
        c.close()
    time.sleep(2)
    line, took = options_round_trip()
    check(line.startswith("SIP/2.0 200"), f"TCP after 2,000 idle connections: {line!r}")
    step(f"2,000 idle TCP connections from one host at once ({refused} refused by the kernel) against a "
         f"service with 1,024 open files: a peer on another host answered in {during * 1000:.0f} ms while "
         f"they were held, and one on the same host {took * 1000:.0f} ms after they closed")
    prober.stop.set()
    prober.join()
    prober.verdict("TCP attacks")
    FIGURES["tcp"] = {"rss0": rss0, "rss1": rss1, "rss2": rss2, "health_ms": prober.worst * 1000}


def schemathesis(procs, work, binary, venv, seconds, rtp):
    config = f"""[api]
listen = "127.0.0.1:0"
token = "{TOKEN}"
rate_limit_per_second = 0
[sip]
local_port = 0
[media]
rtp_port_min = {rtp}
rtp_port_max = {rtp + 99}
[store]
data_dir = "@DATA@"
[hooks]
dir = "@DATA@/hooks"
"""
    d = os.path.join(work, "schemathesis")
    os.makedirs(d)
    svc = Service(procs, d, binary, config)
    prober = Prober(svc)
    prober.start()
    out = subprocess.run(
        [os.path.join(venv, "bin", "schemathesis"), "--no-color", "--config-file",
         os.path.join(ROOT, ".ci", "schemathesis.toml"), "run", os.path.join(ROOT, "openapi.yaml"),
         "--url", f"http://127.0.0.1:{svc.api}", "--header", f"Authorization: Bearer {TOKEN}",
         "--checks", "all", "--exclude-checks", "ignored_auth,positive_data_acceptance",
         "--max-time", str(seconds), "--seed", "14"],
        capture_output=True, text=True, cwd=d, timeout=seconds + 300)
    summary = out.stdout[-2500:]
    m = re.search(r"(\d+) generated", out.stdout)
    FIGURES["schemathesis"] = {"cases": int(m.group(1)) if m else None, "rc": out.returncode}
    check(out.returncode == 0, f"schemathesis found problems:\n{out.stdout[-12000:]}\n{out.stderr[-2000:]}")
    prober.stop.set()
    prober.join()
    prober.verdict("schemathesis")
    step(f"schemathesis: {FIGURES['schemathesis']['cases']} cases, 0 failures\n{summary[-600:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--schemathesis", help="venv with schemathesis (skipped without it)")
    ap.add_argument("--schemathesis-seconds", type=int, default=120)
    ap.add_argument("--mutations", type=int, default=50_000)
    ap.add_argument("--keep-going", action="store_true", help="report failed checks and go on")
    args = ap.parse_args()
    KEEP_GOING["on"] = args.keep_going
    binary = os.path.abspath(args.binary)
    procs = edge.Procs()
    work = tempfile.mkdtemp(prefix="sip-assistant-attack-")
    passed = 0
    try:
        receiver = edge.Receiver(procs, work)
        rtp = free_block(200) & ~1
        rtp_min, rtp_max = rtp, rtp + 99
        config = f"""[api]
listen = "0.0.0.0:0"
token = "{TOKEN}"
[sip]
local_port = 0
[media]
rtp_port_min = {rtp_min}
rtp_port_max = {rtp_max}
[store]
data_dir = "@DATA@"
[webhook]
secret = "{edge.SECRET}"
allow_hosts = ["127.0.0.1"]
[calls]
dial_allow = ["sip:*@127.0.0.1:*", "1???"]
max_concurrent = 8
"""
        d = os.path.join(work, "udp")
        os.makedirs(d)
        svc = Service(procs, d, binary, config)
        check(svc.sip_port, f"no SIP port in the log:\n{svc.log()}")
        rss_idle = svc.rss_kib()
        prober = Prober(svc)
        prober.start()
        api_attacks(svc, prober, receiver)
        passed += 1
        p1, p2, call1, call2 = rtp_attacks(svc, prober, receiver, rtp_min, rtp_max)
        passed += 1
        p3 = forged_answer(svc, receiver)
        passed += 1
        t0 = time.monotonic()
        mutated_sip(svc, args.mutations)
        t1 = time.monotonic()
        during = lateness_ms(call1.arrivals, t0, t1)
        if during:
            FIGURES["mutated"]["lateness"] = during
            step(f"the first call's lateness during the mutated datagrams: p99 {during['p99']:.2f} ms, "
                 f"lost {during['lost']}")
        check(svc.alive(), "the service died under mutated datagrams")
        check("dropped a malformed or unexpected SIP message" in svc.log(), "no log line for the malformed datagrams")
        passed += 1
        # Every call ends and is reported once, signed; the sprayed key 1 is nobody's answer.
        hooks = receiver.wait(3, 180)
        by_id = {json.loads(h["body"])["call_id"]: (h, json.loads(h["body"])) for h in hooks}
        check(set(by_id) == {"spray-1", "flood-1", "forged-1"} and len(hooks) == 3,
              f"webhooks: {sorted(by_id)} ({len(hooks)})")
        check(all(h["signature_valid"] for h, _ in by_id.values()), "a webhook signature is invalid")
        spray = by_id["spray-1"][1]
        check(spray["status"] == "completed" and spray["choice_response"] is None,
              f"the sprayed call: {spray}")
        check(by_id["flood-1"][1]["status"] == "completed", f"the flooded call: {by_id['flood-1'][1]}")
        check(by_id["forged-1"][1]["status"] == "no_answer", f"the forged answer: {by_id['forged-1'][1]}")
        step("webhooks: spray-1 completed with no answer (the stranger's key 1 was not taken), flood-1 "
             "completed, forged-1 no_answer; all signed")
        status, body = svc.http("GET", "/calls?limit=500")
        check(status == 200 and body["count"] == 3, f"records: {status} {body.get('count')}")
        prober.stop.set()
        prober.join()
        prober.verdict("UDP attacks")
        FIGURES["udp"] = {"rss_idle": rss_idle, "rss_end": svc.rss_kib(), "health_ms": prober.worst * 1000}
        passed += 1
        for p in (p1, p2, p3):
            p.close()
        crash_and_bye(svc, receiver)
        hooks = receiver.wait(4, 60)
        crash = [json.loads(h["body"]) for h in hooks if json.loads(h["body"])["call_id"] == "crash-1"]
        check(len(crash) == 1 and crash[0]["status"] == "failed", f"the crashed call's webhook: {crash}")
        step(f"the crashed call ended {crash[0]['status']}: {crash[0]['error']}")
        passed += 1
        tcp_attacks(procs, work, binary, rtp + 100)
        passed += 1
        if args.schemathesis:
            schemathesis(procs, work, binary, args.schemathesis, args.schemathesis_seconds, rtp + 100)
            passed += 1
        else:
            step("schemathesis: skipped (no --schemathesis venv)")
        print("[attack] figures: " + json.dumps(FIGURES, sort_keys=True), flush=True)
    except Fail as e:
        print(f"[attack] FAILED: {e}", file=sys.stderr, flush=True)
        print(f"[attack] work dir kept: {work}", file=sys.stderr)
        print(f"attack: {passed} passed, 1 failed", flush=True)
        return 1
    finally:
        procs.stop_all()
    if KEEP_GOING["failed"]:
        print(f"attack: {len(KEEP_GOING['failed'])} checks failed", flush=True)
        return 1
    subprocess.run(["rm", "-rf", work])
    print(f"attack: {passed} passed, 0 failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
