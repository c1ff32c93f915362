package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Export is the platform's state being exported: read the file from it,
// then close it. A Read returns an error, instead of io.EOF, if the server
// could not finish the export: what was read is then incomplete.
type Export struct {
	// Summary says what the file holds.
	Summary skiff.ExportSummary
	resp    *http.Response
}

// Export starts an export of the platform's state (admins only).
func (c *Client) Export(ctx context.Context) (*Export, error) {
	resp, err := c.request(ctx, "GET", "/v1/admin/export", nil, nil, "")
	if err != nil {
		return nil, err
	}
	x := &Export{resp: resp}
	if err := json.Unmarshal([]byte(resp.Header.Get("Skiff-Export-Summary")), &x.Summary); err != nil {
		resp.Body.Close()
		return nil, &skiff.Error{Kind: skiff.KindInternal, Message: "the export came without its summary",
			Hint: "the CLI and the server may be of different versions: skiff version", Err: err}
	}
	return x, nil
}

func (x *Export) Read(p []byte) (int, error) {
	n, err := x.resp.Body.Read(p)
	if errors.Is(err, io.EOF) {
		// The trailer is there once the body has been read to its end.
		if status := x.resp.Trailer.Get("Skiff-Export-Status"); status != "ok" {
			if status == "" {
				status = "the answer ended without saying it was complete"
			}
			return n, &skiff.Error{Kind: skiff.KindFailed, Message: "the export did not finish: " + strings.TrimPrefix(status, "failed: "),
				Hint: "export again; the server's log says more"}
		}
	} else if err != nil {
		err = &skiff.Error{Kind: skiff.KindUnavailable, Message: "the export broke off", Hint: "export again", Err: err}
	}
	return n, err
}

// Close ends the export's request.
func (x *Export) Close() error { return x.resp.Body.Close() }

// CheckImport reports whether the platform can take an import: an error
// of kind conflict says what it holds already.
func (c *Client) CheckImport(ctx context.Context) error {
	return c.call(ctx, "GET", "/v1/admin/import", nil, nil)
}

// Import sends an export file to the platform, which reads it into its
// state; with dryRun it only checks the file and whether it could.
func (c *Client) Import(ctx context.Context, file io.Reader, dryRun bool) (skiff.ImportReport, error) {
	var rep skiff.ImportReport
	q := url.Values{}
	if dryRun {
		q.Set("dry_run", "true")
	}
	resp, err := c.request(ctx, "POST", "/v1/admin/import", q, LocalBody(file), "application/x-tar")
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return rep, &skiff.Error{Kind: skiff.KindInternal, Message: "unreadable answer to the import",
			Hint: "skiff apps shows whether the apps were imported", Err: err}
	}
	return rep, nil
}
