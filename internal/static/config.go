// Package static is about static sites: the static.json format and serving a
// site from an image.
//
// A static site is built by the static buildpack, which reads the app's
// static.json (the format of Heroku's static buildpack) with Parse,
// checks the tree against it and writes its canonical form into the
// image at ConfigFile. The site's web process (skiff.StaticCommand, run
// by the agent) or the router serves it with Handler, which reads
// the canonical form back; Dir serves one directory of an image,
// for app.json's static prefixes. Both send files compressed where the
// client takes it, from one cache shared by every site of the process.
//
// static.json, all fields optional:
//
//	{
//	  "root": "public",                         // directory served; default "."
//	  "clean_urls": true,                       // /about serves about.html
//	  "routes": {"/**": "index.html"},          // file for paths that match no file
//	  "headers": {"/assets/**": {"Cache-Control": "public, max-age=31536000"}},
//	  "error_page": "404.html",                 // served with status 404
//	  "redirects": {"/old": {"url": "/new", "status": 301}}
//	}
//
// Patterns start with "/"; "*" matches within one path segment and "**"
// across segments. Routes are tried in the order of the file, and so are
// header rules (a later rule overrides an earlier one's header).
package static

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// ConfigFile is where the build leaves the canonical configuration in
// the tree, for Handler. It is never served.
const ConfigFile = ".skiff/static.json"

// Config is the canonical form of static.json, as ConfigFile holds it:
// lists in the order of the user's file, paths cleaned.
type Config struct {
	// Version is the format's version: 1. A server refuses a newer one.
	Version   int          `json:"version"`
	Root      string       `json:"root"`
	CleanURLs bool         `json:"clean_urls"`
	Routes    []Route      `json:"routes"`
	Headers   []HeaderRule `json:"headers"`
	ErrorPage string       `json:"error_page"`
	Redirects []Redirect   `json:"redirects"`
}

// Route names the file served for the paths that match Path and no file.
type Route struct {
	Path string `json:"path"`
	File string `json:"file"`
	re   *regexp.Regexp
}

// HeaderRule sets headers on the files served at the paths that match
// Path.
type HeaderRule struct {
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	re      *regexp.Regexp
}

// Redirect sends the paths that match Path to URL, with Status.
type Redirect struct {
	Path   string `json:"path"`
	URL    string `json:"url"`
	Status int    `json:"status"`
	re     *regexp.Regexp
}

// DefaultConfig is the configuration of a site without static.json: its
// root directory, nothing more.
func DefaultConfig() Config { return Config{Version: 1, Root: "."} }

// ConfigError is the error of a static.json at fault, for its user: msg
// says what is wrong, and the error's hint what to do.
func ConfigError(msg string) error {
	return skiff.Errorf(skiff.KindFailed, "fix static.json and push again (see the static site docs for its fields)", "static.json: %s", msg)
}

// Parse reads a user's static.json into its canonical form, checked and
// compiled. Unknown fields (Heroku's https_only, proxies…) are warnings,
// not errors: the site still works without them. Errors are ConfigError's.
func Parse(data []byte) (Config, []string, error) {
	cfg := DefaultConfig()
	var warnings []string
	fields, err := jsonObject(data)
	if err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line, col := skiff.LineColumn(data, syn.Offset)
			return cfg, nil, ConfigError(fmt.Sprintf("not valid JSON: line %d, column %d: %s", line, col, syn.Error()))
		}
		return cfg, nil, ConfigError("not valid JSON: " + err.Error())
	}
	for _, f := range fields {
		bad := func(want string) error {
			return ConfigError(fmt.Sprintf("%q must be %s", f.key, want))
		}
		switch f.key {
		case "root":
			if json.Unmarshal(f.value, &cfg.Root) != nil {
				return cfg, warnings, bad(`a directory name, like "public"`)
			}
		case "clean_urls":
			if json.Unmarshal(f.value, &cfg.CleanURLs) != nil {
				return cfg, warnings, bad("true or false")
			}
		case "error_page":
			if json.Unmarshal(f.value, &cfg.ErrorPage) != nil {
				return cfg, warnings, bad(`a file name, like "404.html"`)
			}
		case "routes":
			routes, err := jsonObject(f.value)
			if err != nil {
				return cfg, warnings, bad(`an object of URL pattern to file, like {"/**": "index.html"}`)
			}
			for _, r := range routes {
				var file string
				if json.Unmarshal(r.value, &file) != nil {
					return cfg, warnings, ConfigError(fmt.Sprintf("routes[%q] must be a file name, like \"index.html\"", r.key))
				}
				cfg.Routes = append(cfg.Routes, Route{Path: r.key, File: file})
			}
		case "headers":
			rules, err := jsonObject(f.value)
			if err != nil {
				return cfg, warnings, bad(`an object of URL pattern to headers, like {"/assets/**": {"Cache-Control": "max-age=3600"}}`)
			}
			for _, r := range rules {
				var h map[string]string
				if json.Unmarshal(r.value, &h) != nil || h == nil {
					return cfg, warnings, ConfigError(fmt.Sprintf("headers[%q] must be an object of header name to value", r.key))
				}
				cfg.Headers = append(cfg.Headers, HeaderRule{Path: r.key, Headers: h})
			}
		case "redirects":
			redirects, err := jsonObject(f.value)
			if err != nil {
				return cfg, warnings, bad(`an object of path to redirect, like {"/old": {"url": "/new", "status": 301}}`)
			}
			for _, r := range redirects {
				var rd struct {
					URL    string `json:"url"`
					Status int    `json:"status"`
				}
				if json.Unmarshal(r.value, &rd) != nil {
					return cfg, warnings, ConfigError(fmt.Sprintf("redirects[%q] must be an object like {\"url\": \"/new\", \"status\": 301}", r.key))
				}
				if rd.Status == 0 {
					rd.Status = http.StatusMovedPermanently
				}
				cfg.Redirects = append(cfg.Redirects, Redirect{Path: r.key, URL: rd.URL, Status: rd.Status})
			}
		default:
			warnings = append(warnings, fmt.Sprintf("ignoring unknown field %q", f.key))
		}
	}
	cfg.Root = strings.TrimSuffix(filepath.ToSlash(cfg.Root), "/")
	if cfg.Root == "" {
		cfg.Root = "."
	}
	cfg.Root = path.Clean(cfg.Root)
	for i := range cfg.Routes {
		cfg.Routes[i].File = path.Clean(strings.TrimPrefix(cfg.Routes[i].File, "/"))
	}
	if cfg.ErrorPage != "" {
		cfg.ErrorPage = path.Clean(strings.TrimPrefix(cfg.ErrorPage, "/"))
	}
	if err := cfg.compile(); err != nil {
		return cfg, warnings, ConfigError(err.Error())
	}
	return cfg, warnings, nil
}

