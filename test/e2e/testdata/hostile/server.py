# A hostile app for the isolation tests: each path tries something an app
# must not be able to do to another app or to the platform.
import http.server
import os
import signal
import subprocess
import urllib.parse

APP = os.environ.get("SKIFF_APP", "?")


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, code, text):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        try:
            if url.path == "/":
                return self.answer(200, "hostile %s uid=%d" % (APP, os.getuid()))
            if url.path == "/write":
                for p in (os.path.expanduser("~/secret.txt"), "/tmp/secret.txt"):
                    with open(p, "w") as f:
                        f.write("secret of " + APP)
                return self.answer(200, "written")
            if url.path == "/read":
                with open(q["path"]) as f:
                    return self.answer(200, f.read())
            if url.path == "/pids":
                return self.answer(200, " ".join(sorted(p for p in os.listdir("/proc") if p.isdigit())))
            if url.path == "/kill":
                os.kill(int(q["pid"]), signal.SIGKILL)
                return self.answer(200, "killed")
            if url.path == "/forkbomb":
                subprocess.Popen(["bash", "-c", "bomb() { bomb | bomb & }; bomb"])
                return self.answer(200, "bombing")
            if url.path == "/alloc":
                hog = b"x" * (int(q["mb"]) << 20)
                return self.answer(200, "allocated %d" % len(hog))
        except Exception as e:
            return self.answer(403, "refused: %s" % e)
        self.answer(404, "no such path")

    def log_message(self, *args):
        pass


http.server.HTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
