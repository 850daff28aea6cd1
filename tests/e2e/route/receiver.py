#!/usr/bin/env python3
"""A rest-hook subscriber for the route tests: checks X-Hub-Signature-256
(HMAC-SHA256 of the body with the secret given) and appends one JSON line per
notification to the log: its type, event numbers, focus references, whether
the signature held, and the custom header the test asked for.

usage: receiver.py PORTFILE LOG SECRET [PORT] [STATUS] [CERT KEY [CLIENT_CA]]
PORT 0 picks a free port (written to PORTFILE); STATUS is the HTTP status it
answers with (default 200). With CERT and KEY it serves HTTPS; with CLIENT_CA
it requires a client certificate signed by it."""
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

portfile, log, secret = sys.argv[1], sys.argv[2], sys.argv[3].encode()
port = int(sys.argv[4]) if len(sys.argv) > 4 else 0
answer = int(sys.argv[5]) if len(sys.argv) > 5 else 200
tls = sys.argv[6:9]


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        got = self.headers.get("X-Hub-Signature-256", "")
        rec = {"sig_ok": hmac.compare_digest(want, got),
               "custom": self.headers.get("X-Custom", ""),
               "path": self.path}
        try:
            b = json.loads(body)
            params = b["entry"][0]["resource"]["parameter"]
            rec["type"] = next(p["valueCode"] for p in params if p["name"] == "type")
            rec["since"] = next(p["valueString"] for p in params
                                if p["name"] == "events-since-subscription-start")
            rec["events"] = []
            rec["focus"] = []
            for p in params:
                if p["name"] != "notification-event":
                    continue
                for part in p["part"]:
                    if part["name"] == "event-number":
                        rec["events"].append(int(part["valueString"]))
                    if part["name"] == "focus":
                        rec["focus"].append(part["valueReference"]["reference"])
            rec["resources"] = [e["resource"]["resourceType"] for e in b["entry"][1:]
                                if "resource" in e]
            rec["bundle_type"] = b["type"]
        except Exception as e:  # noqa: BLE001 - the test sees it
            rec["bad"] = str(e)
        with open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.send_response(answer)
        self.send_header("Content-Length", "0")
        self.end_headers()


ThreadingHTTPServer.allow_reuse_address = True
srv = ThreadingHTTPServer(("127.0.0.1", port), H)
if len(tls) >= 2:
    import ssl  # noqa: E402
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls[0], tls[1])
    if len(tls) == 3:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(tls[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os  # noqa: E402
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
