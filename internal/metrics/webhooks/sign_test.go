package webhooks

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignKnownVector(t *testing.T) {
	// Computed apart, with Python's hmac module.
	got := Sign([]byte("whsec_test"), time.Unix(1700000000, 0), []byte(`{"type":"release.deployed"}`))
	want := "t=1700000000,v1=660e6b367c984e388bc8ae483b1e5b13b8fbaa9c96b61b3bdcfd394cacba33d0"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret, body := []byte("whsec_0123456789abcdef"), []byte(`{"app":"shop"}`)
	at := time.Unix(1700000000, 0)
	header := Sign(secret, at, body)
	other := Sign([]byte("another secret"), at, body)
	tests := []struct {
		name      string
		secret    []byte
		header    string
		body      string
		now       time.Time
		tolerance time.Duration
		want      error // nil, a sentinel, or errMalformed
	}{
		{"good", secret, header, string(body), at.Add(time.Minute), 5 * time.Minute, nil},
		{"no tolerance", secret, header, string(body), at.Add(24 * time.Hour), 0, nil},
		{"rotated secret: one of two matches", secret, header + "," + strings.Split(other, ",")[1], string(body), at, time.Minute, nil},
		{"other body", secret, header, `{"app":"shop2"}`, at, time.Minute, ErrBadSignature},
		{"other secret", []byte("nope"), header, string(body), at, time.Minute, ErrBadSignature},
		{"time changed", secret, strings.Replace(header, "t=1700000000", "t=1700000001", 1), string(body), at, time.Minute, ErrBadSignature},
		{"too old", secret, header, string(body), at.Add(10 * time.Minute), 5 * time.Minute, ErrTooOld},
		{"from the future", secret, header, string(body), at.Add(-10 * time.Minute), 5 * time.Minute, ErrTooOld},
		{"no time", secret, "v1=00", string(body), at, 0, errMalformed},
		{"no signature", secret, "t=1700000000", string(body), at, 0, errMalformed},
		{"empty", secret, "", string(body), at, 0, errMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.header, []byte(tt.body), tt.now, tt.tolerance)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Verify: %v, want success", err)
			case tt.want == errMalformed:
				if err == nil || !strings.Contains(err.Error(), "malformed") {
					t.Fatalf("Verify: %v, want a malformed header error", err)
				}
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
}

var errMalformed = errors.New("malformed")
