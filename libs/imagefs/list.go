package imagefs

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"iter"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Type is the kind of a listed file.
type Type uint8

// The kinds of file a List holds. Device nodes and FIFOs are not listed.
const (
	TypeRegular Type = iota + 1
	TypeDir
	TypeSymlink
)

// typeOther stands, inside the tree, for device nodes and FIFOs: they take
// a path (replacing what was there) but are never listed.
const typeOther Type = 0

func (t Type) String() string {
	switch t {
	case TypeRegular:
		return "regular"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// modeMask is what Entry.Mode may hold: no type bits, which Type carries.
const modeMask = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// symlinkMode is the Mode of every symlink: Linux ignores a symlink's
// permission bits and lstat reports 0777, whatever the layer said.
const symlinkMode = fs.ModePerm

// Entry is one file of an image's final filesystem.
type Entry struct {
	// Path is relative to the image root, cleaned, without a leading
	// slash: "usr/bin/env".
	Path string
	Type Type
	// Mode holds the permission bits and fs.ModeSetuid, fs.ModeSetgid
	// and fs.ModeSticky, never type bits. Symlinks always have 0777.
	Mode fs.FileMode
	// Size and SHA256 describe a regular file's contents; they are zero
	// for directories and symlinks.
	Size   int64
	SHA256 [32]byte
	// Target is a symlink's target, exactly as the layer wrote it
	// (relative or absolute, never resolved).
	Target string
}

// List is the final filesystem of an image: every regular file, symlink
// and directory, sorted by Path (byte order). The root directory is not
// listed. A List is immutable.
type List struct {
	entries []Entry
}

// NewList validates entries and returns them as a List, sorted by path.
// Every entry's parent directory must be listed too, as a directory; paths
// must be unique and canonical (as Entry.Path says); fields that do not
// belong to an entry's type must be zero.
func NewList(entries []Entry) (*List, error) {
	es := slices.Clone(entries)
	slices.SortFunc(es, func(a, b Entry) int { return cmp.Compare(a.Path, b.Path) })
	if err := validate(es); err != nil {
		return nil, err
	}
	return &List{entries: es}, nil
}

func validate(es []Entry) error {
	for i, e := range es {
		if i > 0 && es[i-1].Path == e.Path {
			return fmt.Errorf("%w: %q listed twice", ErrInvalidList, e.Path)
		}
		if err := validEntry(e); err != nil {
			return fmt.Errorf("%w: %q: %w", ErrInvalidList, e.Path, err)
		}
		if dir := path.Dir(e.Path); dir != "." {
			j, ok := slices.BinarySearchFunc(es[:i], dir, func(e Entry, p string) int { return cmp.Compare(e.Path, p) })
			if !ok || es[j].Type != TypeDir {
				return fmt.Errorf("%w: %q: parent %q is not a listed directory", ErrInvalidList, e.Path, dir)
			}
		}
	}
	return nil
}

func validEntry(e Entry) error {
	if p, err := cleanPath(e.Path); err != nil || p != e.Path || p == "" {
		return fmt.Errorf("path is not canonical")
	}
	if e.Mode&^modeMask != 0 {
		return fmt.Errorf("mode %v has bits other than permissions, setuid, setgid and sticky", e.Mode)
	}
	switch e.Type {
	case TypeRegular:
		if e.Size < 0 || e.Target != "" {
			return fmt.Errorf("regular file with a negative size or a target")
		}
	case TypeDir:
		if e.Size != 0 || e.SHA256 != [32]byte{} || e.Target != "" {
			return fmt.Errorf("directory with a size, hash or target")
		}
	case TypeSymlink:
		if e.Size != 0 || e.SHA256 != [32]byte{} || e.Mode != symlinkMode {
			return fmt.Errorf("symlink with a size, a hash or a mode other than 0777")
		}
		if !validTarget(e.Target) {
			return fmt.Errorf("symlink target is empty, longer than %d bytes or holds a NUL byte", maxTarget)
		}
	default:
		return fmt.Errorf("unknown type %v", e.Type)
	}
	return nil
}

// Len is the number of entries.
func (l *List) Len() int { return len(l.entries) }

// All yields the entries in path order.
func (l *List) All() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		for _, e := range l.entries {
			if !yield(e) {
				return
			}
		}
	}
}

// Lookup returns the entry for name, which may be written "/etc/passwd",
// "./etc/passwd" or "etc/passwd".
func (l *List) Lookup(name string) (Entry, bool) {
	p, err := cleanPath(name)
	if err != nil || p == "" {
		return Entry{}, false
	}
	i, ok := slices.BinarySearchFunc(l.entries, p, func(e Entry, p string) int { return cmp.Compare(e.Path, p) })
	if !ok {
		return Entry{}, false
	}
	return l.entries[i], true
}

// header is the first line of every encoded list; the version changes if
// the format ever does.
const header = "cloister-trusted-files v1\n"

// Encode returns the canonical encoding of the list, documented in
// docs/trusted-files.md: a header line, then one line per entry in path
// order:
//
//	d <mode> <path>
//	f <mode> <size> <sha256> <path>
//	l <path> <target>
//
// with mode as four octal digits (unix bits: 4755), size in decimal,
// sha256 in lowercase hex, and path and target quoted by
// strconv.QuoteToASCII, so no name can hold a raw space, newline or
// non-ASCII byte.
func (l *List) Encode() []byte {
	b := make([]byte, 0, len(header)+len(l.entries)*120)
	b = append(b, header...)
	for _, e := range l.entries {
		b = appendEntry(b, e)
	}
	return b
}

