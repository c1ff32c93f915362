# A small web app for the end-to-end tests, on Python's standard library only.
import http.server
import os
import sys

port = int(os.environ["PORT"])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/crash":
            print("crashing on request", flush=True)
            os._exit(3)
        if self.path == "/log":
            print("hello from the log endpoint", flush=True)
            print("and a line on stderr", file=sys.stderr, flush=True)
        body = "release=%s dyno=%s greeting=%s host=%s xff=%s rid=%s\n" % (
            os.environ.get("SKIFF_RELEASE"),
            os.environ.get("DYNO"),
            os.environ.get("GREETING", ""),
            self.headers.get("Host"),
            self.headers.get("X-Forwarded-For"),
            self.headers.get("X-Request-Id"),
        )
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


print("listening on port %d" % port, flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
