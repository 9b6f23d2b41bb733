#!/usr/bin/env python3
"""Drive the real sip-assistant binary (native, or aarch64 under qemu-aarch64) on 127.0.0.1.

  edge.py smoke   --binary PATH [--runner "qemu-aarch64 -L /usr/aarch64-linux-gnu"]
      --version, check-config, run with a config file and systemd-style credentials
      ($CREDENTIALS_DIRECTORY), GET /health, one real call to a SIPp peer that answers, the signed
      webhook received and checked, SIGTERM -> exit 0. Exits non-zero on the first failure.
      With --whisper-model FILE (a ggml model) the service listens with whisper.cpp
      (speech.stt = "whisper") and a second call asks a question that the far end answers aloud
      (espeak-ng through sox to G.711 mu-law, sent as RTP from here): the webhook's choice_response
      must be the spoken option; the time from the end of the reply to the decision is printed.
  edge.py figures --binary PATH [--runner ...] [--calls N] [--held N] [--strace]
      prints idle RSS, RSS per held (ringing) call, store flushes per call and, with --strace,
      bytes written to the data dir and fsyncs per call. Prints figures; asserts nothing.

Only loopback addresses are used; every process started here is stopped by its own PID.
Standard library only. Peers: SIPp (sip-tester) with tests/support/peers/uas.xml and the webhook
receiver tests/support/webhook_receiver.py; the spoken reply needs espeak-ng and sox.
"""
import argparse
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UAS_TEMPLATE = os.path.join(ROOT, "tests", "support", "peers", "uas.xml")
RECEIVER = os.path.join(ROOT, "tests", "support", "webhook_receiver.py")
SECRET = "edge-webhook-secret-0123456789"
TOKEN = "edge-api-token-0123456789"
UAS_BLOCKS = ["ANSWER", "WAITBYE", "SENDBYE", "BUSY", "RING"]


class Fail(Exception):
    pass


def step(msg):
    print(f"[edge] {msg}", flush=True)


CHECKS = {"passed": 0}


def check(cond, msg):
    if not cond:
        raise Fail(msg)
    CHECKS["passed"] += 1


def free_block(n):
    """First of n consecutive ports free for UDP and TCP on 127.0.0.1 (below the ephemeral range)."""
    for _ in range(500):
        base = random.randrange(20000, 32000 - n) & ~1
        ok = True
        for p in range(base, base + n):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                finally:
                    s.close()
        if ok:
            return base
    raise Fail(f"no block of {n} free ports")


def uas_scenario(keep, cseq_action):
    """tests/support/peers/uas.xml with the blocks in `keep` (as tests/support/peers.rs does)."""
    with open(UAS_TEMPLATE) as f:
        xml = f.read()
    for name in UAS_BLOCKS:
        open_tag, close_tag = f"<!--{name}-->\n", f"<!--/{name}-->\n"
        a, b = xml.find(open_tag), xml.find(close_tag)
        check(a >= 0 and b >= 0, f"block {name} missing in {UAS_TEMPLATE}")
        if name in keep:
            xml = xml[:b] + xml[b + len(close_tag):]
            xml = xml[:a] + xml[a + len(open_tag):]
        else:
            xml = xml[:a] + xml[b + len(close_tag):]
    action = ""
    if cseq_action:
        action = ('<action>\n      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" '
                  'assign_to="invite_cseq"/>\n    </action>')
    marker = ("<!-- __ACTIONS__: eregs the chosen blocks need (SIPp rejects variables that are set "
              "but never used) -->")
    check(marker in xml, "actions marker missing in uas.xml")
    return xml.replace(marker, action).replace("__BYE_MS__", "0")


class Procs:
    """Processes started here, stopped by PID (SIGTERM, then SIGKILL) at the end."""

    def __init__(self):
        self.procs = []
        self.services = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for svc in self.services:  # a traced service: signal it, not strace
            if svc.proc.poll() is None and svc.traced:
                try:
                    os.kill(svc.pid(), signal.SIGTERM)
                    svc.proc.wait(timeout=20)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


