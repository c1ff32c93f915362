package agent

import "golang.org/x/sys/unix"

// diskUsage is the size of the filesystem holding dir and how much of it
// is in use, in bytes (as df counts: blocks not free, reserved ones
// included); zeros if it cannot be read.
func diskUsage(dir string) (total, used int64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0
	}
	bs := int64(st.Bsize)
	return int64(st.Blocks) * bs, int64(st.Blocks-st.Bfree) * bs
}
