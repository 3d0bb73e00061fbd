package imagefs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Unpack writes the final filesystem of img (all layers applied,
// whiteouts honoured) into dir, which must exist: directories, regular
// files with their permission bits, symbolic and hard links. It is what a
// container runtime would lay out, for running a converted image's
// launcher without one (tests, `make demo`). Every write stays inside dir
// (an os.Root), so an entry or a link that leads out of it is an error;
// ownership, set-id bits, devices and FIFOs are not restored. At most
// maxBytes of file contents are written (a sparse entry in a tar can
// claim terabytes in a few bytes).
func Unpack(ctx context.Context, img v1.Image, dir string, maxBytes int64) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("unpacking the image: %w", err)
	}
	defer root.Close()
	rc := mutate.Extract(img)
	defer rc.Close()
	return unpackTar(ctx, rc, root, maxBytes)
}

// unpackTar writes the entries of a flattened filesystem tar into root,
// at most budget bytes of file contents.
func unpackTar(ctx context.Context, r io.Reader, root *os.Root, budget int64) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the image's filesystem: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(path.Clean("/"+hdr.Name), "/"))
		if name == "." || name == "" {
			continue
		}
		if hdr.Typeflag == tar.TypeReg {
			if budget -= hdr.Size; budget < 0 {
				return fmt.Errorf("unpacking /%s: the image's files hold more than the limit of bytes to unpack", name)
			}
		}
		if err := unpackEntry(root, tr, hdr, name); err != nil {
			return fmt.Errorf("unpacking /%s: %w", name, err)
		}
	}
}

func unpackEntry(root *os.Root, tr *tar.Reader, hdr *tar.Header, name string) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	perm := fs.FileMode(hdr.Mode) & fs.ModePerm
	switch hdr.Typeflag {
	case tar.TypeDir:
		// The owner keeps write access, or the directory could not be
		// filled (or removed by the caller).
		if err := root.MkdirAll(name, 0o755); err != nil {
			return err
		}
		return root.Chmod(name, perm|0o700)
	case tar.TypeReg:
		if err := replace(root, name); err != nil {
			return err
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o200)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		if err := replace(root, name); err != nil {
			return err
		}
		return root.Symlink(hdr.Linkname, name)
	case tar.TypeLink:
		if err := replace(root, name); err != nil {
			return err
		}
		target := path.Clean(strings.TrimPrefix(path.Clean("/"+hdr.Linkname), "/"))
		return root.Link(target, name)
	}
	return nil // devices, FIFOs: not needed to run a program
}

// replace removes what is at name unless it is a directory: in a
// flattened filesystem the last entry for a path wins.
func replace(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("a directory is in the way")
	}
	return root.Remove(name)
}
