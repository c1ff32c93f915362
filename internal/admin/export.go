package admin

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// Snapshot is the state to export: every record read and opened, every
// object listed. Its manifest is complete before a byte of the file is
// written.
type Snapshot struct {
	st       *store.Store
	manifest Manifest
	records  map[string][]byte // entry name -> exported value
	nuids    map[string]string // entry name -> the object's NUID when listed
}

// Export writes the state of st to w: Take and WriteTo in one.
func Export(ctx context.Context, st *store.Store, w io.Writer) (*Manifest, error) {
	snap, err := Take(ctx, st)
	if err != nil {
		return nil, err
	}
	return snap.Manifest(), snap.WriteTo(ctx, w)
}

// Take reads the records of every exported bucket and lists the images.
// The records are held in memory (they are small); the images are read
// only by WriteTo.
func Take(ctx context.Context, st *store.Store) (*Snapshot, error) {
	now := time.Now().UTC().Truncate(time.Second)
	s := &Snapshot{st: st, records: map[string][]byte{}, nuids: map[string]string{},
		manifest: Manifest{Format: formatName, Version: FormatVersion, SkiffVersion: skiffVersion(), CreatedAt: now,
			Secrets: "open", Records: map[string]int{}, Objects: map[string]int{}}}
	m := &s.manifest

	for _, sp := range specs {
		kv, err := st.JS.KeyValue(ctx, sp.bucket)
		if err != nil {
			return nil, fmt.Errorf("export: open bucket %s: %w", sp.bucket, err)
		}
		entries, err := readBucket(ctx, kv)
		if err != nil {
			return nil, fmt.Errorf("export: read bucket %s: %w", sp.bucket, err)
		}
		for _, e := range entries {
			v := e.Value()
			if sp.open != nil {
				if v, err = sp.open(st, v); err != nil {
					return nil, fmt.Errorf("export: open %s %s: %w", sp.bucket, e.Key(), err)
				}
			}
			name := path.Join("kv", sp.bucket, e.Key())
			s.records[name] = v
			m.Entries = append(m.Entries, Entry{Name: name, Bucket: sp.bucket, Key: e.Key(), Size: int64(len(v)), SHA256: sum(v)})
			m.Records[sp.bucket]++
		}
	}

	infos, err := st.Slugs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, fmt.Errorf("export: list images: %w", err)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	have := map[string]bool{}
	for _, info := range infos {
		if info.Deleted {
			continue
		}
		digest, err := hexDigest(info.Digest)
		if err != nil {
			return nil, fmt.Errorf("export: image %s: %w", info.Name, err)
		}
		name := path.Join("objects", skiff.ObjectSlugs, info.Name)
		s.nuids[name] = info.NUID
		m.Entries = append(m.Entries, Entry{Name: name, Store: skiff.ObjectSlugs, Object: info.Name,
			Description: info.Description, Headers: info.Headers, Metadata: info.Metadata,
			Size: int64(info.Size), SHA256: digest})
		m.Objects[skiff.ObjectSlugs]++
		m.ObjectBytes += int64(info.Size)
		have[info.Name] = true
	}

	// A release whose image is gone cannot serve here either; say so
	// rather than let the import find out.
	for name, v := range s.records {
		var r skiff.Release
		if path.Dir(name) != path.Join("kv", skiff.BucketReleases) || json.Unmarshal(v, &r) != nil {
			continue
		}
		if r.Image.Object != "" && !have[r.Image.Object] {
			m.Warnings = append(m.Warnings, fmt.Sprintf("release %s of %s refers to image %s, which is not in the slugs store",
				r.Label(), r.App, r.Image.Object))
		}
	}
	addons, err := s.st.Addons.Values(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, a := range addons {
		m.Warnings = append(m.Warnings, fmt.Sprintf("add-on %s of %s (%s) stays on its server at %s: %s keeps naming it; "+
			"docs/admin.md says how to move it", a.Name, a.App, a.Type, a.Addr, a.ConfigVar))
	}
	sort.Strings(m.Warnings)

	if err := s.leftBehind(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// leftBehind notes in the manifest what the export does not carry: the
// buckets and stores it leaves on purpose, and any it does not know (a
// bucket added to the platform without being added here), as a warning.
func (s *Snapshot) leftBehind(ctx context.Context) error {
	m := &s.manifest
	buckets := s.st.JS.KeyValueStoreNames(ctx)
	for name := range buckets.Name() {
		if specOf(name) != nil {
			continue
		}
		if why, ok := transient[name]; ok {
			m.Left = append(m.Left, fmt.Sprintf("bucket %s: %s", name, why))
			continue
		}
		m.Warnings = append(m.Warnings, fmt.Sprintf("bucket %s is not known to this version's export and was left behind", name))
	}
	if err := buckets.Error(); err != nil {
		return fmt.Errorf("export: list buckets: %w", err)
	}
	stores := s.st.JS.ObjectStoreNames(ctx)
	for name := range stores.Name() {
		if name == skiff.ObjectSlugs {
			continue
		}
		if why, ok := leftObjects[name]; ok {
			m.Left = append(m.Left, fmt.Sprintf("object store %s: %s", name, why))
			continue
		}
		m.Warnings = append(m.Warnings, fmt.Sprintf("object store %s is not known to this version's export and was left behind", name))
	}
	if err := stores.Error(); err != nil {
		return fmt.Errorf("export: list object stores: %w", err)
	}
	m.Left = append(m.Left, "streams LOGS, EVENTS and USAGE: history, not state",
		"build caches and git repositories: on the builder's and ssh role's disks, not in the bus")
	sort.Strings(m.Left)
	return nil
}

// Manifest is what the export will hold.
func (s *Snapshot) Manifest() *Manifest { return &s.manifest }

// WriteTo writes the export file to w: the manifest, the records, then
// each image streamed from the slugs store and checked against the digest
// the manifest promised. An image deleted or replaced since Take is an
// error, and w then holds an incomplete file that Import refuses.
func (s *Snapshot) WriteTo(ctx context.Context, w io.Writer) error {
	tw := tar.NewWriter(w)
	manifest, err := json.MarshalIndent(&s.manifest, "", "  ")
	if err != nil {
		return err
	}
	put := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: s.manifest.CreatedAt,
			Typeflag: tar.TypeReg, Format: tar.FormatPAX})
	}
	if err := put(manifestName, int64(len(manifest))); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if _, err := tw.Write(manifest); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, e := range s.manifest.Entries {
		if e.Store != "" {
			continue
		}
		if err := put(e.Name, e.Size); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if _, err := tw.Write(s.records[e.Name]); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	for _, e := range s.manifest.Entries {
		if e.Store == "" {
			continue
		}
		if err := put(e.Name, e.Size); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if err := s.copyObject(ctx, tw, e); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// copyObject streams one image into the file, checking that it is still
// the one listed.
func (s *Snapshot) copyObject(ctx context.Context, w io.Writer, e Entry) error {
	changed := skiff.Errorf(skiff.KindConflict, "export again when no deploy is under way",
		"image %s was deleted or replaced while it was exported", e.Object)
	obj, err := s.st.Slugs.Get(ctx, e.Object)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return changed
	}
	if err != nil {
		return fmt.Errorf("export: read image %s: %w", e.Object, err)
	}
	defer obj.Close()
	if info, err := obj.Info(); err != nil || info.NUID != s.nuids[e.Name] {
		return changed
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), obj)
	if err != nil {
		return fmt.Errorf("export: copy image %s: %w", e.Object, err)
	}
	if n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return fmt.Errorf("export: image %s read back %d bytes that do not match its digest", e.Object, n)
	}
	return nil
}

// readBucket returns every live entry of a bucket, in key order.
func readBucket(ctx context.Context, kv jetstream.KeyValue) ([]jetstream.KeyValueEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch closed")
			}
			if e == nil {
				sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
				return out, nil
			}
			if e.Operation() == jetstream.KeyValuePut {
				out = append(out, e)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
