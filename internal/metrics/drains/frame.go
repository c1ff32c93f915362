package drains

import (
	"strconv"
	"time"
)

// line is one log line on its way to a receiver.
type line struct {
	seq     uint64 // in the LOGS stream
	time    time.Time
	app     string
	source  string // app, router, platform
	process string // web.1, router, build…
	text    []byte
}

// pri is the priority of every line: facility local7, severity info, as
// Heroku sends its lines (<190>).
const pri = "<190>"

// frame appends l to b as an octet-counted RFC 5424 syslog message
// (RFC 6587): "LEN <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG", with
// HOST the app, APP the source and PROCID the process, as Heroku does;
// MSGID and SD are nil ("-"). newline ends the message with a line feed,
// counted in LEN, as Heroku's HTTPS drains send it.
func frame(b []byte, l line, newline bool) []byte {
	msg := make([]byte, 0, 64+len(l.text))
	msg = append(msg, pri+"1 "...)
	msg = l.time.UTC().AppendFormat(msg, "2006-01-02T15:04:05.000000Z07:00")
	msg = append(msg, ' ')
	msg = appendField(msg, l.app, 255)
	msg = append(msg, ' ')
	msg = appendField(msg, l.source, 48)
	msg = append(msg, ' ')
	msg = appendField(msg, l.process, 128)
	msg = append(msg, " - - "...)
	msg = append(msg, l.text...)
	if newline {
		msg = append(msg, '\n')
	}
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, ' ')
	return append(b, msg...)
}

// appendField appends a header field of at most max printable ASCII
// characters, others made "_"; an empty one is nil ("-").
func appendField(b []byte, s string, max int) []byte {
	if s == "" {
		return append(b, '-')
	}
	if len(s) > max {
		s = s[:max]
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}
