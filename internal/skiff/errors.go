package skiff

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned by state lookups when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write loses a race: a create of an existing
// key, or an update naming a revision that is no longer the latest.
var ErrConflict = errors.New("conflict")

// Kind says what class of failure an Error is. The API maps kinds to HTTP
// status codes and the CLI maps them to exit codes; nothing else should.
type Kind string

// The kinds of user-facing errors.
const (
	KindInvalid      Kind = "invalid"      // the request is malformed or names something impossible
	KindNotFound     Kind = "not_found"    // the thing named does not exist
	KindConflict     Kind = "conflict"     // the thing exists already or changed meanwhile
	KindUnauthorized Kind = "unauthorized" // no token, or a token we do not know
	KindForbidden    Kind = "forbidden"    // a known token without the right
	KindTooLarge     Kind = "too_large"    // an upload or value over its limit
	KindFailed       Kind = "failed"       // a build or release failed for a reason in the app
	KindUnavailable  Kind = "unavailable"  // a role the request needs is not running
	KindInternal     Kind = "internal"     // a fault of the platform
)

// kindStatus is the HTTP status of each kind; KindInternal is 500.
var kindStatus = map[Kind]int{
	KindInvalid:      400,
	KindUnauthorized: 401,
	KindForbidden:    403,
	KindNotFound:     404,
	KindConflict:     409,
	KindTooLarge:     413,
	KindFailed:       422,
	KindUnavailable:  503,
}

// HTTPStatus is the HTTP status the API answers errors of kind k with.
func (k Kind) HTTPStatus() int {
	if s, ok := kindStatus[k]; ok {
		return s
	}
	return 500
}

// KindOfStatus is the kind of an HTTP error status: the inverse of
// HTTPStatus, for answers that carry no kind of their own.
func KindOfStatus(status int) Kind {
	for k, s := range kindStatus {
		if s == status {
			return k
		}
	}
	return KindInternal
}

// Error is a failure worth showing to a user: what went wrong (Message) and
// what to do about it (Hint). Err, when set, is the underlying cause.
type Error struct {
	Kind    Kind
	Message string
	Hint    string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error of the given kind with a hint and a formatted message.
func Errorf(kind Kind, hint, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...), Hint: hint}
}

// KindOf reports the kind of err: the Kind of the first *Error in its chain,
// KindNotFound or KindConflict for the sentinels, and KindInternal otherwise.
func KindOf(err error) Kind {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Kind
	case errors.Is(err, ErrNotFound):
		return KindNotFound
	case errors.Is(err, ErrConflict):
		return KindConflict
	}
	return KindInternal
}

// ErrorBody is the HTTP status and body an error is answered with. Errors
// that are not an *Error are faults of the platform, said to be so.
func ErrorBody(err error) (int, APIError) {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind.HTTPStatus(), APIError{Error: e.Error(), Code: e.Kind, Hint: e.Hint}
	}
	kind := KindOf(err)
	if kind == KindInternal {
		return 500, APIError{Error: "internal error: " + err.Error(), Code: kind,
			Hint: "this is a fault of the platform; the server log has details"}
	}
	return kind.HTTPStatus(), APIError{Error: err.Error(), Code: kind}
}
