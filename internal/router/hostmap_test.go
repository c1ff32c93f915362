package router

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

func TestHostMap(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 100, 5000} {
		names := map[string]*appEntry{}
		for i := range n {
			names[fmt.Sprintf("app%d.example.com", i)] = &appEntry{name: fmt.Sprint(i)}
		}
		long := strings.Repeat("x", hostInline-len(".example.com")+1) + ".example.com" // one byte too long for a slot
		edge := strings.Repeat("y", hostInline-len(".example.com")) + ".example.com"   // just fits
		if n > 0 {
			names[long] = &appEntry{name: "long"}
			names[edge] = &appEntry{name: "edge"}
		}
		m := newHostMap(names)
		for name, e := range names {
			if got := m.get([]byte(name)); got != e {
				t.Fatalf("%d names: get(%q) = %v, want %v", len(names), name, got, e)
			}
		}
		for _, miss := range []string{"", "app.example.com", "app1.example.co", "app1.example.comm", "APP1.example.com", long + "x", edge[1:]} {
			if e := m.get([]byte(miss)); e != nil {
				t.Fatalf("%d names: get(%q) = %v, want none", len(names), miss, e)
			}
		}
		seen := 0
		m.each(func(*appEntry) { seen++ })
		if seen != len(names) {
			t.Fatalf("%d names: each saw %d", len(names), seen)
		}
	}
}

// A slot is one cache line.
func TestHostSlotSize(t *testing.T) {
	if sizeofSlot := unsafe.Sizeof(hostSlot{}); sizeofSlot != 64 {
		t.Fatalf("a slot is %d bytes, want 64", sizeofSlot)
	}
}
