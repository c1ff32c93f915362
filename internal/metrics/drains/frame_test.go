package drains

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"
)

func TestFrame(t *testing.T) {
	at := time.Date(2026, 11, 24, 13, 53, 0, 123456000, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		name    string
		l       line
		newline bool
		want    string
	}{
		{"app line", line{time: at, app: "shop", source: "app", process: "web.1", text: []byte("listening on 5000")}, false,
			"<190>1 2026-11-24T12:53:00.123456Z shop app web.1 - - listening on 5000"},
		{"heroku's https frame ends with a counted newline",
			line{time: at, app: "shop", source: "router", process: "router", text: []byte("GET / 200")}, true,
			"<190>1 2026-11-24T12:53:00.123456Z shop router router - - GET / 200\n"},
		{"empty fields are nil, unprintable ones made _",
			line{time: at, app: "shop", source: "platform", process: "", text: []byte("")}, false,
			"<190>1 2026-11-24T12:53:00.123456Z shop platform - - - "},
		{"a process name with a space",
			line{time: at, app: "shop", source: "app", process: "run 1", text: []byte("héllo")}, false,
			"<190>1 2026-11-24T12:53:00.123456Z shop app run_1 - - héllo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(frame(nil, tc.l, tc.newline))
			want := strconv.Itoa(len(tc.want)) + " " + tc.want
			if got != want {
				t.Fatalf("frame:\n got %q\nwant %q", got, want)
			}
			msgs, err := readFrames(bufio.NewReader(bytes.NewReader(frame([]byte(got), tc.l, tc.newline))), 2)
			if err != nil || len(msgs) != 2 || msgs[0] != tc.want || msgs[1] != tc.want {
				t.Fatalf("frames read back: %q, %v", msgs, err)
			}
		})
	}
	long := line{time: at, app: "shop", source: string(bytes.Repeat([]byte("s"), 100)), process: "web.1", text: []byte("x")}
	if got := string(frame(nil, long, false)); !bytes.Contains([]byte(got), bytes.Repeat([]byte("s"), 48)) ||
		bytes.Contains([]byte(got), bytes.Repeat([]byte("s"), 49)) {
		t.Fatalf("APP-NAME not cut at 48 characters: %q", got)
	}
}

// readFrames reads n octet-counted frames, as a receiver does.
func readFrames(r *bufio.Reader, n int) ([]string, error) {
	var out []string
	for len(out) < n {
		size, err := r.ReadString(' ')
		if err != nil {
			return out, err
		}
		k, err := strconv.Atoi(size[:len(size)-1])
		if err != nil {
			return out, fmt.Errorf("frame length %q: %w", size, err)
		}
		msg := make([]byte, k)
		if _, err := io.ReadFull(r, msg); err != nil {
			return out, err
		}
		out = append(out, string(msg))
	}
	return out, nil
}
