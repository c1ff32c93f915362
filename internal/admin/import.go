package admin

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// ImportOptions tunes Import.
type ImportOptions struct {
	// DryRun reads and checks the whole file, and whether the target can
	// take it, but writes nothing.
	DryRun bool
	Logger *slog.Logger
}

// CheckTarget reports whether st can take an import: it must hold no
// app state (apps, releases, config, formation, domains, certificates,
// user IDs). An error of kind conflict says what it holds.
func CheckTarget(ctx context.Context, st *store.Store) error {
	// Apps first: the error then names them, which says most.
	order := []string{skiff.BucketApps}
	for _, sp := range specs {
		if sp.kind == fresh && sp.bucket != skiff.BucketApps {
			order = append(order, sp.bucket)
		}
	}
	for _, bucket := range order {
		sp := specOf(bucket)
		kv, err := st.JS.KeyValue(ctx, sp.bucket)
		if err != nil {
			return fmt.Errorf("import: open bucket %s: %w", sp.bucket, err)
		}
		keys, err := listKeys(ctx, kv)
		if err != nil {
			return fmt.Errorf("import: read bucket %s: %w", sp.bucket, err)
		}
		if len(keys) == 0 {
			continue
		}
		what := fmt.Sprintf("%d %s record%s", len(keys), sp.bucket, plural(len(keys)))
		if sp.bucket == skiff.BucketApps {
			what = fmt.Sprintf("app%s %s", plural(len(keys)), strings.Join(first(keys, 5), ", "))
		}
		return skiff.Errorf(skiff.KindConflict,
			"import into a fresh installation (a new data directory, or a new cluster), or destroy its apps first: two states are never mixed",
			"this installation already has %s", what)
	}
	return nil
}

// pending is a record read from the file, to be written once all is
// checked.
type pending struct {
	sp    *spec
	key   string
	value []byte // as stored on the target: sealed with its key
}

// importer is one run of Import.
type importer struct {
	st  *store.Store
	opt ImportOptions
	log *slog.Logger

	manifest Manifest
	entries  map[string]*Entry
	seen     map[string]bool
	records  map[string][]byte // entry name -> value as exported
	size     int64             // of records
	report   skiff.ImportReport

	putObjects []string // stored in the slugs store by this import
	created    []created
}

type created struct {
	kv  jetstream.KeyValue
	key string
}

// Import reads an export from r into st, a fresh installation: see the
// package comment for what it checks and in which order. It returns what
// it imported. Errors the user can act on (a damaged file, a target that
// is not fresh, a conflicting record) are *skiff.Error.
func Import(ctx context.Context, st *store.Store, r io.Reader, opt ImportOptions) (skiff.ImportReport, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	im := &importer{st: st, opt: opt, log: opt.Logger, seen: map[string]bool{}, records: map[string][]byte{},
		report: skiff.ImportReport{DryRun: opt.DryRun, Records: map[string]int{}, Objects: map[string]int{}, Kept: map[string]int{}}}
	err := im.run(ctx, r)
	if err != nil {
		im.undo()
		return skiff.ImportReport{}, err
	}
	return im.report, nil
}

func (im *importer) run(ctx context.Context, r io.Reader) error {
	tr, err := openTar(r)
	if err != nil {
		return err
	}
	if err := im.readManifest(tr); err != nil {
		return err
	}
	if err := CheckTarget(ctx, im.st); err != nil {
		return err
	}
	im.log.Info("import started", "exported", im.manifest.CreatedAt, "skiff_version", im.manifest.SkiffVersion,
		"entries", len(im.manifest.Entries), "object_bytes", im.manifest.ObjectBytes, "dry_run", im.opt.DryRun)

	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return readError(err)
		}
		if err := im.entry(ctx, tr, hdr); err != nil {
			return err
		}
	}
	var missing []string
	for _, e := range im.manifest.Entries {
		if !im.seen[e.Name] {
			missing = append(missing, e.Name)
		}
	}
	if len(missing) > 0 {
		return damaged("it ends before %d of its %d entries (the first missing is %s): it was cut short",
			len(missing), len(im.manifest.Entries), missing[0])
	}

	writes, err := im.prepare(ctx)
	if err != nil {
		return err
	}
	if im.opt.DryRun {
		return nil
	}
	// From here on the import completes or is undone whatever the
	// caller does: half an import is worse than either.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if err := CheckTarget(wctx, im.st); err != nil {
		return err
	}
	for _, w := range writes {
		kv, err := im.st.JS.KeyValue(wctx, w.sp.bucket)
		if err != nil {
			return fmt.Errorf("import: open bucket %s: %w", w.sp.bucket, err)
		}
		_, err = kv.Create(wctx, w.key, w.value)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return skiff.Errorf(skiff.KindConflict, "nothing was imported; make sure nothing else changes this installation during the import, and import again",
				"%s %s was written by someone else during the import", w.sp.bucket, w.key)
		}
		if err != nil {
			return fmt.Errorf("import: write %s %s: %w", w.sp.bucket, w.key, err)
		}
		im.created = append(im.created, created{kv: kv, key: w.key})
	}
	for _, app := range im.report.Apps {
		im.st.Log(app, skiff.SourcePlatform, "admin", fmt.Sprintf("Imported from an export made %s by skiff %s",
			im.manifest.CreatedAt.Format(time.RFC3339), im.manifest.SkiffVersion))
	}
	im.log.Info("import done", "apps", im.report.Apps, "records", im.report.Records, "objects", im.report.Objects,
		"bytes", im.report.Bytes)
	return nil
}

