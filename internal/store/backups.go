package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// NewBackup stores a new backup record, numbered after the app's others
// of its series: a001… for scheduled backups, b001… for the rest.
func (s *Store) NewBackup(ctx context.Context, b skiff.Backup) (skiff.Backup, error) {
	prefix := "b"
	if b.Kind == skiff.BackupScheduled {
		prefix = "a"
	}
	for try := 0; ; try++ {
		all, err := s.Backups.Values(ctx, b.App+".*")
		if err != nil {
			return b, err
		}
		n := 0
		for _, o := range all {
			if k, err := strconv.Atoi(strings.TrimPrefix(o.ID, prefix)); err == nil && strings.HasPrefix(o.ID, prefix) && k > n {
				n = k
			}
		}
		b.ID = fmt.Sprintf("%s%03d", prefix, n+1)
		_, err = s.Backups.Create(ctx, b.Key(), b)
		if err == nil || !errors.Is(err, skiff.ErrConflict) || try == 5 {
			return b, err
		}
	}
}
