#!/usr/bin/env python3
"""A real HTTP webhook receiver for the test suite (standard library only).

Listens on 127.0.0.1 on a free port and prints "PORT <n>" on stdout once ready. Answers the first
--fail requests with --fail-status (optionally with a Retry-After header), then 200. Every request is
appended as one JSON line to --log: method, path, headers, body, the status answered, and whether
the Webhook-Signature verified against --secret (HMAC-SHA256 over "id.timestamp.body", "v1,<base64>").
The first --delay-count requests stall --delay seconds before answering. Stops by itself after
--max-seconds.
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def signature_ok(secret, headers, body):
    if secret is None:
        return None
    wid = headers.get("Webhook-Id", "")
    ts = headers.get("Webhook-Timestamp", "")
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    presented = headers.get("Webhook-Signature", "").split()
    return any(hmac.compare_digest(p, "v1," + expected) for p in presented)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--fail", type=int, default=0)
    ap.add_argument("--fail-status", type=int, default=503)
    ap.add_argument("--retry-after", default=None)
    ap.add_argument("--secret", default=None)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds to stall before answering")
    ap.add_argument("--delay-count", type=int, default=0, help="how many first requests stall")
    ap.add_argument("--tls-cert", default=None, help="serve HTTPS with this PEM certificate")
    ap.add_argument("--tls-key", default=None, help="and this PEM key")
    args = ap.parse_args()
    lock = threading.Lock()
    state = {"seen": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received_at = time.time()
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                state["seen"] += 1
                failing = state["seen"] <= args.fail
                stalling = state["seen"] <= args.delay_count
            if stalling:
                time.sleep(args.delay)
            status = args.fail_status if failing else 200
            entry = {
                "received_at": received_at,
                "method": "POST",
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "answered": status,
                "signature_valid": signature_ok(args.secret, self.headers, body),
            }
            with lock, open(args.log, "a") as f:
                f.write(json.dumps(entry) + "\n")
            self.send_response(status)
            if failing and args.retry_after is not None:
                self.send_header("Retry-After", args.retry_after)
            reply = b'{"ok": true}' if status == 200 else b'{"ok": false}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    threading.Timer(args.max_seconds, server.shutdown).start()
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