// openTar reads a tar stream, gunzipping it first if it is gzipped.
func openTar(r io.Reader) (*tar.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(2)
	if err != nil && len(magic) < 2 {
		return nil, notAnExport(fmt.Errorf("it is %d bytes long", len(magic)))
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, notAnExport(err)
		}
		return tar.NewReader(zr), nil
	}
	return tar.NewReader(br), nil
}

// readError is the error of a file that could not be read on.
func readError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return damaged("it ends in the middle of an entry: it was cut short")
	}
	var se *skiff.Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, tar.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
		return damaged("%v", err)
	}
	return fmt.Errorf("import: read the export: %w", err)
}

func (im *importer) readManifest(tr *tar.Reader) error {
	hdr, err := tr.Next()
	if err != nil {
		return notAnExport(fmt.Errorf("it is not a tar file: %w", err))
	}
	if hdr.Name != manifestName {
		return notAnExport(fmt.Errorf("its first entry is %s, not %s", hdr.Name, manifestName))
	}
	if hdr.Size > maxManifest {
		return notAnExport(fmt.Errorf("its manifest is %d bytes long", hdr.Size))
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return readError(err)
	}
	if err := json.Unmarshal(data, &im.manifest); err != nil {
		return notAnExport(fmt.Errorf("its manifest does not decode: %w", err))
	}
	if err := im.manifest.check(); err != nil {
		return err
	}
	im.entries = map[string]*Entry{}
	for i := range im.manifest.Entries {
		im.entries[im.manifest.Entries[i].Name] = &im.manifest.Entries[i]
	}
	im.report.Export = im.manifest.Summary()
	im.report.Warnings = append(im.report.Warnings, im.manifest.Warnings...)
	return nil
}

// entry reads one entry of the file: a record into memory, an image into
// the slugs store (or, in a dry run, nowhere), checked against the
// manifest.
func (im *importer) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	e := im.entries[hdr.Name]
	switch {
	case e == nil:
		return damaged("it holds an entry %s its manifest does not list", hdr.Name)
	case im.seen[e.Name]:
		return damaged("it holds entry %s twice", e.Name)
	case hdr.Typeflag != tar.TypeReg:
		return damaged("entry %s is not a regular file", e.Name)
	case hdr.Size != e.Size:
		return damaged("entry %s is %d bytes long, its manifest says %d", e.Name, hdr.Size, e.Size)
	}
	im.seen[e.Name] = true
	v := &verifier{r: tr, h: sha256.New(), e: e}
	if e.Store == "" {
		if im.size += e.Size; im.size > maxRecords {
			return skiff.Errorf(skiff.KindTooLarge, "", "the export's records are more than %d MiB together, more than an import holds", maxRecords>>20)
		}
		data, err := io.ReadAll(v)
		if err != nil {
			return readError(err)
		}
		im.records[e.Name] = data
		return nil
	}

	// An image of the same name is the same image: its name holds its
	// digest. One the target has already is checked, not written again.
	info, err := im.st.Slugs.GetInfo(ctx, e.Object)
	exists := err == nil && !info.Deleted
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("import: look up image %s: %w", e.Object, err)
	}
	if im.opt.DryRun || exists {
		if exists {
			if d, _ := hexDigest(info.Digest); d != e.SHA256 {
				return skiff.Errorf(skiff.KindConflict, "import into a fresh installation",
					"this installation has another image named %s", e.Object)
			}
		}
		if _, err := io.Copy(io.Discard, v); err != nil {
			return readError(err)
		}
	} else {
		meta := jetstream.ObjectMeta{Name: e.Object, Description: e.Description, Headers: e.Headers, Metadata: e.Metadata}
		if _, err := im.st.Slugs.Put(ctx, meta, v); err != nil {
			if v.err != nil {
				return readError(v.err)
			}
			return fmt.Errorf("import: store image %s: %w", e.Object, err)
		}
		im.putObjects = append(im.putObjects, e.Object)
	}
	if exists {
		im.report.Kept[e.Store]++
		return nil
	}
	im.report.Objects[e.Store]++
	im.report.Bytes += e.Size
	return nil
}

// verifier passes an entry's bytes on and fails at its end, instead of
// reporting io.EOF, if they are not those the manifest promised: the
// object store then purges what it stored of them.
type verifier struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	e   *Entry
	err error
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if errors.Is(err, io.EOF) && (v.n != v.e.Size || hex.EncodeToString(v.h.Sum(nil)) != v.e.SHA256) {
		err = damaged("entry %s does not match its checksum", v.e.Name)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		v.err = err
	}
	return n, err
}

