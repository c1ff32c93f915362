import http.server, os
import skiffgreet

GREETING = "hello from python"

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s %s release=%s\n" % (GREETING, skiffgreet.greet(), os.environ["SKIFF_RELEASE"])).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
