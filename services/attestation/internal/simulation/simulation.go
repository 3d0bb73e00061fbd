// Package simulation keeps the deployment's simulated SGX quoting
// infrastructure (libs/sgx/sim): one simulation root per deployment,
// created on first start, stored sealed under the key-encryption key, and
// collateral for its simulated platform. Everything it makes is labelled
// simulation and proves nothing about hardware.
package simulation

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloister-cc/cloister/libs/kv"
	"github.com/cloister-cc/cloister/libs/pki"
	"github.com/cloister-cc/cloister/libs/sgx"
	"github.com/cloister-cc/cloister/libs/sgx/sim"
	"github.com/cloister-cc/cloister/libs/tee"
)

// Bucket and key of the sealed root.
const (
	Bucket  = "attestation_simulation"
	rootKey = "root"
	// aad binds the sealed root to its purpose.
	aad = "cloister/attestation/simulation-root"
	// collateralLife is how long generated collateral is reused; it is
	// valid for 30 days, so a day leaves a wide margin.
	collateralLife = 24 * time.Hour
)

// Simulation is the deployment's simulation root and what it makes.
type Simulation struct {
	root     *sim.Root
	platform sim.Platform

	mu sync.Mutex
	// cols are the SGX, then the TDX, collateral issued last.
	cols [2]issuedCollateral
}

// issuedCollateral is collateral and when it was made.
type issuedCollateral struct {
	col    *sgx.Collateral
	issued time.Time
}

// Open loads the deployment's simulation root, creating and storing it
// (sealed with kek) on first use. Replicas starting together agree on one.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, kek *pki.KEK, now time.Time) (*Simulation, error) {
	if kek == nil {
		return nil, errors.New("simulation: a key-encryption key is required to keep the simulation root")
	}
	store, err := kv.Open[[]byte](ctx, js, kv.Config{Bucket: Bucket, Replicas: replicas})
	if err != nil {
		return nil, err
	}
	for range 3 {
		e, err := store.Get(ctx, rootKey)
		if err == nil {
			plain, err := kek.Open(e.Value, []byte(aad))
			if err != nil {
				return nil, fmt.Errorf("opening the stored simulation root (is this the deployment's master key?): %w", err)
			}
			root, err := sim.UnmarshalRoot(plain)
			clear(plain)
			if err != nil {
				return nil, err
			}
			return &Simulation{root: root, platform: sim.DefaultPlatform()}, nil
		}
		if !errors.Is(err, kv.ErrNotFound) {
			return nil, err
		}
		root, err := sim.NewRoot(rand.Reader, now)
		if err != nil {
			return nil, err
		}
		plain, err := root.MarshalBinary()
		if err != nil {
			return nil, err
		}
		sealed, err := kek.Seal(plain, []byte(aad))
		clear(plain)
		if err != nil {
			return nil, err
		}
		if _, err := store.Create(ctx, rootKey, sealed); err == nil {
			return &Simulation{root: root, platform: sim.DefaultPlatform()}, nil
		} else if !errors.Is(err, kv.ErrExists) {
			return nil, err
		}
		// Another replica stored its root first: use that one.
	}
	return nil, errors.New("simulation: could not agree on a simulation root")
}

// RootKey is the trust anchor for simulated evidence.
func (s *Simulation) RootKey() *ecdsa.PublicKey { return s.root.PublicKey() }

// RootPEM is the simulation root certificate, for operators and node
// agents; nil when there is no simulation.
func (s *Simulation) RootPEM() []byte {
	if s == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.root.Certificate().Raw})
}

// Collateral returns signed collateral for the simulated platform: its
// SGX collateral, or for teeName "tdx" its TDX collateral.
func (s *Simulation) Collateral(teeName string, fmspc [6]byte, now time.Time) (*sgx.Collateral, error) {
	if fmspc != s.platform.FMSPC {
		return nil, fmt.Errorf("no simulated platform has FMSPC %x", fmspc)
	}
	tdx := teeName == tee.TDX
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.cols[map[bool]int{false: 0, true: 1}[tdx]]
	if c.col == nil || now.Before(c.issued) || now.Sub(c.issued) >= collateralLife {
		var opts []sim.CollateralOption
		if tdx {
			opts = append(opts, sim.ForTDX())
		}
		col, err := s.root.Collateral(s.platform, now, opts...)
		if err != nil {
			return nil, err
		}
		c.col, c.issued = col, now
	}
	return c.col, nil
}

// NewQE makes a simulated quoting enclave for the simulated platform, for
// a node agent running in simulation mode.
func (s *Simulation) NewQE(now time.Time, accountID string) (*sim.QE, error) {
	return s.root.NewQEForAccount(rand.Reader, s.platform, now, accountID)
}
