"""An OTLP/HTTP sink for bench/otlp.sh: answers every POST with 200 and an empty
ExportTraceServiceResponse, and appends each body's size to PREFIX.count (a line per
export). Writes its port to PREFIX.port.

    python3 bench/otlp_sink.py PREFIX
"""

import http.server
import sys

prefix = sys.argv[1]


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(prefix + ".count", "a") as f:
            f.write(f"{len(body)}\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
with open(prefix + ".port", "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
