package imagefs

import "errors"

// Errors callers can tell apart with errors.Is. A missing file in ReadFile
// is fs.ErrNotExist.
var (
	// ErrUnsafePath: an entry name, hard link target or whiteout names a
	// path outside the image root ("../etc/passwd").
	ErrUnsafePath = errors.New("path escapes the image root")
	// ErrLinkTarget: a hard link whose target is missing or a directory.
	ErrLinkTarget = errors.New("hard link target is missing or a directory")
	// ErrNotDir: an entry below a path that is a regular file, a device or
	// a FIFO.
	ErrNotDir = errors.New("parent is not a directory")
	// ErrSymlinkLoop: too many symlinks followed resolving a parent directory.
	ErrSymlinkLoop = errors.New("too many levels of symbolic links")
	// ErrMalformed: a layer entry that no runtime could apply (an unknown
	// tar type, an empty symlink target, a whiteout of "." or "..").
	ErrMalformed = errors.New("malformed layer entry")
	// ErrNotRegular: ReadFile of a directory, symlink, device or FIFO, or of
	// a path that goes through a symlink.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooManyEntries: layers with more entries in all than TrustedFiles
	// takes.
	ErrTooManyEntries = errors.New("the image's layers have more entries than the limit")
	// ErrTooLarge: ReadFile of a file over the maximum size.
	ErrTooLarge = errors.New("file over the maximum size")
	// ErrInvalidList: bytes that are not a canonical trusted-file list, or
	// entries that do not form one.
	ErrInvalidList = errors.New("invalid trusted-file list")
)