func appendEntry(b []byte, e Entry) []byte {
	switch e.Type {
	case TypeDir:
		b = append(b, "d "...)
		b = appendMode(b, e.Mode)
	case TypeRegular:
		b = append(b, "f "...)
		b = appendMode(b, e.Mode)
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.Size, 10)
		b = append(b, ' ')
		b = hex.AppendEncode(b, e.SHA256[:])
	case TypeSymlink:
		b = append(b, 'l')
	}
	b = append(b, ' ')
	b = strconv.AppendQuoteToASCII(b, e.Path)
	if e.Type == TypeSymlink {
		b = append(b, ' ')
		b = strconv.AppendQuoteToASCII(b, e.Target)
	}
	return append(b, '\n')
}

// appendMode writes m as the four octal digits of its unix mode.
func appendMode(b []byte, m fs.FileMode) []byte {
	u := unixMode(m)
	return append(b, '0'+byte(u>>9&7), '0'+byte(u>>6&7), '0'+byte(u>>3&7), '0'+byte(u&7))
}

func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// fileMode keeps the permission, setuid, setgid and sticky bits of a unix
// mode, as a tar header carries it.
func fileMode(u int64) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// Digest is SHA-256 of Encode(): what the enclave manifest commits to.
func (l *List) Digest() [32]byte {
	return sha256.Sum256(l.Encode())
}

// ParseList parses the canonical encoding that Encode produces. It accepts
// exactly the bytes Encode would write for the list it returns, so that
// two different inputs never parse to the same list and Digest of the
// result is SHA-256 of b.
func ParseList(b []byte) (*List, error) {
	if !bytes.HasPrefix(b, []byte(header)) {
		return nil, fmt.Errorf("%w: no %q header", ErrInvalidList, strings.TrimSuffix(header, "\n"))
	}
	rest := b[len(header):]
	var entries []Entry
	for n := 2; len(rest) > 0; n++ {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, fmt.Errorf("%w: line %d: no final newline", ErrInvalidList, n)
		}
		e, err := parseLine(string(rest[:i]))
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrInvalidList, n, err)
		}
		if len(entries) > 0 && entries[len(entries)-1].Path >= e.Path {
			return nil, fmt.Errorf("%w: line %d: %q is not after %q", ErrInvalidList, n, e.Path, entries[len(entries)-1].Path)
		}
		entries = append(entries, e)
		rest = rest[i+1:]
	}
	if err := validate(entries); err != nil {
		return nil, err
	}
	l := &List{entries: entries}
	// The field parsers accept a little more than Encode writes (an
	// upper-case hex digit, a "+" before a size, an escape where a plain
	// character would do); comparing with the re-encoding turns every
	// such variant away.
	if !bytes.Equal(l.Encode(), b) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrInvalidList)
	}
	return l, nil
}

func parseLine(s string) (Entry, error) {
	if len(s) < 2 || s[1] != ' ' {
		return Entry{}, fmt.Errorf("no type")
	}
	var e Entry
	typ, s := s[0], s[2:]
	var err error
	switch typ {
	case 'd':
		e.Type = TypeDir
		if e.Mode, s, err = parseMode(s); err != nil {
			return Entry{}, err
		}
	case 'f':
		e.Type = TypeRegular
		if e.Mode, s, err = parseMode(s); err != nil {
			return Entry{}, err
		}
		size, rest, ok := strings.Cut(s, " ")
		if e.Size, err = strconv.ParseInt(size, 10, 64); !ok || err != nil || e.Size < 0 {
			return Entry{}, fmt.Errorf("bad size")
		}
		sum, rest, ok := strings.Cut(rest, " ")
		if !ok || len(sum) != 2*len(e.SHA256) {
			return Entry{}, fmt.Errorf("bad sha256")
		}
		if _, err := hex.Decode(e.SHA256[:], []byte(sum)); err != nil {
			return Entry{}, fmt.Errorf("bad sha256")
		}
		s = rest
	case 'l':
		e.Type = TypeSymlink
		e.Mode = symlinkMode
	default:
		return Entry{}, fmt.Errorf("unknown type %q", typ)
	}
	if e.Path, s, err = parseQuoted(s); err != nil {
		return Entry{}, fmt.Errorf("path: %w", err)
	}
	if e.Type == TypeSymlink {
		if !strings.HasPrefix(s, " ") {
			return Entry{}, fmt.Errorf("no symlink target")
		}
		if e.Target, s, err = parseQuoted(s[1:]); err != nil {
			return Entry{}, fmt.Errorf("symlink target: %w", err)
		}
	}
	if s != "" {
		return Entry{}, fmt.Errorf("trailing %q", s)
	}
	return e, nil
}

func parseMode(s string) (fs.FileMode, string, error) {
	if len(s) < 5 || s[4] != ' ' {
		return 0, "", fmt.Errorf("bad mode")
	}
	u, err := strconv.ParseUint(s[:4], 8, 16)
	if err != nil {
		return 0, "", fmt.Errorf("bad mode")
	}
	return fileMode(int64(u)), s[5:], nil
}

func parseQuoted(s string) (string, string, error) {
	if !strings.HasPrefix(s, `"`) {
		return "", "", fmt.Errorf("not quoted")
	}
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", err
	}
	v, err := strconv.Unquote(q)
	if err != nil {
		return "", "", err
	}
	return v, s[len(q):], nil
}