// prepare turns the records read into the writes to make, sealed with the
// target's key, and checks them against what the target holds.
func (im *importer) prepare(ctx context.Context) ([]pending, error) {
	var writes []pending
	for i := range specs {
		sp := &specs[i]
		var kv jetstream.KeyValue
		for _, e := range im.manifest.Entries {
			if e.Bucket != sp.bucket {
				continue
			}
			v := im.records[e.Name]
			if sp.bucket == skiff.BucketReleases {
				im.noteRedeploy(v)
			}
			if sp.seal != nil {
				var err error
				if v, err = sp.seal(im.st, v); err != nil {
					return nil, damaged("record %s does not decode: %v", e.Name, err)
				}
			} else if !json.Valid(v) {
				return nil, damaged("record %s is not JSON", e.Name)
			}
			if sp.kind != fresh {
				if kv == nil {
					var err error
					if kv, err = im.st.JS.KeyValue(ctx, sp.bucket); err != nil {
						return nil, fmt.Errorf("import: open bucket %s: %w", sp.bucket, err)
					}
				}
				keep, err := im.compare(ctx, kv, sp, e, im.records[e.Name])
				if err != nil {
					return nil, err
				}
				if keep {
					im.report.Kept[sp.bucket]++
					continue
				}
			}
			if sp.bucket == skiff.BucketApps {
				im.report.Apps = append(im.report.Apps, e.Key)
				im.notePlacement(e.Key, v)
			}
			writes = append(writes, pending{sp: sp, key: e.Key, value: v})
			im.report.Records[sp.bucket]++
		}
	}
	sort.Strings(im.report.Warnings)
	return writes, nil
}

// compare looks up a record of a merged or cached bucket on the target.
// keep is true when the target's is to stay: the same value (compared in
// the exported form, since sealing differs each time), or any value of a
// cached bucket. A different token or key is a conflict.
func (im *importer) compare(ctx context.Context, kv jetstream.KeyValue, sp *spec, e Entry, exported []byte) (keep bool, err error) {
	cur, err := kv.Get(ctx, e.Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("import: read %s %s: %w", sp.bucket, e.Key, err)
	}
	if sp.kind == cached {
		return true, nil
	}
	have := cur.Value()
	if sp.open != nil {
		if have, err = sp.open(im.st, have); err != nil {
			return false, fmt.Errorf("import: open %s %s: %w", sp.bucket, e.Key, err)
		}
	}
	if jsonEqual(have, exported) {
		return true, nil
	}
	what := sp.bucket + " " + e.Key
	if sp.bucket == skiff.BucketKeys {
		var k skiff.Key
		_ = json.Unmarshal(exported, &k)
		what = "the SSH key " + k.Fingerprint
	}
	return false, skiff.Errorf(skiff.KindConflict, "remove it here (skiff keys remove) and import again",
		"%s is registered on this installation with other details than in the export", what)
}

// noteRedeploy warns about a release the target will roll out again.
func (im *importer) noteRedeploy(v []byte) {
	var r skiff.Release
	if json.Unmarshal(v, &r) == nil && (r.Status == skiff.ReleaseDeploying || r.Status == skiff.ReleasePending) {
		im.report.Warnings = append(im.report.Warnings,
			fmt.Sprintf("release %s of %s was still %s when exported: it is rolled out here", r.Label(), r.App, r.Status))
	}
}

// notePlacement warns about an app pinned to nodes of some labels
// (skiff placement), which the target's nodes must have too.
func (im *importer) notePlacement(app string, v []byte) {
	var a struct {
		Placement map[string]string `json:"placement"`
	}
	if json.Unmarshal(v, &a) != nil || len(a.Placement) == 0 {
		return
	}
	var labels []string
	for k, v := range a.Placement {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	l := strings.Join(labels, ",")
	im.report.Warnings = append(im.report.Warnings, fmt.Sprintf(
		"app %s runs only on nodes labelled %s: start this installation's nodes with --labels %s", app, l, l))
}

// undo deletes what a failed import wrote, newest first. A record is
// deleted whatever it holds now: the target was fresh, so it is the
// import's, though the scheduler may have acted on it meanwhile.
func (im *importer) undo() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := len(im.created) - 1; i >= 0; i-- {
		c := im.created[i]
		if err := c.kv.Delete(ctx, c.key); err != nil {
			im.log.Error("undo a failed import", "bucket", c.kv.Bucket(), "key", c.key, "err", err)
		}
	}
	for _, name := range im.putObjects {
		if err := im.st.Slugs.Delete(ctx, name); err != nil {
			im.log.Error("undo a failed import", "image", name, "err", err)
		}
	}
}

// listKeys lists a bucket's keys; none is not an error.
func listKeys(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer lister.Stop()
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "…")
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
