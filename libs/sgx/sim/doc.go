// Package sim is a SIMULATION of Intel SGX DCAP attestation. Evidence it
// produces PROVES NOTHING ABOUT HARDWARE: no SGX CPU, no enclave isolation
// and no Intel key are involved, and anyone holding the simulation root's
// private key can make a quote say anything. It exists so that Cloister runs
// end to end on machines without SGX.
//
// A deployment's simulation root (Root, created by the attestation service)
// plays Intel's part: it issues the PCK certificates of simulated quoting
// enclaves (QE, hosted by the node agent) and signs the collateral (TCB
// Info, QE Identity, CRLs). Simulated quotes have the exact SGX ECDSA quote
// v3 format with certification data type 5, and they are checked by the
// real verifier, sgx.NewVerifier(root.PublicKey(), sim.VerifierOptions()...).Verify, with the
// simulation root as trust anchor instead of Intel's. They never verify
// against sgx.IntelRootKey().
//
// Everything is labelled as simulation where a reader could see it:
//   - certificate subjects: CN "Cloister SGX Simulation Root CA",
//     "Cloister SGX Simulation PCK Processor CA", "Cloister SGX Simulation
//     TCB Signing" and "Cloister SGX Simulation PCK Certificate", with
//     OU "SGX simulation - proves nothing about hardware";
//   - the quote header's QE vendor ID is the ASCII "CLOISTER-SGX-SIM"
//     (Intel's is 939a7233f79c4ca9940a0db3957f0607) and its user data starts
//     with "CLOISTER SIMULATION";
//   - the simulated QE's MRSIGNER and MRENCLAVE are the ASCII texts
//     "Cloister SGX simulated QE signer" and "Cloister SGX simulated QE",
//     zero-padded to 32 bytes, rather than measurements;
//   - the default platform's FMSPC is "SIM\x00\x00\x01" (53494d000001 in hex,
//     see DefaultPlatform).
//
// Whether simulated evidence is acceptable is the attestation policy's
// decision (off by default outside -dev); certificates issued on it must
// say that the evidence was simulated.
package sim
