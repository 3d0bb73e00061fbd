package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cloister-cc/cloister/cmd/serverconfig"
	"github.com/cloister-cc/cloister/libs/enclave"
)

// sampleBinary is the sample's file name, beside this binary or on $PATH.
const sampleBinary = "hello-https"

// serveRegistry serves go-containerregistry's registry on cfg.Registry
// (plain HTTP, no authentication: it is for trying Cloister on one
// machine), kept in the data directory in -dev and in memory otherwise,
// and publishes the sample to it when there is one. It returns the
// server, or nil when -dev's default address is taken.
func serveRegistry(ctx context.Context, cfg serverconfig.Config, logger *slog.Logger, errc chan<- error) (*http.Server, error) {
	sample, err := loadBinary("--sample", cfg.Sample, sampleBinary)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Registry)
	if err != nil && cfg.Dev && !cfg.RegistryGiven {
		logger.Warn("the built-in registry's default address is in use: the sample is not published; choose another with --registry",
			"address", cfg.Registry, "error", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listening on --registry %s: %w", cfg.Registry, err)
	}
	var handler http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	kept := "in memory: its images are lost when the server stops"
	if cfg.Dev {
		dir := filepath.Join(cfg.DataDir, "registry")
		if handler, err = newPersistentRegistry(dir, logger); err != nil {
			ln.Close()
			return nil, err
		}
		kept = "kept in " + dir
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("built-in registry: %w", err)
		}
	}()
	host := serverconfig.LocalAddr(ln.Addr().String())
	logger.Info("built-in registry serving ("+kept+")", "registry", host)
	if sample == nil {
		logger.Warn("no hello-https sample binary found (--sample): the sample is not published; `make run` builds one")
		return srv, nil
	}
	ref, err := publishSample(ctx, host, sample)
	if err != nil {
		srv.Close()
		return nil, err
	}
	logger.Info("sample application published", "image", ref.String())
	rt, err := publishStandInRuntime(ctx, host)
	if err != nil {
		srv.Close()
		return nil, err
	}
	logger.Info("Cloister's STAND-IN Gramine runtime published (it cannot start an SGX enclave)", "image", rt.String())
	return srv, nil
}

// publishStandInRuntime pushes enclave.StandInRuntimeImage to
// host/serverconfig.StandInRuntimeRepository:1.
func publishStandInRuntime(ctx context.Context, host string) (name.Reference, error) {
	ref, err := name.ParseReference(host + "/" + serverconfig.StandInRuntimeRepository + ":1")
	if err != nil {
		return nil, fmt.Errorf("naming the stand-in runtime image: %w", err)
	}
	img, err := enclave.StandInRuntimeImage()
	if err != nil {
		return nil, err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return nil, fmt.Errorf("publishing the stand-in Gramine runtime to %s: %w", ref, err)
	}
	return ref, nil
}

// publishSample pushes the sample image, built around the hello-https
// binary, to host/samples/hello-https:1.
func publishSample(ctx context.Context, host string, binary []byte) (name.Reference, error) {
	ref, err := name.ParseReference(host + "/" + serverconfig.SampleRepository + ":" + serverconfig.SampleTag)
	if err != nil {
		return nil, fmt.Errorf("naming the sample image: %w", err)
	}
	img, err := sampleImage(binary)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return nil, fmt.Errorf("publishing the sample to %s: %w", ref, err)
	}
	return ref, nil
}

// sampleEpoch is the time of every file and of the image, so that the
// same binary always gives the same image (and MRENCLAVE).
var sampleEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// sampleImage is a linux/amd64 OCI image holding only /hello-https, built
// without Docker.
func sampleImage(binary []byte) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: sampleBinary, Mode: 0o755, Size: int64(len(binary)), ModTime: sampleEpoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("building the sample layer: %w", err)
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, fmt.Errorf("building the sample layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("building the sample layer: %w", err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("building the sample layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: sampleEpoch}, CreatedBy: "cloister server (built-in sample)"}})
	if err != nil {
		return nil, fmt.Errorf("building the sample image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("building the sample image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", "amd64", v1.Time{Time: sampleEpoch}
	cf.Config.Entrypoint = []string{"/" + sampleBinary}
	cf.Config.WorkingDir = "/"
	cf.Config.ExposedPorts = map[string]struct{}{"8443/tcp": {}}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":  "hello-https",
		"org.opencontainers.image.source": "https://github.com/cloister-cc/cloister/tree/main/samples/hello-https",
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("building the sample image: %w", err)
	}
	return img, nil
}

// builtInRegistryAddrs are the addresses of the registry this process
// serves (--registry), which the converter may reach whatever
// --registry-deny says: -dev's built-in registry lives on loopback, which
// the default denies.
func builtInRegistryAddrs(ctx context.Context, cfg serverconfig.Config) []netip.AddrPort {
	if cfg.Registry == "" {
		return nil
	}
	local := serverconfig.LocalAddr(cfg.Registry)
	if ap, err := netip.ParseAddrPort(local); err == nil {
		return []netip.AddrPort{ap}
	}
	host, portText, err := net.SplitHostPort(local)
	if err != nil {
		return nil
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	out := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(port)))
	}
	return out
}
