package main

import (
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

// --tee decides the node's own evidence; what cannot be had is refused
// at start, saying why.
func TestTEEChoice(t *testing.T) {
	fake := (&fakeTSM{}).client("sev_guest", []byte("report"), nil)
	u, _ := url.Parse("http://127.0.0.1:1")
	// This machine is no confidential VM, in all likelihood; if it is,
	// the machine's own configfs-tsm is what auto and tdx find.
	_, noTSM := openTSM()
	hasTSM := noTSM == nil
	base := config{Server: u, NodeServer: u, DataDir: t.TempDir(), HeartbeatEvery: 1, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		name       string
		change     func(*config)
		code       int
		says       string
		tsm, simEv bool
	}{
		{"auto, with configfs-tsm", func(c *config) { c.TSM = fake }, 0, "", true, false},
		{"auto, in simulation", func(c *config) { c.Simulation = true }, 0, "", hasTSM, !hasTSM},
		{"none, in simulation", func(c *config) { c.TEE, c.Simulation = "none", true }, 0, "", false, false},
		{"sgx without simulation", func(c *config) { c.TEE = "sgx" }, exitConfig, "only in simulation", false, false},
		{"sev-snp with configfs-tsm", func(c *config) { c.TEE, c.TSM = "sev-snp", fake }, 0, "", true, false},
		{"tdx without a fake", func(c *config) { c.TEE = "tdx" }, map[bool]int{false: exitConfig}[hasTSM], map[bool]string{false: "configfs-tsm"}[hasTSM], hasTSM, false},
		{"an unknown TEE", func(c *config) { c.TEE = "z80" }, exitUsage, "want auto, none, sgx, tdx or sev-snp", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.change(&cfg)
			a, err := newAgent(cfg)
			if exitCode(err) != tc.code || (err != nil && !strings.Contains(err.Error(), tc.says)) {
				t.Fatalf("newAgent = %v, want exit %d saying %q", err, tc.code, tc.says)
			}
			if err == nil && ((a.tsm != nil) != tc.tsm || a.simEvidence != tc.simEv) {
				t.Fatalf("configfs-tsm evidence %v, simulated %v; want %v, %v", a.tsm != nil, a.simEvidence, tc.tsm, tc.simEv)
			}
		})
	}

	// A provider other than the one asked for is an error, not evidence.
	_, _, _, err := tsmSource{client: fake, want: "tdx"}.Evidence([64]byte{})
	if err == nil || !strings.Contains(err.Error(), "--tee tdx, but configfs-tsm's provider is sev_guest") {
		t.Fatalf("evidence from another provider = %v", err)
	}
	if _, _, _, err := (tsmSource{client: (&fakeTSM{}).client("arm_cca_guest", nil, nil)}).Evidence([64]byte{}); err == nil ||
		!strings.Contains(err.Error(), `"arm_cca_guest"`) {
		t.Fatalf("evidence from an unknown provider = %v", err)
	}
}
