package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// ConfigRecord is an app's config vars as stored: sealed, with a version
// that grows by one with each change.
type ConfigRecord struct {
	Version   int       `json:"version"`
	Sealed    []byte    `json:"sealed"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SealConfig encrypts vars for storage in a config record or a release.
func (s *Store) SealConfig(vars map[string]string) ([]byte, error) {
	if s.box == nil {
		return nil, errors.New("seal config: this store has no secret key")
	}
	if vars == nil {
		vars = map[string]string{}
	}
	plain, err := json.Marshal(vars)
	if err != nil {
		return nil, err
	}
	return s.box.Seal(plain), nil
}

// OpenConfig decrypts vars sealed by SealConfig. An empty input is an empty
// config.
func (s *Store) OpenConfig(sealed []byte) (map[string]string, error) {
	vars := map[string]string{}
	if len(sealed) == 0 {
		return vars, nil
	}
	if s.box == nil {
		return nil, errors.New("open config: this store has no secret key")
	}
	plain, err := s.box.Open(sealed)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(plain, &vars); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	return vars, nil
}

// Seal encrypts a secret (a private key) for storage.
func (s *Store) Seal(plain []byte) ([]byte, error) {
	if s.box == nil {
		return nil, errors.New("seal: this store has no secret key")
	}
	return s.box.Seal(plain), nil
}

// Unseal decrypts a secret sealed by Seal.
func (s *Store) Unseal(sealed []byte) ([]byte, error) {
	if s.box == nil {
		return nil, errors.New("unseal: this store has no secret key")
	}
	return s.box.Open(sealed)
}

// Config returns app's config vars and version; an app that never set any
// has an empty config at version 0.
func (s *Store) Config(ctx context.Context, app string) (map[string]string, int, error) {
	rec, _, err := s.Configs.Get(ctx, app)
	if errors.Is(err, skiff.ErrNotFound) {
		return map[string]string{}, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	vars, err := s.OpenConfig(rec.Sealed)
	return vars, rec.Version, err
}

// UpdateConfig applies change to app's config vars and stores the result
// under a new version. If change returns ErrNoChange nothing is written.
// It returns the vars, their version and whether a new version was written.
func (s *Store) UpdateConfig(ctx context.Context, app string, change func(vars map[string]string) error) (map[string]string, int, bool, error) {
	var vars map[string]string
	var changed bool
	rec, err := s.Configs.Upsert(ctx, app, func(rec *ConfigRecord) error {
		v, err := s.OpenConfig(rec.Sealed)
		if err != nil {
			return err
		}
		vars, changed = v, false
		if err := change(v); err != nil {
			return err
		}
		if rec.Sealed, err = s.SealConfig(v); err != nil {
			return err
		}
		rec.Version++
		rec.UpdatedAt = time.Now().UTC()
		changed = true
		return nil
	})
	if err != nil {
		return nil, 0, false, err
	}
	return vars, rec.Version, changed, nil
}