// compile checks cfg and compiles its patterns. Its errors name the field
// of static.json at fault.
func (cfg *Config) compile() error {
	if cfg.Version != 1 {
		return fmt.Errorf("format version %d is not supported (this skiff reads version 1)", cfg.Version)
	}
	if !local(cfg.Root) {
		return fmt.Errorf(`"root" must be a directory inside the app, like "public", not %q`, cfg.Root)
	}
	if cfg.ErrorPage != "" && !local(cfg.ErrorPage) {
		return fmt.Errorf(`"error_page" must be a file inside root, like "404.html", not %q`, cfg.ErrorPage)
	}
	var err error
	for i, r := range cfg.Routes {
		if cfg.Routes[i].re, err = glob(r.Path); err != nil {
			return fmt.Errorf("routes: %w", err)
		}
		if !local(r.File) || r.File == "." {
			return fmt.Errorf("routes[%q] must name a file inside root, like \"index.html\", not %q", r.Path, r.File)
		}
	}
	for i, h := range cfg.Headers {
		if cfg.Headers[i].re, err = glob(h.Path); err != nil {
			return fmt.Errorf("headers: %w", err)
		}
		for name, value := range h.Headers {
			if !headerName(name) {
				return fmt.Errorf("headers[%q]: %q is not a valid header name", h.Path, name)
			}
			switch http.CanonicalHeaderKey(name) {
			case "Content-Length", "Transfer-Encoding", "Connection", "Content-Range":
				return fmt.Errorf("headers[%q]: %s is set by the server and cannot be changed", h.Path, name)
			}
			if strings.ContainsAny(value, "\r\n\x00") {
				return fmt.Errorf("headers[%q][%q]: a header value cannot contain line breaks", h.Path, name)
			}
		}
	}
	for i, r := range cfg.Redirects {
		if cfg.Redirects[i].re, err = glob(r.Path); err != nil {
			return fmt.Errorf("redirects: %w", err)
		}
		if r.URL == "" || strings.ContainsAny(r.URL, " \t\r\n\x00") {
			return fmt.Errorf("redirects[%q] needs a \"url\" to redirect to, without spaces", r.Path)
		}
		switch r.Status {
		case 301, 302, 303, 307, 308:
		default:
			return fmt.Errorf("redirects[%q]: status %d is not a redirect status (301, 302, 303, 307 or 308)", r.Path, r.Status)
		}
	}
	return nil
}

// Routed reports whether a route covers urlPath. cfg is one Parse
// returned, or DefaultConfig.
func (cfg *Config) Routed(urlPath string) bool {
	for _, r := range cfg.Routes {
		if r.re.MatchString(urlPath) {
			return true
		}
	}
	return false
}

// local reports whether a slash-separated name stays inside its
// directory.
func local(name string) bool {
	return name != "" && filepath.IsLocal(filepath.FromSlash(name))
}

// glob compiles a URL pattern: "*" matches within a path segment, "**"
// across segments, "?" one character of a segment.
func glob(pattern string) (*regexp.Regexp, error) {
	if !strings.HasPrefix(pattern, "/") {
		return nil, fmt.Errorf("pattern %q must start with /", pattern)
	}
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); {
		switch {
		case strings.HasPrefix(pattern[i:], "**"):
			re.WriteString(".*")
			i += 2
		case pattern[i] == '*':
			re.WriteString("[^/]*")
			i++
		case pattern[i] == '?':
			re.WriteString("[^/]")
			i++
		default:
			r, size := utf8.DecodeRuneInString(pattern[i:])
			re.WriteString(regexp.QuoteMeta(string(r)))
			i += size
		}
	}
	re.WriteString("$")
	return regexp.Compile(re.String())
}

// headerName reports whether name is an HTTP token (RFC 9110).
func headerName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// Hidden reports whether a slash-separated name has a segment that
// starts with a dot, except .well-known: .git, .env and .skiff are never
// served.
func Hidden(name string) bool {
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") && seg != "." && seg != ".well-known" {
			return true
		}
	}
	return false
}

// jsonField is one member of a JSON object, in the object's order.
type jsonField struct {
	key   string
	value json.RawMessage
}

// jsonObject decodes a JSON object keeping the order of its members.
func jsonObject(data []byte) ([]jsonField, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("it must be a JSON object")
	}
	var fields []jsonField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var f jsonField
		f.key = tok.(string)
		if err := dec.Decode(&f.value); err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the top-level object")
	}
	return fields, nil
}