class Sipp:
    def __init__(self, procs, work, keep, calls=1, cseq_action=False, timeout_s=120):
        self.dir = tempfile.mkdtemp(prefix="sipp-", dir=work)
        scenario = os.path.join(self.dir, "uas.xml")
        with open(scenario, "w") as f:
            f.write(uas_scenario(keep, cseq_action))
        self.port = free_block(6)
        self.out = open(os.path.join(self.dir, "sipp.out"), "w")
        self.proc = procs.start(
            ["sipp", "-sf", scenario, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-t", "u1",
             "-m", str(calls), "-nostdin", "-p", str(self.port), "-cp", str(self.port + 1),
             "-mp", str(self.port + 2), "-timeout", f"{timeout_s}s", "-timeout_error",
             "-trace_msg", "-trace_err",
             "-message_file", os.path.join(self.dir, "messages.log"),
             "-error_file", os.path.join(self.dir, "errors.log")],
            stdout=self.out, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.time() + 5
        while time.time() < deadline:  # listening once its port is taken
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", self.port))
            except OSError:
                return
            finally:
                s.close()
            time.sleep(0.05)
        raise Fail("SIPp did not bind its port")

    def uri(self):
        return f"sip:uas@127.0.0.1:{self.port}"

    def messages(self):
        try:
            with open(os.path.join(self.dir, "messages.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""


class Receiver:
    def __init__(self, procs, work):
        self.log = os.path.join(work, "webhooks.jsonl")
        self.proc = procs.start(
            [sys.executable, RECEIVER, "--log", self.log, "--secret", SECRET,
             "--max-seconds", "900"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        check(line.startswith("PORT "), f"webhook receiver said {line!r}")
        self.port = int(line.split()[1])

    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def entries(self):
        try:
            with open(self.log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []

    def wait(self, n, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.entries()
            if len(got) >= n:
                return got
            time.sleep(0.1)
        return self.entries()


def http(port, method, path, body=None, token=TOKEN, host="127.0.0.1", timeout=30):
    """One JSON request to the API on `host:port`: (status, decoded body, or its text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{host}:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"null")
        except ValueError:
            return e.code, raw.decode(errors="replace")


def rss_kib(pid):
    """VmRSS of process `pid` in KiB, -1 when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


class Service:
    """sip-assistant run --config FILE, secrets as files in a credentials directory."""

    def __init__(self, procs, work, cmd, extra_config="", strace=None, extra_env=None):
        self.work = work
        self.data = os.path.join(work, "data")
        creds = os.path.join(work, "credentials")
        os.makedirs(creds, exist_ok=True)
        for name, value in (("api-token", TOKEN), ("webhook-secret", SECRET)):
            path = os.path.join(creds, name)
            with open(path, "w") as f:
                f.write(value + "\n")
            os.chmod(path, 0o600)
        rtp = free_block(2) & ~1
        self.config = os.path.join(work, "config.toml")
        with open(self.config, "w") as f:
            f.write(f"""[api]
listen = "127.0.0.1:0"
token_file = "api-token"

[sip]
local_port = 0

[media]
rtp_port_min = {rtp}
rtp_port_max = {rtp + 599}

[store]
data_dir = "{self.data}"

[webhook]
secret_file = "webhook-secret"
allow_hosts = ["127.0.0.1"]

[calls]
shutdown_grace_seconds = 5
# The smoke test dials SIPp by URI on loopback and receives its webhook on loopback.
dial_allow = ["sip:*@127.0.0.1:*"]
{extra_config}
""")
        self.env = dict(os.environ, CREDENTIALS_DIRECTORY=creds, RUST_LOG="info", NO_COLOR="1")
        self.env.update(extra_env or {})
        self.cmd = cmd
        self.stderr_path = os.path.join(work, "service.log")
        argv = cmd + ["run", "--config", self.config]
        if strace:
            argv = ["strace", "-f", "-y", "-qq", "-o", strace,
                    "-e", "trace=write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync,"
                          "sync_file_range"] + argv
        self.traced = bool(strace)
        self.stderr = open(self.stderr_path, "w")
        self.proc = procs.start(argv, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=self.stderr, cwd=work)
        procs.services.append(self)
        self.api = None
        deadline = time.time() + 60
        while time.time() < deadline and self.api is None:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log())
            if m:
                self.api = int(m.group(1))
            elif self.proc.poll() is not None:
                raise Fail(f"the service exited ({self.proc.returncode}):\n{self.log()}")
            else:
                time.sleep(0.1)
        check(self.api is not None, f"no API within 60 s:\n{self.log()}")

    def log(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def http(self, method, path, body=None, token=TOKEN):
        return http(self.api, method, path, body, token)

    def pid(self):
        """The service's PID: the child of strace when traced."""
        pid = self.proc.pid
        if self.traced:
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    return int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                pass
        return pid

    def rss_kib(self):
        """VmRSS of the process (under qemu: qemu's, which includes the translator)."""
        return rss_kib(self.pid())

    def stop(self, timeout=60):
        os.kill(self.pid(), signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Fail(f"no exit {timeout} s after SIGTERM:\n{self.log()}")
        return code

    def flushes(self):
        m = re.findall(r"store_flushes=(\d+)", self.log())
        return int(m[-1]) if m else None


def wait_exit(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


# The spoken-answer call (--whisper-model): a yes/no question, answered aloud by the far end.
SPOKEN_REPLY = "yes, I confirm"
SPOKEN_CHOICE = {
    "prompt": "Do you confirm the appointment? Say yes or no.",
    "options": [{"value": "confirmed", "synonyms": ["yes", "yeah", "confirm"]},
                {"value": "cancelled", "synonyms": ["no", "cancel"]}],
    "timeout_seconds": 20, "repeat_count": 1,
}
# How long the reply may take to be decoded and the webhook to arrive.
SPOKEN_WAIT_S = 600
ULAW_SILENCE = b"\xff"
RTP_FRAME = 160  # 20 ms of 8 kHz G.711


def spoken_ulaw(work, text):
    """`text` said by espeak-ng, as 8 kHz G.711 mu-law bytes (sox resamples and encodes)."""
    wav = os.path.join(work, "reply.wav")
    raw = os.path.join(work, "reply.ul")
    for argv in (["espeak-ng", "-v", "en-us", "-s", "150", "-w", wav, text],
                 ["sox", wav, "-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw", raw]):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except OSError as e:
            raise Fail(f"{argv[0]} is needed for the spoken reply: {e}")
        check(out.returncode == 0, f"{' '.join(argv)}: {out.returncode} {out.stderr}")
    with open(raw, "rb") as f:
        audio = f.read()
    check(len(audio) > 8000 * 0.3, f"espeak-ng said {len(audio)} samples for {text!r}")
    return audio


def sdp_media_port(sipp):
    """The service's RTP port, from the m=audio line of the INVITE SIPp received."""
    with open(os.path.join(sipp.dir, "messages.log"), errors="replace") as f:
        log = f.read()
    m = re.search(r"^m=audio (\d+) ", log, re.M)
    check(m is not None, f"no m=audio line in the INVITE:\n{log[-3000:]}")
    return int(m.group(1))


class RtpSpeaker(threading.Thread):
    """The far end's microphone: G.711 mu-law RTP from a loopback port to the service's RTP port,
    paced at 20 ms. Silence until `say()`, then the reply, then silence again (the endpointer needs
    it to see the reply end) until `stop()`. Records when each reply's last sample was sent."""

    def __init__(self, port, reply):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.dest = ("127.0.0.1", port)
        self.reply = reply
        self.queue = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.reply_ends = []  # wall-clock time when each reply's last frame was sent

    def say(self):
        with self.lock:
            self.queue.append(self.reply + ULAW_SILENCE * (-len(self.reply) % RTP_FRAME))

    def stop(self):
        self.stopped.set()
        self.join(timeout=5)
        self.sock.close()

    def run(self):
        seq, ts, ssrc = random.randrange(1 << 16), random.randrange(1 << 32), random.randrange(1 << 32)
        speaking, at, marker = b"", 0, True
        next_send = time.monotonic()
        while not self.stopped.is_set():
            if not speaking:
                with self.lock:
                    if self.queue:
                        speaking, at, marker = self.queue.pop(0), 0, True
            if speaking:
                payload = speaking[at:at + RTP_FRAME]
                at += RTP_FRAME
                if at >= len(speaking):
                    speaking = b""
                    self.reply_ends.append(time.time())
            else:
                payload = ULAW_SILENCE * RTP_FRAME
            header = bytes([0x80, (0x80 if marker else 0) | 0])  # V=2, PT 0 (PCMU)
            header += seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + ssrc.to_bytes(4, "big")
            marker = False
            try:
                self.sock.sendto(header + payload, self.dest)
            except OSError:
                pass  # the call's port closed: the service hung up
            seq, ts = (seq + 1) & 0xFFFF, (ts + RTP_FRAME) & 0xFFFFFFFF
            next_send += 0.02
            time.sleep(max(0.0, next_send - time.monotonic()))


def rfc3339(text):
    """A record timestamp (`2026-11-24T23:42:39.123Z`) as Unix seconds."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def spoken_answer_call(service, procs, work, receiver):
    """A call with a question; the far end answers it aloud once the prompt has started (barge-in
    is allowed, as a caller would). The webhook must carry the spoken option."""
    reply = spoken_ulaw(work, SPOKEN_REPLY)
    # Under qemu one Whisper decode took 30 s to minutes (TCG runs ggml's NEON float arithmetic
    # through soft-float helpers; more when the build machine is busy): SIPp waits for the BYE.
    sipp = Sipp(procs, work, keep=["ANSWER", "WAITBYE"], timeout_s=SPOKEN_WAIT_S + 120)
    call_id = "edge-smoke-spoken"
    status, body = service.http("POST", "/call", {
        "message": "Hello.", "extension": sipp.uri(), "callback_url": receiver.url(),
        "call_id": call_id, "choice": SPOKEN_CHOICE})
    check(status == 200 and body.get("status") == "queued", f"POST /call (choice): {status} {body}")
    step(f"POST /call with a yes/no question to {sipp.uri()}: {status}")

    def timeline():
        _, record = service.http("GET", f"/calls/{call_id}")
        return (record or {}).get("timeline", []) if isinstance(record, dict) else []

    deadline = time.time() + 90
    while time.time() < deadline and not any(e.get("event") == "prompt" for e in timeline()):
        time.sleep(0.2)
    check(any(e.get("event") == "prompt" for e in timeline()),
          f"the question was never asked:\n{service.log()}\n{sipp.messages()}")
    speaker = RtpSpeaker(sdp_media_port(sipp), reply)
    speaker.start()
    time.sleep(0.5)  # a little of the question heard, as a caller would
    speaker.say()
    step(f"far end says {SPOKEN_REPLY!r} ({len(reply) / 8000:.2f} s, G.711 mu-law RTP)")
    # Whisper under qemu takes seconds per decode; a question asked back ("Did you say ...?") is
    # answered with the same reply, once.
    asked = sum(1 for e in timeline() if e.get("event") == "prompt")
    hooks = []
    deadline = time.time() + SPOKEN_WAIT_S
    while time.time() < deadline:
        hooks = [h for h in receiver.entries() if json.loads(h["body"]).get("call_id") == call_id]
        if hooks:
            break
        now_asked = sum(1 for e in timeline() if e.get("event") == "prompt")
        if now_asked > asked and len(speaker.reply_ends) < 2:
            asked = now_asked
            speaker.say()
            step("asked again: the same reply once more")
        time.sleep(0.2)
    speaker.stop()
    check(len(hooks) == 1, f"no webhook for the spoken answer within {SPOKEN_WAIT_S} s; timeline:\n"
          f"{json.dumps(timeline(), indent=1)}\n{service.log()}")
    payload = json.loads(hooks[0]["body"])
    events = timeline()
    step("timeline: " + "; ".join(f"{e.get('event')}" + (f" ({e['detail']})" if e.get("detail") else "")
                                  for e in events))
    check(hooks[0]["signature_valid"] is True, f"webhook signature invalid: {hooks[0]}")
    check(payload.get("status") == "completed" and payload.get("choice_response") == "confirmed",
          f"the spoken {SPOKEN_REPLY!r} should confirm: {payload}\n{service.log()}")
    check(not any(e.get("event") in ("reprompt", "no_match", "recognizer_error") for e in events),
          f"the first reply was not understood: {events}")
    heard = [rfc3339(e["at"]) for e in events if e.get("event") == "heard"]
    check(heard and speaker.reply_ends, f"no 'heard' event or reply sent: {events}")
    took = heard[0] - speaker.reply_ends[0]
    step(f"recognised: choice_response={payload['choice_response']!r}, "
         f"choice_raw_text={payload.get('choice_raw_text')!r}")
    print(f"FIGURE spoken answer: end of reply -> heard {took:.2f} s (endpointer hangover "
          f"included; whisper decode)", flush=True)
    code = wait_exit(sipp.proc, 30)
    check(code == 0, f"SIPp exit {code}:\n{sipp.messages()}")


def smoke(args, procs, work):
    cmd = shlex.split(args.runner) + [args.binary]
    out = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=60)
    check(out.returncode == 0 and out.stdout.startswith("sip-assistant "),
          f"--version: {out.returncode} {out.stdout!r} {out.stderr!r}")
    step(f"--version: {out.stdout.strip()}")

    receiver = Receiver(procs, work)
    sipp = Sipp(procs, work, keep=["ANSWER", "WAITBYE"])
    service_dir = os.path.join(work, "svc")
    os.makedirs(service_dir)
    # What systemd gives a Type=notify service: a notify socket, and JOURNAL_STREAM (stderr is
    # the journal: lines without timestamp or colour).
    notify_path = os.path.join(work, "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(30)
    speech = ""
    if args.whisper_model:
        check(os.path.isfile(args.whisper_model), f"no ggml model at {args.whisper_model}")
        speech = (f'\n[speech]\nstt = "whisper"\n\n[speech.whisper]\nmodel = "{args.whisper_model}"\n'
                  'threads = 2\n')
    service = Service(procs, service_dir, cmd, extra_config=speech,
                      extra_env={"NOTIFY_SOCKET": notify_path, "JOURNAL_STREAM": "8:12345"})
    message = notify.recv(4096).decode()
    check(message == "READY=1", f"sd_notify: expected READY=1, got {message!r}")
    step("sd_notify: READY=1 once the API listens")
    first = service.log().splitlines()[0]
    check(first.lstrip().startswith("INFO") and "\x1b[" not in first,
          f"under JOURNAL_STREAM a line should start with its level: {first!r}")
    step(f"journald format (JOURNAL_STREAM set): {first.strip()!r}")
    # check-config on the same file and credentials the running service uses.
    out = subprocess.run(cmd + ["check-config", "--config", service.config], env=service.env,
                         capture_output=True, text=True, timeout=60)
    check(out.returncode == 0 and "<redacted>" in out.stdout,
          f"check-config: {out.returncode}\n{out.stdout}\n{out.stderr}")
    step("check-config: exit 0, secrets from $CREDENTIALS_DIRECTORY shown as <redacted>")

    status, body = service.http("GET", "/health", token=None)
    check(status == 200 and body == {"sip_registered": False, "status": "healthy"},
          f"/health: {status} {body}")
    step(f"GET /health: {status} {json.dumps(body, sort_keys=True)}")
    status, _ = service.http("GET", "/calls", token=None)
    check(status == 401, f"GET /calls without the token from the credential file: {status}")

    call = {"message": "Smoke test", "extension": sipp.uri(), "callback_url": receiver.url(),
            "call_id": "edge-smoke-1"}
    status, body = service.http("POST", "/call", call)
    check(status == 200 and body.get("status") == "queued", f"POST /call: {status} {body}")
    step(f"POST /call to {sipp.uri()}: {status} {body}")
    hooks = receiver.wait(1, 90)
    check(len(hooks) == 1, f"no webhook within 90 s\n{service.log()}\n{sipp.messages()}")
    hook = hooks[0]
    check(hook["signature_valid"] is True, f"webhook signature invalid: {hook}")
    payload = json.loads(hook["body"])
    check(payload.get("call_id") == "edge-smoke-1", f"webhook body: {payload}")
    check(payload.get("status") == "completed", f"webhook status: {payload}")
    # The aarch64 binary spoke the message with flite (libflite1:arm64, opened at run time).
    check(payload.get("message_played") is True and payload.get("error") is None,
          f"webhook fields: {payload}")
    step(f"webhook received, signature valid: {hook['body']}")
    code = wait_exit(sipp.proc, 30)
    check(code == 0, f"SIPp exit {code}:\n{sipp.messages()}")
    step("SIPp peer: INVITE answered, ACK and BYE received (exit 0)")
    status, record = service.http("GET", "/calls/edge-smoke-1")
    events = [e.get("event") for e in (record or {}).get("timeline", [])]
    check(status == 200 and "answered" in events, f"record: {status} {record}")
    step(f"call record timeline: {', '.join(events)}")
    if args.whisper_model:
        spoken_answer_call(service, procs, work, receiver)

    code = service.stop()
    check(code == 0, f"exit code {code} after SIGTERM:\n{service.log()}")
    check("stopped" in service.log(), f"no 'stopped' line:\n{service.log()}")
    message = notify.recv(4096).decode()
    check(message == "STOPPING=1", f"sd_notify: expected STOPPING=1, got {message!r}")
    step("sd_notify: STOPPING=1 on SIGTERM")
    check("\x1b[" not in service.log(), "ANSI escape codes in a non-terminal log")
    step(f"SIGTERM: exit 0, store flushes {service.flushes()}")
    step("smoke test passed")
    print(f"smoke: {CHECKS['passed']} passed, 0 failed", flush=True)


def measure_calls(args, procs, work, cmd, calls, strace):
    """One run: start, `calls` answered calls (a short spoken message, then our BYE) with webhooks,
    stop. Returns (flushes, trace, data dir)."""
    os.makedirs(work, exist_ok=True)
    receiver = Receiver(procs, work)
    sipp = Sipp(procs, work, keep=["ANSWER", "WAITBYE"], calls=max(calls, 1)) if calls else None
    trace = os.path.join(work, "strace.txt") if strace else None
    os.makedirs(os.path.join(work, "svc"), exist_ok=True)
    service = Service(procs, os.path.join(work, "svc"), cmd, strace=trace)
    for i in range(calls):
        status, body = service.http("POST", "/call", {
            "message": "Your backup finished.", "extension": sipp.uri(), "callback_url": receiver.url(),
            "call_id": f"fig-{i}"})
        check(status == 200, f"POST /call: {status} {body}")
    if calls:
        hooks = receiver.wait(calls, 120)
        check(len(hooks) == calls, f"{len(hooks)} of {calls} webhooks\n{service.log()}")
        time.sleep(0.5)  # delivery results recorded
    code = service.stop()
    check(code == 0, f"exit {code}")
    return service.flushes(), trace, service.data


def parse_trace(trace, data_dir):
    """Bytes written to files under data_dir and fsync-family calls on them, from strace -y."""
    written, syncs = 0, {}
    rx = re.compile(r"^\d+\s+(\w+)\((\d+)<([^>]*)>.*\)\s+=\s+(-?\d+)")
    with open(trace, errors="replace") as f:
        for line in f:
            m = rx.match(line)
            if not m or not m.group(3).startswith(data_dir):
                continue
            call, ret = m.group(1), int(m.group(4))
            if call in ("fsync", "fdatasync", "sync_file_range"):
                syncs[call] = syncs.get(call, 0) + 1
            elif ret > 0:
                written += ret
    return written, syncs


def figures(args, procs, work):
    cmd = shlex.split(args.runner) + [args.binary]
    label = "qemu-aarch64" if args.runner else "native"
    # Idle RSS and RSS with N calls held ringing.
    held = args.held
    d = os.path.join(work, "rss")
    os.makedirs(os.path.join(d, "svc"))
    sipp = Sipp(procs, d, keep=["RING"], calls=held, cseq_action=True)
    service = Service(procs, os.path.join(d, "svc"), cmd, extra_config=f"max_concurrent = {held}\n")
    time.sleep(3)
    idle = service.rss_kib()
    for i in range(held):
        service.http("POST", "/call", {"message": "m", "extension": sipp.uri(),
                                       "ring_timeout": 120, "call_id": f"held-{i}"})
    deadline = time.time() + 60
    ringing = 0
    while time.time() < deadline:
        _, body = service.http("GET", "/calls?status=ringing&limit=500")
        ringing = len(body) if isinstance(body, list) else len((body or {}).get("calls", []))
        if ringing >= held:
            break
        time.sleep(0.5)
    time.sleep(2)
    loaded = service.rss_kib()
    service.stop()
    per_call = (loaded - idle) / held if held else 0
    print(f"FIGURE {label} idle_rss_kib={idle}")
    print(f"FIGURE {label} rss_with_{held}_ringing_calls_kib={loaded} (ringing: {ringing})")
    print(f"FIGURE {label} rss_per_ringing_call_kib={per_call:.0f}")

    # RSS with N answered calls speaking a long message (prompt rendered, media running).
    d = os.path.join(work, "rss-answered")
    os.makedirs(os.path.join(d, "svc"))
    sipp = Sipp(procs, d, keep=["ANSWER", "WAITBYE"], calls=held)
    service = Service(procs, os.path.join(d, "svc"), cmd, extra_config=f"max_concurrent = {held}\n")
    time.sleep(3)
    idle = service.rss_kib()
    long_message = " ".join(["This is a long notification that keeps the call busy for a while."] * 12)
    for i in range(held):
        service.http("POST", "/call", {"message": long_message, "extension": sipp.uri(),
                                       "call_id": f"answered-{i}"})
    deadline = time.time() + 90
    speaking = 0
    while time.time() < deadline:
        _, body = service.http("GET", "/calls?status=answered&limit=500")
        calls = body if isinstance(body, list) else (body or {}).get("calls", [])
        speaking = sum(1 for c in calls
                       if any(e.get("event") == "message_started" for e in c.get("timeline", [])))
        if speaking >= held:
            break
        time.sleep(0.5)
    time.sleep(2)
    loaded = service.rss_kib()
    service.stop()
    if speaking >= held:
        print(f"FIGURE {label} rss_with_{held}_answered_speaking_calls_kib={loaded}")
        print(f"FIGURE {label} rss_per_answered_call_kib={(loaded - idle) / held:.0f}")
    else:
        print(f"FIGURE {label} answered calls: only {speaking} of {held} were speaking within 90 s "
              "(rendering is slow under emulation, or speech is unavailable); no per-answered-call figure")

    # Store flushes (and, with strace, bytes and fsyncs) per call: K calls minus a 0-call baseline.
    k = args.calls
    base = measure_calls(args, procs, os.path.join(work, "base"), cmd, 0, args.strace)
    run = measure_calls(args, procs, os.path.join(work, "calls"), cmd, k, args.strace)
    if base[0] is not None and run[0] is not None:
        print(f"FIGURE {label} store_flushes_baseline={base[0]} store_flushes_with_{k}_calls="
              f"{run[0]} per_call={(run[0] - base[0]) / k:.2f}")
    if args.strace:
        bw, bs = parse_trace(base[1], base[2])
        rw, rs = parse_trace(run[1], run[2])
        print(f"FIGURE {label} data_dir_bytes_written_per_call={(rw - bw) / k:.0f} "
              f"(baseline start+stop {bw} B)")
        for name in sorted(set(rs) | set(bs)):
            print(f"FIGURE {label} data_dir_{name}_per_call="
                  f"{(rs.get(name, 0) - bs.get(name, 0)) / k:.2f} "
                  f"(baseline start+stop {bs.get(name, 0)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["smoke", "figures"])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--runner", default="", help='e.g. "qemu-aarch64 -L /usr/aarch64-linux-gnu"')
    ap.add_argument("--calls", type=int, default=20, help="figures: calls for the per-call counts")
    ap.add_argument("--held", type=int, default=20, help="figures: calls held ringing for RSS")
    ap.add_argument("--strace", action="store_true", help="figures: count bytes/fsyncs by strace")
    ap.add_argument("--whisper-model", default="",
                    help="smoke: listen with whisper.cpp and this ggml model; one call answered aloud")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    if args.whisper_model:
        args.whisper_model = os.path.abspath(args.whisper_model)
    procs = Procs()
    work = tempfile.mkdtemp(prefix="sip-assistant-edge-")
    try:
        if args.mode == "smoke":
            smoke(args, procs, work)
        else:
            figures(args, procs, work)
    except Fail as e:
        print(f"[edge] FAILED: {e}", file=sys.stderr, flush=True)
        if args.mode == "smoke":
            print(f"smoke: {CHECKS['passed']} passed, 1 failed", flush=True)
        print(f"[edge] work dir kept: {work}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
    subprocess.run(["rm", "-rf", work])
    return 0


if __name__ == "__main__":
    sys.exit(main())
