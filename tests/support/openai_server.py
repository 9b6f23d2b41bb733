#!/usr/bin/env python3
"""A real OpenAI-compatible speech server for the test suite (standard library + espeak-ng).

Listens on 127.0.0.1 on a free port and prints "PORT <n>" on stdout once ready.

  POST /v1/audio/speech          JSON {model, input, voice, response_format} -> a WAV that espeak-ng
                                 speaks (`espeak-ng --stdout`, 22050 Hz).
  POST /v1/audio/transcriptions  multipart/form-data (file, model, language?, prompt?, ...) -> JSON
                                 {"text": "..."} describing the audio it received: "tone <Hz> Hz
                                 <ms> ms at <rate> Hz", the frequency from zero crossings, so the test
                                 can check the samples arrived intact.
  GET  /v1/models                the model list.

Every request is appended as one JSON line to --log: method, path, whether the bearer key matched,
the content type, the JSON body or the multipart fields and file (name, content type, rate, channels,
width, frames), and the status answered. The multipart body is parsed strictly (CRLF, boundary, final
delimiter): a malformed body gets 400.

Error modes, chosen by the model name: "error-500" answers 500 with an OpenAI error body, "slow"
answers after 3 s, "not-wav" answers 200 with an MP3-like body. A wrong or missing key (when
--api-key is given) gets 401. Stops by itself after --max-seconds.
"""
import argparse
import io
import json
import math
import struct
import subprocess
import sys
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOG_LOCK = threading.Lock()


def log(record):
    with LOG_LOCK, open(ARGS.log, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def parse_multipart(content_type, body):
    """Strict multipart/form-data parser: returns {name: (filename, content_type, bytes)}."""
    params = dict(
        p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p
    )
    boundary = params.get("boundary", "").strip('"')
    if not content_type.startswith("multipart/form-data") or not boundary:
        raise ValueError("not multipart/form-data with a boundary")
    delim = b"--" + boundary.encode()
    if not body.startswith(delim + b"\r\n"):
        raise ValueError("body does not start with the boundary")
    end = b"\r\n" + delim + b"--\r\n"
    if not body.endswith(end):
        raise ValueError("body does not end with the closing boundary")
    inner = body[len(delim) + 2 : -len(end)]
    parts = {}
    for raw in inner.split(b"\r\n" + delim + b"\r\n"):
        head, sep, content = raw.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("part without a header block")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        disp = headers.get("content-disposition", "")
        if not disp.startswith("form-data"):
            raise ValueError("part without form-data disposition")
        attrs = {}
        for item in disp.split(";")[1:]:
            k, _, v = item.strip().partition("=")
            attrs[k] = v.strip('"')
        if "name" not in attrs:
            raise ValueError("part without a name")
        parts[attrs["name"]] = (attrs.get("filename"), headers.get("content-type"), content)
    return parts


def describe_wav(data):
    with wave.open(io.BytesIO(data)) as w:
        rate, channels, width, frames = (
            w.getframerate(),
            w.getnchannels(),
            w.getsampwidth(),
            w.getnframes(),
        )
        pcm = w.readframes(frames)
    info = {"rate": rate, "channels": channels, "width": width, "frames": frames}
    if width == 2 and channels == 1 and frames > 1:
        samples = struct.unpack("<%dh" % frames, pcm[: 2 * frames])
        crossings = sum(
            1 for a, b in zip(samples, samples[1:]) if (a < 0 <= b) or (b < 0 <= a)
        )
        seconds = frames / rate
        info["tone_hz"] = round(crossings / 2 / seconds)
        info["ms"] = round(seconds * 1000)
        info["rms"] = round(math.sqrt(sum(s * s for s in samples) / frames))
    return info


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body, content_type="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def error(self, status, message, record):
        record["status"] = status
        log(record)
        self.reply(status, {"error": {"message": message, "type": "test_error"}})

    def authorised(self, record):
        got = self.headers.get("Authorization")
        record["auth"] = got is not None and got == f"Bearer {ARGS.api_key}"
        return ARGS.api_key is None or record["auth"]

    def do_GET(self):
        record = {"method": "GET", "path": self.path}
        if not self.authorised(record):
            return self.error(401, "Incorrect API key provided", record)
        if self.path == "/v1/models":
            record["status"] = 200
            log(record)
            return self.reply(200, {"data": [{"id": "tts-1"}, {"id": "whisper-1"}]})
        self.error(404, "no such route", record)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        ctype = self.headers.get("Content-Type", "")
        record = {"method": "POST", "path": self.path, "content_type": ctype}
        if not self.authorised(record):
            return self.error(401, "Incorrect API key provided", record)
        if self.path == "/v1/audio/speech":
            return self.speech(ctype, body, record)
        if self.path == "/v1/audio/transcriptions":
            return self.transcription(ctype, body, record)
        self.error(404, "no such route", record)

    def mode(self, model, record):
        if model == "error-500":
            self.error(500, "synthesis backend crashed", record)
            return True
        if model == "slow":
            time.sleep(3)
        return False

    def speech(self, ctype, body, record):
        try:
            req = json.loads(body)
        except ValueError as e:
            return self.error(400, f"body is not JSON: {e}", record)
        record["json"] = req
        if not ctype.startswith("application/json"):
            return self.error(400, "speech wants application/json", record)
        missing = [k for k in ("model", "input", "voice") if not req.get(k)]
        if missing:
            return self.error(400, f"missing {missing}", record)
        if self.mode(req["model"], record):
            return
        if req["model"] == "not-wav":
            record["status"] = 200
            log(record)
            return self.reply(200, b"ID3\x03\x00fake mp3", "audio/mpeg")
        wav = subprocess.run(
            ["espeak-ng", "-v", "en-us", "--stdout", req["input"]],
            check=True,
            capture_output=True,
        ).stdout
        record["status"] = 200
        record["bytes"] = len(wav)
        log(record)
        self.reply(200, wav, "audio/wav")

    def transcription(self, ctype, body, record):
        try:
            parts = parse_multipart(ctype, body)
        except (ValueError, UnicodeDecodeError) as e:
            return self.error(400, f"bad multipart body: {e}", record)
        fields = {
            k: v[2].decode("utf-8") for k, v in parts.items() if v[0] is None
        }
        record["fields"] = fields
        if "file" not in parts or parts["file"][0] is None:
            return self.error(400, "no file part", record)
        filename, file_ct, data = parts["file"]
        try:
            info = describe_wav(data)
        except (wave.Error, EOFError, struct.error) as e:
            return self.error(400, f"file is not a WAV: {e}", record)
        record["file"] = {"filename": filename, "content_type": file_ct, **info}
        if not fields.get("model"):
            return self.error(400, "missing model", record)
        if self.mode(fields["model"], record):
            return
        text = f"tone {info.get('tone_hz')} Hz {info.get('ms')} ms at {info['rate']} Hz"
        record["status"] = 200
        log(record)
        self.reply(200, {"text": text})


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--api-key")
    p.add_argument("--max-seconds", type=float, default=120)
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Timer(ARGS.max_seconds, server.shutdown).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
