// Package gramine computes what Gramine's signer, gramine-sgx-sign,
// computes, bit for bit and without Gramine: the manifest as its TOML
// writer (tomli_w) writes it, the enclave's memory layout and MRENCLAVE
// from the manifest bytes and libpal.so, and the SIGSTRUCT (.sig).
//
// The algorithm follows Gramine's python/graminelibos/sgx_sign.py and
// sigstruct.py; the vectors in testdata were made by Gramine's own signer.
// docs/enclave-layout.md says what is measured and how to check it with
// Gramine's tools.
package gramine
