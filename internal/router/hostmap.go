package router

import (
	"hash/maphash"
	"math/bits"
)

// hostMap maps hostnames to app entries. It is built once and never
// changed, and made so that a lookup touches one cache line: each slot is
// 64 bytes holding the name itself and its entry, in an open-addressed
// array at most half full (linear probing). With thousands of apps busy,
// a Go map costs a request two or three cache misses (its group's control
// word, the slot, the key's bytes elsewhere in the heap); this costs one,
// rarely two. Names too long for a slot go in a map of their own.
type hostMap struct {
	slots []hostSlot // a power of two of them, or none
	long  map[string]*appEntry
	seed  maphash.Seed
}

// hostInline is the longest name a slot holds.
const hostInline = 55

type hostSlot struct {
	e    *appEntry // nil: an empty slot
	n    uint8
	name [hostInline]byte
}

// newHostMap makes a map of names (lower case), each to its entry.
func newHostMap(names map[string]*appEntry) *hostMap {
	m := &hostMap{seed: maphash.MakeSeed()}
	short := 0
	for name := range names {
		if len(name) <= hostInline {
			short++
		}
	}
	if short > 0 {
		m.slots = make([]hostSlot, 1<<bits.Len(uint(2*short-1)))
	}
	for name, e := range names {
		if len(name) > hostInline {
			if m.long == nil {
				m.long = map[string]*appEntry{}
			}
			m.long[name] = e
			continue
		}
		mask := uint64(len(m.slots) - 1)
		i := maphash.String(m.seed, name) & mask
		for m.slots[i].e != nil {
			i = (i + 1) & mask
		}
		s := &m.slots[i]
		s.e, s.n = e, uint8(len(name))
		copy(s.name[:], name)
	}
	return m
}

// get returns the entry of host, or nil. It allocates nothing.
func (m *hostMap) get(host []byte) *appEntry {
	if len(host) > hostInline {
		return m.long[string(host)]
	}
	if len(m.slots) == 0 {
		return nil
	}
	mask := uint64(len(m.slots) - 1)
	for i := maphash.Bytes(m.seed, host) & mask; ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.e == nil {
			return nil
		}
		if int(s.n) == len(host) && string(s.name[:s.n]) == string(host) {
			return s.e
		}
	}
}

// each calls fn with every name's entry (an app's once per name).
func (m *hostMap) each(fn func(*appEntry)) {
	for i := range m.slots {
		if e := m.slots[i].e; e != nil {
			fn(e)
		}
	}
	for _, e := range m.long {
		fn(e)
	}
}
